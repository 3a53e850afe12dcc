"""Config of the evaluation stage."""
from __future__ import annotations

from dataclasses import dataclass

from gptlab.fields import rng


@dataclass
class EvalConfig:
    stride_fraction: float = rng(0.05, 1.0, default=0.5)
    batch_size: int = rng(1, 4096, default=8)
    # Local tasks (`gptlab eval --tasks`): k solved examples per prompt, drawn with a fixed seed.
    num_fewshot: int = rng(0, 64, default=0)
    fewshot_seed: int = rng(0, 2**31 - 1, default=1234)
    # Generation tasks: greedy answers stop at a newline or after this many tokens.
    max_new_tokens: int = rng(1, 4096, default=32)
