"""PaLM (Chowdhery 2022): SwiGLU, RoPE, parallel block, no biases, z-loss, Adafactor; and its sequential variant."""
from __future__ import annotations

from typing import Any

from gptlab.model.presets.rows import Row, fragment, override

# PaLM's heads are 256 wide at every size (Chowdhery 2022 Table 1). The preset leaves
# model.head_dim unset (n_embd / n_head) so that a laptop-width PaLM stays small and exports;
# set model.head_dim=256 for the paper's shape (export then refuses: no HF class has it).

# PaLM-540B's run in steps (Chowdhery 2022 §5): the fractions below are of this.
PALM_STEPS = 255_000

PALM_ROWS: list[Row] = [
    ("model", "position", "rope", "RoPE (Chowdhery 2022 §2)"),
    ("model", "rope_style", "interleaved", "rotate pairs, as in GPT-J/Mesh-TF"),
    ("model", "norm", "layernorm", "LayerNorm (Chowdhery 2022 §2)"),
    ("model", "norm_bias", False, "no biases in layer norms (Chowdhery 2022 §2)"),
    ("model", "norm_eps", 1e-6, "T5X/Flax LayerNorm default"),
    ("model", "bias", False, "no biases in any dense kernel (Chowdhery 2022 §2)"),
    ("model", "block", "parallel", "y = x + MLP(LN(x)) + Attn(LN(x)) (Chowdhery 2022 §2)"),
    ("model", "mlp", "swiglu", "SwiGLU (Chowdhery 2022 §2)"),
    ("model", "ffn_rule", "ratio", "d_ff = 4d even though gated (Chowdhery 2022 §2, Table 1)"),
    ("model", "mlp_ratio", 4.0, "d_ff = 4d (Chowdhery 2022 Table 1)"),
    ("model", "n_kv_head", 1, "multi-query attention (Chowdhery 2022 §2)"),
    ("model", "tie_embeddings", True, "shared input/output embeddings (Chowdhery 2022 §2)"),
    ("model", "logit_scale", "rsqrt_d", "pre-softmax logits x 1/sqrt(n) (Chowdhery 2022 §2)"),
    ("model", "init", "palm", "fan-in kernels, embeddings N(0, 1) (Chowdhery 2022 §5)"),
    ("model", "dropout", 0.0, "no dropout in pre-training (Chowdhery 2022 §5)"),
    ("train", "optimizer", "adafactor", "unfactorised Adafactor (Chowdhery 2022 §5)"),
    ("train", "beta1", 0.9, "Chowdhery 2022 §5"),
    ("train", "adafactor_decay_exponent", 0.8, "beta2 = 1 - k^-0.8 (Chowdhery 2022 §5)"),
    ("train", "adafactor_clip", 1.0, "update clipping 1.0: t5x adafactor.py default"),
    ("train", "schedule", "rsqrt", "1e-2 for 10k steps, then 1/sqrt(k) (Chowdhery 2022 §5)"),
    ("train", "lr", 1e-2, "Chowdhery 2022 §5"),
    ("train", "warmup_fraction", 10_000 / PALM_STEPS, "the constant phase: 10k of 255k steps"),
    ("train", "grad_clip", 1.0, "global-norm clip 1.0 (Chowdhery 2022 §5)"),
    ("train", "weight_decay", 1.0, "decay rate lr^2.0 = 1.0 x lr^2 (Chowdhery 2022 §5)"),
    ("train", "adafactor_wd_lr_exponent", 2.0, "lr^2.0 (Chowdhery 2022 §5)"),
    ("train", "decay_scope", "all", "every parameter, N(0,1) embeddings too (t5x adafactor.py)"),
    ("train", "precision", "bf16", "bf16 on TPU v4"),
    ("train", "z_loss", 1e-4, "1e-4 * log^2 Z (Chowdhery 2022 §5)"),
    ("train", "batch_size", 2048, "final batch 2048 (Chowdhery 2022 §5)"),
    ("train", "ramp", "steps", "512 to step 50k, 1024 to 115k, then 2048 (Chowdhery 2022 §5)"),
    ("train", "ramp_step_fractions", [50_000 / PALM_STEPS, 115_000 / PALM_STEPS], "50k and 115k of 255k steps"),
    ("train", "ramp_batch_fractions", [0.25, 0.5, 1.0], "512, 1024, 2048 of 2048"),
]

PALM_SEQUENTIAL_ROWS: list[Row] = override(PALM_ROWS, [
    # The Llama-shaped variant of PaLM, the form LlamaForCausalLM represents.
    ("model", "block", "sequential", "variant: attention then MLP"),
    ("model", "norm", "rmsnorm", "variant: RMSNorm, as Llama"),
])


def palm() -> dict[str, Any]:
    return fragment(PALM_ROWS)


def palm_sequential() -> dict[str, Any]:
    return fragment(PALM_SEQUENTIAL_ROWS)
