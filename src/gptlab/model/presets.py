"""Named recipe presets: plain functions returning RunConfig fragments ({"model": ..., "train": ...}).

A recipe declares its architecture *and* the training defaults its paper used (optimizer,
schedule, precision, batch ramp, z-loss), for the training engine to consume. Anything set
in a config file or on the command line wins over the preset. Presets compose with ``+``,
later parts winning: ``model.preset=palm+1.3b`` is PaLM's recipe at GPT-3's 1.3B size.

Sources are cited per line: "Brown 2020" = GPT-3 paper (App. B, Table 2.1); "Zhang 2022" =
OPT paper; "BLOOM slurm" = bigscience tr11-176B-ml.slurm; "Chowdhery 2022" = PaLM paper;
"Zeng 2022" = GLM-130B paper; "Wang 2022" = DeepNet paper.
"""
from __future__ import annotations

from typing import Any, Callable

# Export targets per recipe, for docs and `gptlab export` messages (see gptlab.interop).
EXPORT_TARGETS = {
    "nanogpt": "GPT2LMHeadModel", "gpt3": "GPT2LMHeadModel", "opt": "OPTForCausalLM",
    "bloom": "BloomForCausalLM", "llama": "LlamaForCausalLM", "palm": "CohereForCausalLM",
    "palm_sequential": "LlamaForCausalLM", "glm": None,
}


def nanogpt() -> dict[str, Any]:
    # The GPT-2 block as nanoGPT writes it: learned positions, GeLU, pre-LN, tied embeddings.
    return {"model": {"position": "learned", "norm": "layernorm", "mlp": "gelu", "bias": False,
                      "tie_embeddings": True}}


def llama() -> dict[str, Any]:
    # Llama: RoPE, RMSNorm, SwiGLU, no biases.
    return {"model": {"position": "rope", "norm": "rmsnorm", "mlp": "swiglu", "bias": False,
                      "tie_embeddings": False}}


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
        "ramp": "none",                                     # no batch ramp reported
        "z_loss": 0.0,
    }
    return {"model": model, "train": train}


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
    frag = _merge(gpt3(), size_fragment(size))
    return _merge(frag, {"train": {"batch_size": batch_tokens // GPT3_CONTEXT, "lr": lr}})


RECIPES: dict[str, Callable[[], dict[str, Any]]] = {
    "nanogpt": nanogpt, "llama": llama, "gpt3": gpt3, "opt": opt, "bloom": bloom,
    "palm": palm, "palm_sequential": palm_sequential, "glm": glm,
}
PRESETS: dict[str, Callable[[], dict[str, Any]]] = dict(RECIPES)
PRESETS.update({size: (lambda s=size: size_fragment(s)) for size in GPT3_SIZES})
# gpt3-125m ... gpt3-175b: GPT-3's recipe at each size of its paper.
PRESETS.update({f"gpt3-{size}": (lambda s=size: gpt3_sized(s)) for size in GPT3_SIZES})


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def preset_fragment(name: str) -> dict[str, Any]:
    """The RunConfig fragment of ``name``; ``a+b`` merges b over a."""
    frag: dict[str, Any] = {}
    for part in str(name).split("+"):
        part = part.strip()
        if part not in PRESETS:
            from gptlab.config import ConfigError
            raise ConfigError(f"model.preset: unknown preset {part!r} (known: {', '.join(PRESETS)})")
        frag = _merge(frag, PRESETS[part]())
    return frag
