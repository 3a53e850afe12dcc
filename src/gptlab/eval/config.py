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
    # Code tasks (pass@k): samples per problem and how they are drawn; each runs in a sandboxed
    # child with this wall/CPU time and address-space limit (see eval/sandbox.py).
    code_samples: int = bounded(1, 1000, default=10)
    code_temperature: float = bounded(0.0, 2.0, default=0.8)
    code_top_p: float = bounded(0.0, 1.0, default=0.95)
    code_time_limit_s: float = bounded(0.1, 600.0, default=10.0)
    code_memory_mb: int = bounded(64, 1 << 20, default=1024)
    code_workers: int = bounded(1, 64, default=2)
    # Where the model runs, and in what precision (auto: CUDA when present; bf16 where fast, else fp32).
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
