"""GLM-130B (Zeng 2022): DeepNorm and the embedding-gradient shrink."""
from __future__ import annotations

from typing import Any

from gptlab.model.presets.rows import Row, fragment

GLM_ROWS: list[Row] = [
    ("model", "position", "rope", "RoPE (Zeng 2022)"),
    ("model", "rope_style", "half", "GLM-130B code rotates halves"),
    ("model", "norm", "layernorm", "Megatron-style layers (Zeng 2022)"),
    ("model", "norm_bias", True, "Megatron-style layers with biases"),
    ("model", "bias", True, "Megatron-style layers with biases"),
    ("model", "placement", "deepnorm", "DeepNorm (Zeng 2022 §2.3)"),
    ("model", "deepnorm", "glm", "alpha = (2N)^1/2 (Zeng 2022 §2.3)"),
    ("model", "init", "deepnorm", "Xavier normal, (2N)^-1/2 on ffn, v, out (Zeng 2022 §2.3)"),
    ("model", "mlp", "geglu", "GeGLU FFN (Zeng 2022)"),
    ("model", "tie_embeddings", True, "GLM-130B ties input and output embeddings"),
    ("model", "embed_grad_scale", 0.1, "embedding gradient shrink, alpha = 0.1 (Zeng 2022 §3)"),
    ("train", "optimizer", "adamw", "AdamW (Zeng 2022, training setup)"),
    ("train", "beta1", 0.9, "Zeng 2022, training setup"),
    ("train", "beta2", 0.95, "Zeng 2022, training setup"),
    ("train", "weight_decay", 0.1, "Zeng 2022, training setup"),
    ("train", "grad_clip", 1.0, "Zeng 2022, training setup"),
    ("train", "schedule", "cosine", "10x cosine decay (Zeng 2022, training setup)"),
    ("train", "min_lr_ratio", 0.1, "10x cosine decay (Zeng 2022, training setup)"),
    ("train", "warmup_fraction", 0.005, "LR warmup over the first 0.5 % of samples (Zeng 2022; recalled)"),
    ("train", "lr", 8e-5, "peak 8e-5 (Zeng 2022, training setup)"),
    ("train", "precision", "fp16", "FP16 with fp32 softmax (Zeng 2022)"),
    ("train", "batch_size", 4224, "global batch 4224 (Zeng 2022)"),
    ("train", "ramp", "linear", "batch warm-up 192 -> 4224 (Zeng 2022, training setup)"),
    ("train", "ramp_start_fraction", 192 / 4224, "from 192 of 4224 sequences"),
    ("train", "ramp_fraction", 0.025, "over the first 2.5 % of samples (Zeng 2022, training setup)"),
    ("train", "z_loss", 0.0, "none"),
]


def glm() -> dict[str, Any]:
    return fragment(GLM_ROWS)
