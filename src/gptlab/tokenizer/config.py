"""Config of the tokenizer stage."""
from __future__ import annotations

from dataclasses import dataclass

from gptlab.schema import bounded


@dataclass
class TokenizerConfig:
    vocab_size: int = bounded(260, 65_535, default=4096)
    min_frequency: int = bounded(1, 1000, default=2)
    max_train_mb: float = bounded(0.1, 100_000, default=40.0)
