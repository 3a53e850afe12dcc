"""FLOPs, days and dollars of a training run, and the token arithmetic around them.

Model FLOPs per token are 6N + 12·L·H·Q·T (PaLM App. B; the count nanoGPT's ``estimate_mfu``
and ``gptlab.model.GPT.flops_per_token`` use): 2N for the forward matmuls and 4N for the
backward, plus the attention scores and their weighted sum over the full T×T window
(the causal half is not subtracted, so numbers compare with published MFUs). With full
activation recomputation every layer runs its forward twice, so the hardware does
8N + 16·L·H·Q·T. MFU is quoted against model FLOPs, HFU against hardware FLOPs.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

from gptlab.errors import UserError
from gptlab.plan.gpus import Accelerator
from gptlab.plan.shape import Shape

DAY = 86_400.0


def attention_flops_per_token(s: Shape) -> float:
    return 12.0 * s.n_layer * s.n_head * s.head_dim * s.seq


def model_flops_per_token(s: Shape) -> float:
    """6N + 12·L·H·Q·T: the FLOPs a training step needs per token, whatever the implementation."""
    return 6.0 * s.n_matmul_params + attention_flops_per_token(s)


def hardware_flops_per_token(s: Shape, recompute: bool) -> float:
    """What the chips execute: one extra forward (2N + 4·L·H·Q·T) when activations are recomputed."""
    if not recompute:
        return model_flops_per_token(s)
    return 8.0 * s.n_matmul_params + 16.0 * s.n_layer * s.n_head * s.head_dim * s.seq


@dataclass(frozen=True)
class Compute:
    tokens: float
    n_params: int
    n_matmul_params: int
    flops_per_token_6n: float
    flops_per_token_attention: float
    model_flops_per_token: float
    model_flops: float                  # the run's total model FLOPs
    model_flops_6n_only: float          # 6·N·D, the count GPT-3's paper used (no attention term)
    hardware_flops: float               # with recompute when activation checkpointing is on
    hardware_flops_recompute: float     # always with full recompute (8N + 16LHQT)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def compute(s: Shape, tokens: float, recompute: bool) -> Compute:
    fpt = model_flops_per_token(s)
    return Compute(
        tokens=tokens, n_params=s.n_params, n_matmul_params=s.n_matmul_params,
        flops_per_token_6n=6.0 * s.n_matmul_params, flops_per_token_attention=attention_flops_per_token(s),
        model_flops_per_token=fpt, model_flops=fpt * tokens, model_flops_6n_only=6.0 * s.n_matmul_params * tokens,
        hardware_flops=hardware_flops_per_token(s, recompute) * tokens,
        hardware_flops_recompute=hardware_flops_per_token(s, True) * tokens,
    )


@dataclass(frozen=True)
class Schedule:
    gpu: str
    n_gpus: int
    peak_flops_per_gpu: float
    mfu: float
    mfu_source: str
    hfu: float                          # the MFU seen as hardware utilisation (recompute included)
    model_flops_per_s: float            # the cluster's useful rate: n_gpus · peak · MFU
    tokens_per_s: float
    compute_days: float                 # uninterrupted, at the given MFU
    goodput: float                      # share of wall time that trains (restarts, lost work, queues)
    wall_days: float
    gpu_hours: float                    # over wall time: a crashed cluster is still rented
    usd_per_gpu_hour: float | None
    cost_usd: float | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def schedule(c: Compute, gpu: Accelerator, n_gpus: int, mfu: float, mfu_source: str, goodput: float,
             usd_per_gpu_hour: float | None, recompute: bool) -> Schedule:
    rate = n_gpus * gpu.peak_bf16 * mfu
    seconds = c.model_flops / rate
    wall = seconds / goodput
    gpu_hours = n_gpus * wall / 3600.0
    hw_ratio = (c.hardware_flops_recompute if recompute else c.model_flops) / c.model_flops
    return Schedule(
        gpu=gpu.name, n_gpus=n_gpus, peak_flops_per_gpu=gpu.peak_bf16, mfu=mfu, mfu_source=mfu_source,
        hfu=mfu * hw_ratio, model_flops_per_s=rate, tokens_per_s=rate / c.model_flops_per_token,
        compute_days=seconds / DAY, goodput=goodput, wall_days=wall / DAY, gpu_hours=gpu_hours,
        usd_per_gpu_hour=usd_per_gpu_hour,
        cost_usd=None if usd_per_gpu_hour is None else gpu_hours * usd_per_gpu_hour,
    )


def mfu_from_tflops(tflops_per_gpu: float, gpu: Accelerator) -> float:
    """A quoted per-GPU throughput (OPT: "up to 147 TFLOP/s") as a fraction of the dense peak."""
    return tflops_per_gpu * 1e12 / gpu.peak_bf16


# --------------------------------------------------------------------------- token counts

_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}


def parse_count(text: str | float | int, flag: str) -> float:
    """'300B', '1.5T', '3e11', '780_000_000_000' → a positive number; a bad one names ``flag``."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        m = re.fullmatch(r"\s*([0-9][0-9_]*\.?[0-9_]*(?:e[+-]?[0-9]+)?)\s*([kmbgt]?)\s*", str(text).lower())
        if not m:
            raise UserError(f"{flag}: expected a count such as 300B, 1.5T or 3e11, got {text!r}")
        value = float(m.group(1).replace("_", "")) * _SUFFIX[m.group(2)]
    if not math.isfinite(value) or value <= 0:
        raise UserError(f"{flag}: must be a positive count, got {text!r}")
    return value


@dataclass(frozen=True)
class Tokens:
    tokens: float
    batch_sequences: int
    seq: int
    batch_tokens: int
    steps: float
    corpus_tokens: float | None
    corpus_source: str | None
    epochs: float | None          # tokens seen / corpus size: > 1 means the corpus repeats

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def token_plan(tokens: float, batch_sequences: int, seq: int, corpus_tokens: float | None,
               corpus_source: str | None) -> Tokens:
    batch_tokens = batch_sequences * seq
    return Tokens(tokens=tokens, batch_sequences=batch_sequences, seq=seq, batch_tokens=batch_tokens,
                  steps=tokens / batch_tokens, corpus_tokens=corpus_tokens, corpus_source=corpus_source,
                  epochs=None if corpus_tokens is None else tokens / corpus_tokens)


def human(x: float | None, unit: str = "") -> str:
    """1.23e23 → '1.23e23'; 174.6e9 → '174.6B': short, for the table."""
    if x is None:
        return "-"
    for div, suf in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div and abs(x) < 1e15:
            return f"{x / div:.4g}{suf}{unit}"
    if abs(x) >= 1e15:
        return f"{x:.3e}{unit}".replace("e+", "e")
    return f"{x:.4g}{unit}"
