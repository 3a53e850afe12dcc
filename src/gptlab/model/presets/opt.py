"""OPT-175B (Zhang 2022): the public reproduction, fp16 with a dynamic loss scale."""
from __future__ import annotations

from typing import Any

from gptlab.model.presets.rows import Row, fragment

# The schedule's horizon: linear decay "over 300B tokens" (Zhang 2022 §2.2).
OPT_TOKENS = 300e9

OPT_ROWS: list[Row] = [
    ("model", "position", "learned", "learned, offset 2 (Zhang 2022; metaseq --decoder-learned-pos)"),
    ("model", "norm", "layernorm", "metaseq TransformerDecoderLayer"),
    ("model", "norm_bias", True, "fairseq/metaseq layers carry biases"),
    ("model", "bias", True, "fairseq/metaseq layers carry biases"),
    ("model", "placement", "pre", "do_layer_norm_before, every size but 350M"),
    ("model", "mlp", "relu", "ReLU (Zhang 2022 §2.1; metaseq --activation-fn relu)"),
    ("model", "tie_embeddings", True, "metaseq --share-decoder-input-output-embed"),
    ("model", "init", "opt", "N(0, 0.006), output layers x 1/sqrt(2L) (Zhang 2022 §2.2)"),
    ("model", "dropout", 0.1, "dropout 0.1, none on embeddings (Zhang 2022 §2.2)"),
    ("train", "optimizer", "adamw", "AdamW (Zhang 2022 §2.2)"),
    ("train", "beta1", 0.9, "Zhang 2022 §2.2"),
    ("train", "beta2", 0.95, "Zhang 2022 §2.2"),
    ("train", "weight_decay", 0.1, "Zhang 2022 §2.2"),
    ("train", "grad_clip", 1.0, "metaseq opt_baselines.py --clip-norm 1.0"),
    ("train", "schedule", "linear", "linear decay (Zhang 2022 §2.2; metaseq polynomial_decay)"),
    ("train", "min_lr_ratio", 0.1, "to 10 % of the peak (Zhang 2022 §2.2; end LR 0.1 x lr)"),
    ("train", "warmup_fraction", 375e6 / OPT_TOKENS,
     "375M warmup tokens (metaseq opt_job_constants.py TOTAL_WARMUP_TOKENS) of 300B"),
    ("train", "lr", 6e-4, "125M peak LR (Zhang 2022 Table 1)"),
    ("train", "precision", "fp16", "FP16 weights, dynamic loss scale (Zhang 2022 §2.4)"),
    # metaseq's loss scaler, not torch's defaults (2^16, x2 every 2000 steps, no floor).
    ("train", "loss_scale_init", 4.0, "metaseq's loss scaler for OPT: initial scale 4"),
    ("train", "loss_scale_growth_interval", 256, "metaseq: x2 after a window of 256 clean steps"),
    ("train", "loss_scale_backoff", 0.5, "metaseq: /2 on an overflow"),
    ("train", "loss_scale_min", 2.0 ** -5, "metaseq: floor 2^-5 (gptlab clamps the scale to it)"),
    ("train", "ramp", "none", "no batch ramp reported"),
    ("train", "z_loss", 0.0, "none"),
]


def opt() -> dict[str, Any]:
    return fragment(OPT_ROWS)
