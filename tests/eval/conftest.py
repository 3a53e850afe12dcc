"""Tiny models and tokenizers built in-process, so most eval tests need no trained run; the rest
use the session's short training run (``trained_checkpoint`` and the held-out split of ``curated``)."""
from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from builders import one_thread
from gptlab.config import load_config
from gptlab.eval.bpb import run_eval
from gptlab.model import GPT, ModelConfig


def _tiny_gpt(**overrides):
    fields = dict(vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=32)
    fields.update(overrides)
    torch.manual_seed(0)
    return GPT(ModelConfig(**fields)).eval()


@pytest.fixture(scope="session")
def heldout_eval(curated, trained_checkpoint, pack_dir, tmp_path_factory) -> dict:
    """`run_eval` (default eval settings) of the trained checkpoint on the held-out split: eval.json's content."""
    with one_thread():
        return run_eval(load_config().eval, curated / "heldout", trained_checkpoint, pack_dir,
                        tmp_path_factory.mktemp("eval") / "eval")


@pytest.fixture
def tiny_gpt():
    """A factory of tiny seeded GPTs: ``tiny_gpt(position="rope")``."""
    return _tiny_gpt


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


@pytest.fixture
def word_tokenizer():
    """A word-level tokenizer: one token per word, so token counts are easy to hand-check."""
    words = ["<|endoftext|>", "the", "cat", "dog", "sat", "ran", "on", "mat", "a", "is", "Q:", "A:", "?", "."]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="."))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")   # joins words with spaces
    return tok
