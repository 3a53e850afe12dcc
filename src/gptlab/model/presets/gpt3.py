"""GPT-3 (Brown 2020): GPT-2's architecture with its paper's optimizer, schedule and batch ramp, at every size of Table 2.1."""
from __future__ import annotations

from typing import Any

from gptlab.schema import merge


def gpt3() -> dict[str, Any]:
    model = {
        "position": "learned",   # GPT-3 = GPT-2's architecture (Brown 2020 §2.1)
        "norm": "layernorm", "norm_bias": True, "bias": True,  # GPT-2 code: biases everywhere
        "placement": "pre",      # GPT-2 moved LN to the input of each sub-block (Radford 2019 §2.3)
        "mlp": "gelu_tanh",      # GPT-2 code's gelu is the tanh approximation
        "tie_embeddings": True,  # GPT-2 shares input and output embeddings
        "init": "gpt2",          # N(0, 0.02), residual layers scaled by 1/sqrt(N), N = 2L (Brown 2020 App. B)
        "dropout": 0.0,          # dense attention only; GPT-3's banded sparse layers are not modelled
    }
    train = {
        "optimizer": "adamw", "beta1": 0.9, "beta2": 0.95,  # Adam beta1 0.9, beta2 0.95 (Brown 2020 App. B)
        "weight_decay": 0.1, "grad_clip": 1.0,              # decay 0.1, global-norm clip 1.0 (App. B)
        "schedule": "cosine", "min_lr_ratio": 0.1,          # cosine to 10 % of peak (App. B)
        "lr": 6e-4,                                         # 125M peak LR (Table 2.1)
        "precision": "auto",  # not stated by the paper; auto = bf16 where fast (the post: bf16, not fp16)
        "batch_size": 256,                                  # 0.5M tokens at 125M (Table 2.1); sizes override
        "ramp": "linear", "ramp_start_batch": 16,           # from 32k tokens = 16 x 2048 (App. B)
        "ramp_tokens": 4_000_000_000,                       # "over the first 4-12 billion tokens" (App. B)
        "z_loss": 0.0,                                      # no z-loss in GPT-3
    }
    return {"model": model, "train": train}




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
    """GPT-3's recipe at one size of its paper: the shape plus that size's batch and peak LR."""
    _, _, _, batch_tokens, lr = GPT3_SIZES[size]
    frag = merge(gpt3(), size_fragment(size))
    return merge(frag, {"train": {"batch_size": batch_tokens // GPT3_CONTEXT, "lr": lr}})
