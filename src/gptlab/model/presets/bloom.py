"""BLOOM-176B (BigScience tr11 slurm): ALiBi, embedding LayerNorm, bf16."""
from __future__ import annotations

from typing import Any


def bloom() -> dict[str, Any]:
    model = {
        "position": "alibi",     # --position-embedding-type alibi (BLOOM slurm)
        "embed_norm": True,      # --embed-layernorm (BLOOM slurm); the post argues against it
        "norm": "layernorm", "norm_bias": True, "bias": True,  # Megatron-DeepSpeed layers carry biases
        "placement": "pre",
        "mlp": "gelu_tanh",      # Megatron's bias_gelu is the tanh approximation (HF bloom_gelu_forward)
        "tie_embeddings": True,  # BLOOM ties word embeddings and output
        "init": "bloom",         # --init-method-std 0.0048 = sqrt(1/(3d)) at d=14336
    }
    train = {
        "optimizer": "adamw", "beta1": 0.9, "beta2": 0.95,  # --adam-beta1 0.9 --adam-beta2 0.95
        "weight_decay": 0.1, "grad_clip": 1.0,              # --weight-decay 1e-1 --clip-grad 1.0
        "schedule": "cosine", "min_lr_ratio": 0.1,          # --lr-decay-style cosine, min-lr 6e-6 of 6e-5
        "lr": 6e-5,                                         # --lr 6e-5 (176B)
        "precision": "bf16",                                # --bf16
        "batch_size": 2048,                                 # --global-batch-size 2048
        "ramp": "linear", "ramp_start_batch": 192,          # --rampup-batch-size 192 16 9_765_625
        "ramp_tokens": 20_000_000_000,                      # 9,765,625 samples x 2048 tokens
        "z_loss": 0.0,
    }
    return {"model": model, "train": train}
