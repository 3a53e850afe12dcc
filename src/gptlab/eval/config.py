"""Config of the evaluation stage."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gptlab.schema import bounded


@dataclass
class EvalConfig:
    stride_fraction: float = bounded(0.05, 1.0, default=0.5)
    batch_size: int = bounded(1, 4096, default=8)
    # Local tasks (`gptlab eval --tasks`): k solved examples per prompt, drawn with a fixed seed.
    num_fewshot: int = bounded(0, 64, default=0)
    fewshot_seed: int = bounded(0, 2**31 - 1, default=1234)
    # Generation tasks: greedy answers stop at a newline or after this many tokens.
    max_new_tokens: int = bounded(1, 4096, default=32)
    # Where the model runs, and in what precision (auto: CUDA when present; bf16 where fast, else fp32).
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
