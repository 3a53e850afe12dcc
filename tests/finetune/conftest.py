from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from finetune_tasks import HELD_OUT, instruction_rows, snippets

from builders import tiny_hf_gpt2
from gptlab.advise.labelled import domain_examples


@pytest.fixture(scope="session")
def domain_set(curated, tmp_path_factory) -> tuple[Path, Path]:
    """Domain classification (bible, prose, code) from the curated fixture: train from train/, test from heldout/."""
    return domain_examples(curated, tmp_path_factory.mktemp("ft-domains"), per_domain=12, max_chars=300)


@pytest.fixture(scope="session")
def instruction_mixture(curated, tmp_path_factory) -> dict[str, Path]:
    """train.jsonl: three tasks from the curated training split; heldout.jsonl: the held-out task,
    from other documents (the held-out split and unused training snippets)."""
    out = tmp_path_factory.mktemp("ft-mixture")
    rng = random.Random(0)
    train_snips, held_snips = snippets(curated, "train"), snippets(curated, "heldout")
    rng.shuffle(train_snips)
    mix = [r for task in ("is-bible", "is-code", "domain") for r in instruction_rows(train_snips[:150], task, rng)]
    held = instruction_rows(held_snips + train_snips[150:], HELD_OUT, rng, limit=60)
    paths = {"train": out / "train.jsonl", "heldout": out / "heldout.jsonl"}
    for name, rows in (("train", mix), ("heldout", held)):
        paths[name].write_text("".join(json.dumps(r) + "\n" for r in rows))
    return paths


@pytest.fixture(scope="session")
def hf_gpt2_dir(tokenizer_dir, tmp_path_factory) -> Path:
    """A tiny random GPT-2 with the session's tokenizer, saved as a local Hugging Face folder."""
    return tiny_hf_gpt2(tokenizer_dir, tmp_path_factory.mktemp("ft-hf") / "tiny-gpt2", n_positions=64)
