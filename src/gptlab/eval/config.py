"""Config of the evaluation stage."""
from __future__ import annotations

from dataclasses import dataclass

from gptlab.fields import rng


@dataclass
class EvalConfig:
    stride_fraction: float = rng(0.05, 1.0, default=0.5)
    batch_size: int = rng(1, 4096, default=8)
