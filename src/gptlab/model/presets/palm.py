"""PaLM (Chowdhery 2022): SwiGLU, RoPE, parallel block, no biases, z-loss, Adafactor; and its sequential variant."""
from __future__ import annotations

from typing import Any


def palm() -> dict[str, Any]:
    model = {
        "position": "rope", "rope_style": "interleaved",  # RoPE (Chowdhery 2022 §2); rotate pairs, as in GPT-J/Mesh-TF
        "norm": "layernorm", "norm_bias": False,  # "no biases ... in layer norms" (Chowdhery 2022 §2)
        "norm_eps": 1e-6,                         # T5X/Flax LayerNorm default
        "bias": False,                            # "no biases in any of the dense kernels" (§2)
        "block": "parallel",                      # y = x + MLP(LN(x)) + Attention(LN(x)) (§2)
        "mlp": "swiglu", "ffn_rule": "ratio", "mlp_ratio": 4.0,  # SwiGLU with d_ff = 4d (§2, Table 1)
        "n_kv_head": 1,                           # multi-query attention (§2)
        "tie_embeddings": True,                   # shared input/output embeddings (§2)
        "logit_scale": "rsqrt_d",                 # "scale the pre-softmax output logits by 1/sqrt(n)" (§2)
        "init": "palm",                           # fan-in kernels, embeddings N(0, 1) (§5)
        "dropout": 0.0,                           # no dropout in pre-training (§5)
    }
    train = {
        "optimizer": "adafactor", "beta1": 0.9,   # unfactorised Adafactor with beta1 0.9 (§5); beta2 = 1 - k^-0.8 is the engine's
        "schedule": "rsqrt", "lr": 1e-2,          # 1e-2 for 10k steps, then 1/sqrt(k) (§5)
        "warmup_steps": 10_000,                   # the constant 1e-2 phase
        "grad_clip": 1.0,                         # global-norm clip 1.0 (§5)
        "weight_decay": 1.0,                      # Adafactor decays by weight_decay * lr^2: "lr^2.0" (§5)
        "precision": "bf16",                      # bf16 on TPU v4
        "z_loss": 1e-4,                           # z_loss = 1e-4 * log^2 Z (§5)
        # batch 512 until step 50k, 1024 until 115k, then 2048 (§5): boundaries, then sizes
        "ramp": "steps", "ramp_steps": [50_000, 115_000], "ramp_batches": [512, 1024, 2048],
        "batch_size": 2048,
    }
    return {"model": model, "train": train}


def palm_sequential() -> dict[str, Any]:
    # PaLM's choices in a sequential block with RMSNorm: the Llama-shaped variant of PaLM, the
    # form LlamaForCausalLM represents (reference note §2.6: "palm_like (sequential, RMSNorm) -> Llama").
    frag = palm()
    frag["model"].update({"block": "sequential", "norm": "rmsnorm"})
    return frag
