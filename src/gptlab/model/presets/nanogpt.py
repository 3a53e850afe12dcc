"""nanoGPT's GPT-2 block and the Llama block: the two modern baselines."""
from __future__ import annotations

from typing import Any

from gptlab.model.presets.rows import Row, fragment

NANOGPT_ROWS: list[Row] = [
    ("model", "position", "learned", "nanoGPT model.py"),
    ("model", "norm", "layernorm", "nanoGPT model.py"),
    ("model", "mlp", "gelu", "nanoGPT model.py (exact GeLU)"),
    ("model", "bias", False, "nanoGPT train.py bias=False"),
    ("model", "tie_embeddings", True, "nanoGPT model.py ties wte and lm_head"),
    ("train", "optimizer", "adamw", "nanoGPT train.py"),
    ("train", "beta2", 0.95, "nanoGPT train.py beta2 0.95"),
    ("train", "weight_decay", 0.1, "nanoGPT train.py"),
    ("train", "schedule", "cosine", "nanoGPT train.py: warmup, cosine to min_lr"),
    ("train", "min_lr_ratio", 0.1, "min_lr 6e-5 of 6e-4 (nanoGPT train.py)"),
    ("train", "warmup_fraction", 2000 / 600_000, "2000 warmup of 600k iters (nanoGPT train.py)"),
]

LLAMA_ROWS: list[Row] = [
    ("model", "position", "rope", "RoPE (Touvron 2023 §2.2)"),
    ("model", "norm", "rmsnorm", "RMSNorm pre-normalisation (Touvron 2023 §2.2)"),
    ("model", "mlp", "swiglu", "SwiGLU, 2/3 x 4d (Touvron 2023 §2.2)"),
    ("model", "bias", False, "meta-llama model.py: no biases"),
    ("model", "tie_embeddings", False, "meta-llama model.py: untied output"),
    ("train", "optimizer", "adamw", "AdamW (Touvron 2023 §2.3)"),
    ("train", "beta2", 0.95, "Touvron 2023 §2.3"),
    ("train", "weight_decay", 0.1, "Touvron 2023 §2.3"),
    ("train", "grad_clip", 1.0, "Touvron 2023 §2.3"),
    ("train", "schedule", "cosine", "cosine to 10 % of the peak (Touvron 2023 §2.3)"),
    ("train", "min_lr_ratio", 0.1, "Touvron 2023 §2.3"),
]


def nanogpt() -> dict[str, Any]:
    return fragment(NANOGPT_ROWS)


def llama() -> dict[str, Any]:
    return fragment(LLAMA_ROWS)
