"""Config of the tokenizer stage."""
from __future__ import annotations

from dataclasses import dataclass

from gptlab.fields import rng


@dataclass
class TokenizerConfig:
    vocab_size: int = rng(260, 65_535, default=4096)
    min_frequency: int = rng(1, 1000, default=2)
    max_train_mb: float = rng(0.1, 100_000, default=40.0)
