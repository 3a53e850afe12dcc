"""GLM-130B (Zeng 2022): DeepNorm and the embedding-gradient shrink."""
from __future__ import annotations

from typing import Any


def glm() -> dict[str, Any]:
    model = {
        "position": "rope", "rope_style": "half",  # GLM-130B uses RoPE (Zeng 2022)
        "norm": "layernorm", "norm_bias": True, "bias": True,  # Megatron-style layers with biases
        "placement": "deepnorm", "deepnorm": "glm",  # DeepNorm, alpha = (2N)^1/2 (Zeng 2022, DeepNorm)
        "init": "deepnorm",                        # Xavier normal, (2N)^-1/2 on ffn, v, out (Zeng 2022, DeepNorm)
        "mlp": "geglu",                            # GeGLU FFN (Zeng 2022)
        "tie_embeddings": True,
        "embed_grad_scale": 0.1,                   # embedding gradient shrink, alpha = 0.1 (Zeng 2022, EGS)
    }
    train = {
        "optimizer": "adamw", "beta1": 0.9, "beta2": 0.95,  # AdamW (0.9, 0.95) (Zeng 2022, training config)
        "weight_decay": 0.1, "grad_clip": 1.0,
        "schedule": "cosine", "min_lr_ratio": 0.1,
        "lr": 8e-5,                                # peak 8e-5 (Zeng 2022, training config)
        "precision": "fp16",                       # trained in FP16 with fp32 softmax (Zeng 2022)
        "batch_size": 4224,                          # global batch 4224 (Zeng 2022)
        "ramp": "linear", "ramp_start_batch": 192,  # batch warm-up from 192 to 4224 (Zeng 2022, training config)
        "ramp_tokens": 40_000_000_000,             # over the first 2.5 % of 400B tokens
        "z_loss": 0.0,
    }
    return {"model": model, "train": train}
