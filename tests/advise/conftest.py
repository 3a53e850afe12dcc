from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gptlab.advise.labelled import domain_examples


@pytest.fixture(scope="session")
def domain_set(curated, tmp_path_factory) -> tuple[Path, Path]:
    """Domain classification (bible, prose, code) made from the curated fixture: train from train/, test from heldout/."""
    return domain_examples(curated, tmp_path_factory.mktemp("domains"), per_domain=10, max_chars=400)


@pytest.fixture(scope="session")
def hf_model_dir(tokenizer_dir, tmp_path_factory) -> Path:
    """A tiny random GPT-2 with the session's tokenizer, saved as a local Hugging Face folder."""
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast  # noqa: PLC0415  (optional extra (transformers), seconds to import)

    out = tmp_path_factory.mktemp("hf") / "tiny-gpt2"
    tok = PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_dir / "tokenizer.json"),
                                  eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=tok.vocab_size, n_positions=48, n_embd=32, n_layer=2, n_head=2,
                     bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id)
    GPT2LMHeadModel(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out
