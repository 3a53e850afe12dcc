from __future__ import annotations

from pathlib import Path

import pytest

from builders import tiny_hf_gpt2
from gptlab.advise.labelled import domain_examples


@pytest.fixture(scope="session")
def domain_set(curated, tmp_path_factory) -> tuple[Path, Path]:
    """Domain classification (bible, prose, code) made from the curated fixture: train from train/, test from heldout/."""
    return domain_examples(curated, tmp_path_factory.mktemp("domains"), per_domain=10, max_chars=400)


@pytest.fixture(scope="session")
def hf_model_dir(tokenizer_dir, tmp_path_factory) -> Path:
    """A tiny random GPT-2 with the session's tokenizer, saved as a local Hugging Face folder."""
    return tiny_hf_gpt2(tokenizer_dir, tmp_path_factory.mktemp("hf") / "tiny-gpt2", n_positions=48)
