"""BLOOM-176B (BigScience tr11 slurm): ALiBi, embedding LayerNorm, bf16."""
from __future__ import annotations

from typing import Any

from gptlab.model.presets.rows import Row, fragment

# The schedule's horizon in samples: --lr-decay-samples 200M (410B tokens) (BLOOM slurm).
BLOOM_SAMPLES = 200_000_000
_SLURM = "BLOOM slurm (bigscience tr11-176B-ml.slurm)"

BLOOM_ROWS: list[Row] = [
    ("model", "position", "alibi", f"--position-embedding-type alibi, {_SLURM}"),
    ("model", "embed_norm", True, f"--embed-layernorm, {_SLURM}; the post argues against it"),
    ("model", "norm", "layernorm", "Megatron-DeepSpeed layers"),
    ("model", "norm_bias", True, "Megatron-DeepSpeed layers carry biases"),
    ("model", "bias", True, "Megatron-DeepSpeed layers carry biases"),
    ("model", "placement", "pre", "Megatron-DeepSpeed pre-LN"),
    ("model", "mlp", "gelu_tanh", "Megatron bias_gelu = tanh approximation (HF bloom_gelu_forward)"),
    ("model", "tie_embeddings", True, "BLOOM ties word embeddings and output"),
    ("model", "init", "bloom", f"--init-method-std 0.0048 = sqrt(1/(3d)) at d=14336, {_SLURM}"),
    ("train", "optimizer", "adamw", f"Adam, {_SLURM}"),
    ("train", "beta1", 0.9, f"--adam-beta1 0.9, {_SLURM}"),
    ("train", "beta2", 0.95, f"--adam-beta2 0.95, {_SLURM}"),
    ("train", "weight_decay", 0.1, f"--weight-decay 1e-1, {_SLURM}"),
    ("train", "grad_clip", 1.0, f"--clip-grad 1.0, {_SLURM}"),
    ("train", "schedule", "cosine", f"--lr-decay-style cosine, {_SLURM}"),
    ("train", "min_lr_ratio", 0.1, f"--min-lr 6e-6 of --lr 6e-5, {_SLURM}"),
    ("train", "warmup_fraction", 183_105 / BLOOM_SAMPLES,
     f"--lr-warmup-samples 183_105 (375M tokens) of 200M decay samples, {_SLURM}"),
    ("train", "lr", 6e-5, f"--lr 6e-5 (176B), {_SLURM}"),
    ("train", "precision", "bf16", f"--bf16, {_SLURM}"),
    ("train", "batch_size", 2048, f"--global-batch-size 2048, {_SLURM}"),
    ("train", "ramp", "linear", f"--rampup-batch-size 192 16 9_765_625, {_SLURM}"),
    ("train", "ramp_start_fraction", 192 / 2048, "ramp from 192 of 2048 sequences"),
    ("train", "ramp_fraction", 9_765_625 / BLOOM_SAMPLES, "over 9.77M (20B tokens) of 200M samples"),
    ("train", "z_loss", 0.0, "none"),
]


def bloom() -> dict[str, Any]:
    return fragment(BLOOM_ROWS)
