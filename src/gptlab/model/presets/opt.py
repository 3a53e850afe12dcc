"""OPT-175B (Zhang 2022): the public reproduction, fp16 with a dynamic loss scale."""
from __future__ import annotations

from typing import Any


def opt() -> dict[str, Any]:
    model = {
        "position": "learned",   # learned positions, offset by 2 in metaseq/HF (Zhang 2022; metaseq --decoder-learned-pos)
        "norm": "layernorm", "norm_bias": True, "bias": True,  # fairseq/metaseq layers carry biases
        "placement": "pre",      # pre-LN (do_layer_norm_before) for every size but 350M
        "mlp": "relu",           # ReLU (Zhang 2022 §2.1; metaseq --activation-fn relu)
        "tie_embeddings": True,  # --share-decoder-input-output-embed
        "init": "opt",           # N(0, 0.006), output layers scaled by 1/sqrt(2L) (Zhang 2022 §2.2)
        "dropout": 0.1,          # dropout 0.1 throughout, none on embeddings (Zhang 2022 §2.2)
    }
    train = {
        "optimizer": "adamw", "beta1": 0.9, "beta2": 0.95,  # AdamW (0.9, 0.95) (Zhang 2022 §2.2)
        "weight_decay": 0.1, "grad_clip": 1.0,              # wd 0.1, --clip-norm 1.0 (metaseq launcher)
        "schedule": "cosine", "min_lr_ratio": 0.1,  # OPT decayed *linearly* to 10 %; cosine is the nearest here
        "lr": 6e-4,                                         # 125M peak LR (Zhang 2022 Table 1)
        "precision": "fp16",                                # FP16 weights, dynamic loss scale (Zhang 2022 §2.4)
        # metaseq's loss scaler, not torch's defaults (2^16, x2 every 2000 steps): start at 4
        # (--fp16-init-scale 4), double after 256 clean steps (--fp16-scale-window), halve on
        # an overflow, never below 2^-5 (--min-loss-scale).
        "loss_scale_init": 4.0, "loss_scale_growth_interval": 256, "loss_scale_backoff": 0.5,
        "loss_scale_min": 2.0 ** -5,
        "ramp": "none",                                     # no batch ramp reported
        "z_loss": 0.0,
    }
    return {"model": model, "train": train}
