"""Shared fixtures. ``tiny_run`` builds one real `gptlab demo --size tiny` run per session:
harvest → curate → tokenizer → pack → train → eval → report on the embedded corpus."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from gptlab.checkpoint import latest_valid
from gptlab.config import load_config
from gptlab.pipeline import demo_preset, run_all

os.environ.setdefault("GPTLAB_PROGRESS", "0")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:

    out = tmp_path_factory.mktemp("tiny") / "run"
    cfg = load_config(None, [], fragments=[demo_preset("tiny")])
    run_all(cfg, out, workers=2)
    return out


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_run) -> Path:
    """The newest checkpoint folder of the tiny run (model.safetensors, config.json, tokenizer.json)."""
    ck = latest_valid(tiny_run / "train" / "checkpoints")
    assert ck is not None
    return ck


@pytest.fixture
def one_thread():
    """Tiny models run faster on one thread, and do not thrash when the cores are shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _restore_threads():
    """`train.threads` sets torch's thread count for the process (right for the CLI);
    put it back so that one test's setting never leaks into the next."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
