"""GPT-3 (Brown 2020): GPT-2's architecture with its paper's optimizer, schedule and batch ramp, at every size of Table 2.1."""
from __future__ import annotations

from typing import Any

from gptlab.model.presets.rows import Row, fragment
from gptlab.schema import merge

# The paper's run, for the fractions below: 300B tokens (Brown 2020 §2.2, App. B).
GPT3_TOKENS = 300e9

GPT3_ROWS: list[Row] = [
    ("model", "position", "learned", "GPT-3 = GPT-2's architecture (Brown 2020 §2.1)"),
    ("model", "norm", "layernorm", "GPT-2 (Radford 2019 §2.3)"),
    ("model", "norm_bias", True, "GPT-2 code: biases everywhere"),
    ("model", "bias", True, "GPT-2 code: biases everywhere"),
    ("model", "placement", "pre", "LN at each sub-block's input (Radford 2019 §2.3)"),
    ("model", "mlp", "gelu_tanh", "GPT-2 code's gelu is the tanh approximation"),
    ("model", "tie_embeddings", True, "GPT-2 shares input and output embeddings"),
    ("model", "init", "gpt2", "N(0, 0.02), residual layers x 1/sqrt(2L) (Brown 2020 App. B)"),
    ("model", "dropout", 0.0, "dense attention only; banded sparse layers not modelled"),
    ("train", "optimizer", "adamw", "Adam (Brown 2020 App. B)"),
    ("train", "beta1", 0.9, "Brown 2020 App. B"),
    ("train", "beta2", 0.95, "Brown 2020 App. B"),
    ("train", "weight_decay", 0.1, "Brown 2020 App. B"),
    ("train", "grad_clip", 1.0, "global-norm clip 1.0 (Brown 2020 App. B)"),
    ("train", "schedule", "cosine", "cosine to 10 % (Brown 2020 App. B)"),
    ("train", "min_lr_ratio", 0.1, "Brown 2020 App. B"),
    ("train", "warmup_fraction", 375e6 / GPT3_TOKENS, "warmup over 375M of 300B tokens (Brown 2020 App. B)"),
    ("train", "decay_fraction", 260e9 / GPT3_TOKENS, "cosine over 260B tokens, then 10 % (Brown 2020 App. B)"),
    ("train", "lr", 6e-4, "125M peak LR (Brown 2020 Table 2.1)"),
    ("train", "precision", "auto", "not stated; auto = bf16 where fast (the post: bf16, not fp16)"),
    ("train", "batch_size", 256, "0.5M tokens at 125M (Brown 2020 Table 2.1)"),
    ("train", "ramp", "linear", "linear batch ramp (Brown 2020 App. B)"),
    ("train", "ramp_start_fraction", 16 / 256, "from 32k tokens = 16 x 2048 of 0.5M (Brown 2020 App. B)"),
    ("train", "ramp_fraction", 4e9 / GPT3_TOKENS, "over the first 4B (of 4-12B) of 300B tokens (Brown 2020 App. B)"),
    ("train", "z_loss", 0.0, "no z-loss in GPT-3"),
]


def gpt3() -> dict[str, Any]:
    return fragment(GPT3_ROWS)


# GPT-3 size table (Brown 2020 Table 2.1): n_layer, n_embd, n_head, batch tokens, peak LR.
GPT3_SIZES: dict[str, tuple[int, int, int, int, float]] = {
    "125m": (12, 768, 12, 524_288, 6.0e-4),
    "350m": (24, 1024, 16, 524_288, 3.0e-4),
    "760m": (24, 1536, 16, 524_288, 2.5e-4),
    "1.3b": (24, 2048, 16, 1_048_576, 2.0e-4),  # printed as 24 heads x d_head 128 (3072 != 2048); keep d_head 128
    "2.7b": (32, 2560, 32, 1_048_576, 1.6e-4),
    "6.7b": (32, 4096, 32, 2_097_152, 1.2e-4),
    "13b": (40, 5120, 40, 2_097_152, 1.0e-4),   # printed as 5140; 40 heads x 128 = 5120
    "175b": (96, 12288, 96, 3_145_728, 0.6e-4),  # "3.2M" tokens = 1536 x 2048
}
GPT3_CONTEXT = 2048  # n_ctx for every size (Brown 2020 §2.1)


def size_fragment(size: str) -> dict[str, Any]:
    """The shape only, so that another recipe keeps its own optimizer settings (``palm+1.3b``)."""
    n_layer, n_embd, n_head, _, _ = GPT3_SIZES[size]
    return {"model": {"n_layer": n_layer, "n_embd": n_embd, "n_head": n_head, "block_size": GPT3_CONTEXT}}


def gpt3_sized(size: str) -> dict[str, Any]:
    """GPT-3's recipe at one size of its paper: the shape plus that size's batch and peak LR;
    the ramp still starts at 32k tokens = 16 sequences of that size's batch."""
    _, _, _, batch_tokens, lr = GPT3_SIZES[size]
    batch = batch_tokens // GPT3_CONTEXT
    frag = merge(gpt3(), size_fragment(size))
    return merge(frag, {"train": {"batch_size": batch, "lr": lr, "ramp_start_fraction": 16 / batch}})
