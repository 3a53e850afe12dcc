"""Shared fixtures.

Each stage's tests get inputs built for them, one stage boundary at a time (builders.py):
``curated`` (real text as curate writes it) → ``tokenizer_dir`` → ``pack_dir`` →
``trained_checkpoint`` (or ``untrained_checkpoint_dir``, which needs only the tokenizer). A test
asks for the nearest boundary before its own stage, so a broken stage fails its own tests and
those downstream of it, not every test.

``tiny_run`` builds one real `gptlab demo --size tiny` run per session (harvest → curate →
tokenizer → pack → train → eval → report on the embedded corpus). Only end-to-end tests use
it; they are marked ``slow`` (and any test that asks for it is marked so here), so
``pytest -m "not slow"`` never builds it.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import builders
from builders import build_pack, build_tokenizer, train_checkpoint, untrained_checkpoint, write_curated
from gptlab.checkpoint import latest_valid
from gptlab.config import load_config
from gptlab.console import setup_logging
from gptlab.pipeline import demo_preset, run_all

os.environ.setdefault("GPTLAB_PROGRESS", "0")


def pytest_collection_modifyitems(items):
    """The whole chain takes a minute or more: every test that needs it is slow."""
    for item in items:
        if "tiny_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


# ----------------------------------------------------------------------------- one stage at a time

@pytest.fixture(scope="session")
def mini_run(tmp_path_factory) -> Path:
    """The folder the stage fixtures below build into, laid out like a run folder."""
    return tmp_path_factory.mktemp("mini")


@pytest.fixture(scope="session")
def curated(mini_run) -> Path:
    """A curate folder of real text (Bible chapters, stdlib docstrings and code): train/ shards,
    heldout/heldout.jsonl.zst, and a complete manifest. No harvest or curation step runs."""
    return write_curated(mini_run / "curate")


@pytest.fixture(scope="session")
def tokenizer_dir(curated, mini_run) -> Path:
    """A BPE tokenizer (vocab 1024) trained by `run_tokenizer` on ``curated``."""
    return build_tokenizer(curated, mini_run / "tokenizer")


@pytest.fixture(scope="session")
def pack_dir(curated, tokenizer_dir, mini_run) -> Path:
    """``curated`` packed by `run_pack` (seq_len 64) with ``tokenizer_dir``."""
    return build_pack(curated, tokenizer_dir, mini_run / "pack")


@pytest.fixture(scope="session")
def trained_checkpoint(pack_dir, mini_run) -> Path:
    """The newest checkpoint of a short `run_train` on ``pack_dir`` (the tiny demo's model:
    2 layers, width 64), with the tokenizer. ``mini_run`` then holds train/ like a run folder."""
    return train_checkpoint(pack_dir, mini_run / "train")


@pytest.fixture(scope="session")
def untrained_checkpoint_dir(tokenizer_dir, tmp_path_factory) -> Path:
    """A seeded, untrained GPT of the same shape with ``tokenizer_dir``'s tokenizer, saved as a
    checkpoint: for tests of scoring and plumbing where what the model learned is irrelevant."""
    return untrained_checkpoint(tmp_path_factory.mktemp("untrained"), tokenizer_dir / "tokenizer.json")


@pytest.fixture(scope="session")
def trained_run(trained_checkpoint, mini_run) -> Path:
    """The folder holding ``curated`` … ``trained_checkpoint`` as curate/ … train/, like a run folder."""
    return mini_run


# ----------------------------------------------------------------------------- the whole chain

@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "run"
    cfg = load_config(None, [], fragments=[demo_preset("tiny")])
    with builders.one_thread():   # the tiny model trains fastest on one thread, and does not thrash shared cores
        run_all(cfg, out, workers=2)
    return out


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_run) -> Path:
    """The newest checkpoint folder of the tiny run (model.safetensors, config.json, tokenizer.json)."""
    ck = latest_valid(tiny_run / "train" / "checkpoints")
    assert ck is not None
    return ck


# ----------------------------------------------------------------------------- per test

@pytest.fixture
def cli_logging():
    """gptlab's log lines on stderr, as the CLI shows them (``main`` sets this up; a test that
    reads the log of a library call must not depend on some earlier test having called it)."""
    setup_logging()

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
