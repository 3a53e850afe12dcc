"""One adapter per Hugging Face architecture: a key map plus named transforms.

An adapter says which gptlab configurations its architecture represents exactly
(``refusals`` lists why not, one line each), how to write the HF config, and how to
move a state dict across. Anything it cannot represent is refused, never approximated:
a silently wrong export is worse than none.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Callable

import torch

from gptlab.interop.errors import ExportRefused
from gptlab.interop.transforms import (
    StateDict,
    Transform,
    conv1d_transpose,
    fold_logit_scale,
    fuse_qkv_contiguous,
    fuse_qkv_per_head,
    opt_position_offset,
    rope_half_to_interleaved,
    rope_interleaved_to_half,
)
from gptlab.model.config import ModelConfig
from gptlab.model.gpt import fuse_qkv_state, split_qkv_state

# Derived buffers some HF versions keep in the state dict; they carry no weights.
_HF_BUFFERS = ("rotary_emb.inv_freq", "attn.bias", "attn.masked_bias")


@dataclass
class Adapter:
    arch: str                                   # the HF class name, as in config.json "architectures"
    keys: dict[str, str]                        # native name -> HF name; "{i}" is the layer index
    refusals: Callable[[ModelConfig], list[str]]
    hf_config: Callable[[ModelConfig, dict], dict]      # kwargs for the HF config class
    native_config: Callable[[Any], dict]                 # HF config -> ModelConfig fields
    transforms: Callable[[ModelConfig], list[Transform]]  # in export order

    # ------------------------------------------------------------------------- key map

    def _expanded(self, n_layer: int) -> dict[str, str]:
        out = {}
        for native, hf in self.keys.items():
            if "{i}" in native:
                for i in range(n_layer):
                    out[native.format(i=i)] = hf.format(i=i)
            else:
                out[native] = hf
        return out

    def config_for_export(self, cfg: ModelConfig) -> ModelConfig:
        """The config the HF side sees: a scaled output folds into an untied head."""
        if self._folds_scale(cfg):
            return replace(cfg, tie_embeddings=False, logit_scale="none")
        return cfg

    def _folds_scale(self, cfg: ModelConfig) -> bool:
        return cfg.logit_scale != "none" and self.arch != "CohereForCausalLM"

    def export_transforms(self, cfg: ModelConfig) -> list[Transform]:
        ts = list(self.transforms(cfg))
        if self._folds_scale(cfg):
            ts.insert(0, fold_logit_scale)
        return ts

    def to_hf(self, sd: StateDict, cfg: ModelConfig, skip: tuple[str, ...] = ()) -> StateDict:
        """Native state dict -> HF state dict. ``skip`` names transforms to leave out (tests only).

        The native model keeps q, k and v as one ``qkv_proj`` matrix; the transforms and key
        maps below start from separate q_proj/k_proj/v_proj, which every HF layout derives from."""
        sd = split_qkv_state(sd, cfg)
        if cfg.tie_embeddings and not self._folds_scale(cfg):
            sd.pop("lm_head.weight", None)   # HF re-ties it to the input embedding
        for t in self.export_transforms(cfg):
            if t.name not in skip:
                sd = t.to_hf(sd, cfg)
        names = self._expanded(cfg.n_layer)
        unknown = sorted(set(sd) - set(names))
        if unknown:
            raise ValueError(f"{self.arch}: no HF name for {', '.join(unknown[:4])}")
        return {names[k]: v for k, v in sd.items()}

    def from_hf(self, hf_sd: StateDict, cfg: ModelConfig) -> StateDict:
        """HF state dict -> native state dict for a model built from ``cfg``."""
        back = {hf: native for native, hf in self._expanded(cfg.n_layer).items()}
        unknown = sorted(k for k in hf_sd if k not in back and not k.endswith(_HF_BUFFERS))
        if unknown:
            raise ValueError(f"{self.arch}: no gptlab name for {', '.join(unknown[:4])}")
        sd = {back[k]: v for k, v in hf_sd.items() if k in back}
        for t in reversed(self.transforms(cfg)):
            sd = t.from_hf(sd, cfg)
        if cfg.tie_embeddings:
            sd["lm_head.weight"] = sd["embed_tokens.weight"]
        return fuse_qkv_state(sd, cfg)


# ----------------------------------------------------------------------------- shared checks

def _common_refusals(cfg: ModelConfig, arch: str, *, position: str, norm: str, block: str = "sequential",
                     mlps: tuple[str, ...], gqa: bool = False, embed_norm: bool = False) -> list[str]:
    why = []
    if cfg.position != position:
        why.append(f"model.position={cfg.position!r}: {arch} uses {position} positions")
    if cfg.norm != norm:
        why.append(f"model.norm={cfg.norm!r}: {arch} uses {norm}")
    if cfg.placement != "pre":
        why.append(f"model.placement={cfg.placement!r}: {arch} is pre-LN; no HF causal-LM class "
                   f"implements {'DeepNorm' if cfg.placement == 'deepnorm' else 'post-LN'}")
    if cfg.block != block:
        why.append(f"model.block={cfg.block!r}: {arch} has a {block} block")
    if cfg.mlp not in mlps:
        why.append(f"model.mlp={cfg.mlp!r}: {arch} supports {', '.join(mlps)}")
    if not gqa and (cfg.n_kv_head or cfg.n_head) != cfg.n_head:
        why.append(f"model.n_kv_head={cfg.n_kv_head}: {arch} has no multi-query/grouped-query attention")
    if cfg.embed_norm != embed_norm:
        why.append(f"model.embed_norm={cfg.embed_norm}: {arch} "
                   f"{'always has' if embed_norm else 'has no'} an embedding LayerNorm")
    if not cfg.head_dim_is_default:
        # Every HF class below derives the head width from hidden/heads (our Llama import refuses
        # an explicit one), so exporting would reshape q/k/v into wrong heads: refuse instead.
        why.append(f"model.head_dim={cfg.head_dim}: {arch} uses hidden_size / num_heads = "
                   f"{cfg.n_embd / cfg.n_head:g}")
    if cfg.position == "rope" and cfg.rotary_dim != cfg.head_dim:
        why.append(f"model.rope_fraction={cfg.rope_fraction}: {arch} rotates the whole head")
    return why


def _layer_keys(prefix: str, names: dict[str, str]) -> dict[str, str]:
    return {f"layers.{{i}}.{k}": f"{prefix}{v}" for k, v in names.items()}


def _ids(special: dict) -> dict:
    return {"bos_token_id": special.get("bos"), "eos_token_id": special.get("eos"),
            "pad_token_id": special.get("pad")}


def _hidden_act(name: str, table: dict[str, str], arch: str) -> str:
    for native, hf in table.items():
        if hf == name:
            return native
    raise ValueError(f"{arch}: activation {name!r} has no gptlab equivalent")


# ----------------------------------------------------------------------------- GPT-2

_GPT2_ACT = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu"}

GPT2 = Adapter(
    arch="GPT2LMHeadModel",
    keys={"embed_tokens.weight": "transformer.wte.weight",
          "embed_positions.weight": "transformer.wpe.weight",
          **_layer_keys("transformer.h.{i}.", {
              "input_layernorm.weight": "ln_1.weight", "input_layernorm.bias": "ln_1.bias",
              "self_attn.qkv_proj.weight": "attn.c_attn.weight", "self_attn.qkv_proj.bias": "attn.c_attn.bias",
              "self_attn.o_proj.weight": "attn.c_proj.weight", "self_attn.o_proj.bias": "attn.c_proj.bias",
              "post_attention_layernorm.weight": "ln_2.weight", "post_attention_layernorm.bias": "ln_2.bias",
              "mlp.up_proj.weight": "mlp.c_fc.weight", "mlp.up_proj.bias": "mlp.c_fc.bias",
              "mlp.down_proj.weight": "mlp.c_proj.weight", "mlp.down_proj.bias": "mlp.c_proj.bias"}),
          "norm.weight": "transformer.ln_f.weight", "norm.bias": "transformer.ln_f.bias",
          "lm_head.weight": "lm_head.weight"},
    refusals=lambda c: _common_refusals(c, "GPT2LMHeadModel", position="learned", norm="layernorm",
                                        mlps=tuple(_GPT2_ACT)),
    hf_config=lambda c, special: dict(
        vocab_size=c.vocab_size, n_positions=c.block_size, n_embd=c.n_embd, n_layer=c.n_layer,
        n_head=c.n_head, n_inner=c.ffn_hidden, activation_function=_GPT2_ACT[c.mlp],
        layer_norm_epsilon=c.norm_eps, resid_pdrop=c.dropout, embd_pdrop=c.dropout, attn_pdrop=c.dropout,
        tie_word_embeddings=c.tie_embeddings, **_ids(special)),
    native_config=lambda h: _gpt2_native(h),
    transforms=lambda c: [fuse_qkv_contiguous, conv1d_transpose],
)


def _refuse_if(h, arch: str, pairs: list[tuple[str, Any]]) -> None:
    for key, bad in pairs:
        if getattr(h, key, None) == bad:
            raise ValueError(f"{arch}: config {key}={bad!r} has no gptlab equivalent")


def _gpt2_native(h) -> dict:
    _refuse_if(h, "GPT2LMHeadModel", [("scale_attn_by_inverse_layer_idx", True), ("scale_attn_weights", False)])
    return dict(position="learned", norm="layernorm", norm_bias=True, bias=True, n_layer=h.n_layer,
                n_head=h.n_head, n_embd=h.n_embd, block_size=h.n_positions, vocab_size=h.vocab_size,
                mlp=_hidden_act(h.activation_function, _GPT2_ACT, "GPT2LMHeadModel"),
                ffn_rule="explicit", ffn_size=h.n_inner or 4 * h.n_embd, ffn_multiple_of=1,
                norm_eps=h.layer_norm_epsilon, tie_embeddings=h.tie_word_embeddings)


# ----------------------------------------------------------------------------- OPT

_OPT_ACT = {"relu": "relu", "gelu": "gelu", "gelu_tanh": "gelu_new"}


def _opt_refusals(c: ModelConfig) -> list[str]:
    why = _common_refusals(c, "OPTForCausalLM", position="learned", norm="layernorm", mlps=tuple(_OPT_ACT))
    if c.norm_eps != 1e-5:
        why.append(f"model.norm_eps={c.norm_eps}: OPTForCausalLM's LayerNorm eps is fixed at 1e-5")
    return why


OPT = Adapter(
    arch="OPTForCausalLM",
    keys={"embed_tokens.weight": "model.decoder.embed_tokens.weight",
          "embed_positions.weight": "model.decoder.embed_positions.weight",
          **_layer_keys("model.decoder.layers.{i}.", {
              **{f"self_attn.{p}_proj.{k}": f"self_attn.{p}_proj.{k}" for p in "qkv" for k in ("weight", "bias")},
              "self_attn.o_proj.weight": "self_attn.out_proj.weight",
              "self_attn.o_proj.bias": "self_attn.out_proj.bias",
              "input_layernorm.weight": "self_attn_layer_norm.weight",
              "input_layernorm.bias": "self_attn_layer_norm.bias",
              "mlp.up_proj.weight": "fc1.weight", "mlp.up_proj.bias": "fc1.bias",
              "mlp.down_proj.weight": "fc2.weight", "mlp.down_proj.bias": "fc2.bias",
              "post_attention_layernorm.weight": "final_layer_norm.weight",
              "post_attention_layernorm.bias": "final_layer_norm.bias"}),
          "norm.weight": "model.decoder.final_layer_norm.weight", "norm.bias": "model.decoder.final_layer_norm.bias",
          "lm_head.weight": "lm_head.weight"},
    refusals=_opt_refusals,
    hf_config=lambda c, special: dict(
        vocab_size=c.vocab_size, hidden_size=c.n_embd, num_hidden_layers=c.n_layer, ffn_dim=c.ffn_hidden,
        num_attention_heads=c.n_head, max_position_embeddings=c.block_size, do_layer_norm_before=True,
        word_embed_proj_dim=c.n_embd, activation_function=_OPT_ACT[c.mlp], enable_bias=c.bias,
        layer_norm_elementwise_affine=True, dropout=c.dropout, attention_dropout=c.dropout,
        tie_word_embeddings=c.tie_embeddings, **_ids(special)),
    native_config=lambda h: _opt_native(h),
    transforms=lambda c: [opt_position_offset],
)


def _opt_native(h) -> dict:
    _refuse_if(h, "OPTForCausalLM", [("do_layer_norm_before", False), ("layer_norm_elementwise_affine", False)])
    if h.word_embed_proj_dim != h.hidden_size:
        raise ValueError("OPTForCausalLM: word_embed_proj_dim != hidden_size (project_in/out) "
                         "has no gptlab equivalent")
    return dict(position="learned", norm="layernorm", norm_bias=True, bias=h.enable_bias, n_layer=h.num_hidden_layers,
                n_head=h.num_attention_heads, n_embd=h.hidden_size, block_size=h.max_position_embeddings,
                vocab_size=h.vocab_size, mlp=_hidden_act(h.activation_function, _OPT_ACT, "OPTForCausalLM"),
                ffn_rule="explicit", ffn_size=h.ffn_dim, ffn_multiple_of=1, norm_eps=1e-5,
                tie_embeddings=h.tie_word_embeddings)


# ----------------------------------------------------------------------------- BLOOM

def _bloom_refusals(c: ModelConfig) -> list[str]:
    why = _common_refusals(c, "BloomForCausalLM", position="alibi", norm="layernorm", mlps=("gelu_tanh",),
                           embed_norm=True)
    if c.ffn_hidden != 4 * c.n_embd:
        why.append(f"model.ffn: BloomForCausalLM's MLP is 4*n_embd={4 * c.n_embd} wide, not {c.ffn_hidden}")
    return why


BLOOM = Adapter(
    arch="BloomForCausalLM",
    keys={"embed_tokens.weight": "transformer.word_embeddings.weight",
          "embed_layernorm.weight": "transformer.word_embeddings_layernorm.weight",
          "embed_layernorm.bias": "transformer.word_embeddings_layernorm.bias",
          **_layer_keys("transformer.h.{i}.", {
              "input_layernorm.weight": "input_layernorm.weight", "input_layernorm.bias": "input_layernorm.bias",
              "self_attn.qkv_proj.weight": "self_attention.query_key_value.weight",
              "self_attn.qkv_proj.bias": "self_attention.query_key_value.bias",
              "self_attn.o_proj.weight": "self_attention.dense.weight",
              "self_attn.o_proj.bias": "self_attention.dense.bias",
              "post_attention_layernorm.weight": "post_attention_layernorm.weight",
              "post_attention_layernorm.bias": "post_attention_layernorm.bias",
              "mlp.up_proj.weight": "mlp.dense_h_to_4h.weight", "mlp.up_proj.bias": "mlp.dense_h_to_4h.bias",
              "mlp.down_proj.weight": "mlp.dense_4h_to_h.weight", "mlp.down_proj.bias": "mlp.dense_4h_to_h.bias"}),
          "norm.weight": "transformer.ln_f.weight", "norm.bias": "transformer.ln_f.bias",
          "lm_head.weight": "lm_head.weight"},
    refusals=_bloom_refusals,
    hf_config=lambda c, special: dict(
        vocab_size=c.vocab_size, hidden_size=c.n_embd, n_layer=c.n_layer, n_head=c.n_head,
        layer_norm_epsilon=c.norm_eps, hidden_dropout=c.dropout, attention_dropout=c.dropout,
        apply_residual_connection_post_layernorm=False, pretraining_tp=1, slow_but_exact=False,
        tie_word_embeddings=c.tie_embeddings, **_ids(special)),
    native_config=lambda h: _bloom_native(h),
    transforms=lambda c: [fuse_qkv_per_head],
)


def _bloom_native(h) -> dict:
    _refuse_if(h, "BloomForCausalLM", [("apply_residual_connection_post_layernorm", True)])
    # No block_size: ALiBi has no position table, so the importer picks the context length.
    return dict(position="alibi", embed_norm=True, norm="layernorm", norm_bias=True, bias=True, mlp="gelu_tanh",
                ffn_rule="ratio", mlp_ratio=4.0, ffn_multiple_of=1, n_layer=h.n_layer, n_head=h.n_head,
                n_embd=h.hidden_size, vocab_size=h.vocab_size, norm_eps=h.layer_norm_epsilon,
                tie_embeddings=h.tie_word_embeddings)


# ----------------------------------------------------------------------------- Llama and Cohere

def _llama_like_keys(with_post_norm: bool) -> dict[str, str]:
    names = {**{f"self_attn.{p}_proj.{k}": f"self_attn.{p}_proj.{k}" for p in "qkvo" for k in ("weight", "bias")},
             **{f"mlp.{p}_proj.{k}": f"mlp.{p}_proj.{k}" for p in ("gate", "up", "down") for k in ("weight", "bias")},
             "input_layernorm.weight": "input_layernorm.weight"}
    if with_post_norm:
        names["post_attention_layernorm.weight"] = "post_attention_layernorm.weight"
    return {"embed_tokens.weight": "model.embed_tokens.weight", **_layer_keys("model.layers.{i}.", names),
            "norm.weight": "model.norm.weight", "lm_head.weight": "lm_head.weight"}


def _rope_params(h) -> tuple[float, dict]:
    rp = dict(getattr(h, "rope_parameters", None) or {})
    if rp.get("rope_type", "default") != "default":
        raise ValueError(f"{h.architectures}: rope_type {rp['rope_type']!r} (scaled RoPE) has no gptlab equivalent")
    if rp.get("partial_rotary_factor", 1.0) != 1.0:
        raise ValueError(f"{h.architectures}: partial_rotary_factor is not used by this architecture")
    return float(rp.get("rope_theta", getattr(h, "rope_theta", 10_000.0))), rp


def _llama_refusals(c: ModelConfig) -> list[str]:
    return _common_refusals(c, "LlamaForCausalLM", position="rope", norm="rmsnorm", mlps=("swiglu",), gqa=True)


def _llama_native(h) -> dict:
    if h.attention_bias != h.mlp_bias:
        raise ValueError("LlamaForCausalLM: attention_bias != mlp_bias has no gptlab equivalent")
    if getattr(h, "head_dim", None) not in (None, h.hidden_size // h.num_attention_heads):
        raise ValueError("LlamaForCausalLM: head_dim != hidden_size / num_attention_heads has no gptlab equivalent")
    theta, _ = _rope_params(h)
    return dict(position="rope", rope_style="half", rope_theta=theta, norm="rmsnorm", norm_eps=h.rms_norm_eps,
                mlp="swiglu", ffn_rule="explicit", ffn_size=h.intermediate_size, ffn_multiple_of=1,
                bias=h.attention_bias, n_layer=h.num_hidden_layers, n_head=h.num_attention_heads,
                n_kv_head=h.num_key_value_heads, n_embd=h.hidden_size, block_size=h.max_position_embeddings,
                vocab_size=h.vocab_size, tie_embeddings=h.tie_word_embeddings)


LLAMA = Adapter(
    arch="LlamaForCausalLM",
    keys=_llama_like_keys(with_post_norm=True),
    refusals=_llama_refusals,
    hf_config=lambda c, special: dict(
        vocab_size=c.vocab_size, hidden_size=c.n_embd, intermediate_size=c.ffn_hidden,
        num_hidden_layers=c.n_layer, num_attention_heads=c.n_head, num_key_value_heads=c.n_kv_head or c.n_head,
        head_dim=c.head_dim, hidden_act="silu", max_position_embeddings=c.block_size, rms_norm_eps=c.norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": c.rope_theta},
        attention_bias=c.bias, mlp_bias=c.bias, attention_dropout=c.dropout,
        tie_word_embeddings=c.tie_embeddings, **_ids(special)),
    native_config=_llama_native,
    # Llama rotates halves; a native interleaved model needs its q/k rows permuted.
    transforms=lambda c: [rope_interleaved_to_half] if c.rope_style == "interleaved" else [],
)


def _cohere_refusals(c: ModelConfig) -> list[str]:
    why = _common_refusals(c, "CohereForCausalLM", position="rope", norm="layernorm", block="parallel",
                           mlps=("swiglu",), gqa=True)
    if c.norm_bias:
        why.append("model.norm_bias=true: CohereForCausalLM's LayerNorm has no bias")
    if c.bias:
        why.append("model.bias=true: CohereForCausalLM's MLP has no biases")
    return why


def _cohere_native(h) -> dict:
    if getattr(h, "use_qk_norm", False):
        raise ValueError("CohereForCausalLM: use_qk_norm has no gptlab equivalent")
    theta, _ = _rope_params(h)
    scale = float(h.logit_scale if h.logit_scale is not None else 1.0)
    if abs(scale - 1.0) < 1e-12:
        logit_scale = "none"
    elif abs(scale - h.hidden_size ** -0.5) < 1e-9:
        logit_scale = "rsqrt_d"
    else:
        raise ValueError(f"CohereForCausalLM: logit_scale={scale} is neither 1 nor 1/sqrt(hidden_size); "
                         "gptlab has no equivalent")
    return dict(position="rope", rope_style="interleaved", rope_theta=theta, norm="layernorm", norm_bias=False,
                norm_eps=h.layer_norm_eps, block="parallel", mlp="swiglu", ffn_rule="explicit",
                ffn_size=h.intermediate_size, ffn_multiple_of=1, bias=False, n_layer=h.num_hidden_layers,
                n_head=h.num_attention_heads, n_kv_head=h.num_key_value_heads, n_embd=h.hidden_size,
                block_size=h.max_position_embeddings, vocab_size=h.vocab_size,
                tie_embeddings=h.tie_word_embeddings, logit_scale=logit_scale)


COHERE = Adapter(
    arch="CohereForCausalLM",
    keys=_llama_like_keys(with_post_norm=False),
    refusals=_cohere_refusals,
    hf_config=lambda c, special: dict(
        vocab_size=c.vocab_size, hidden_size=c.n_embd, intermediate_size=c.ffn_hidden,
        num_hidden_layers=c.n_layer, num_attention_heads=c.n_head, num_key_value_heads=c.n_kv_head or c.n_head,
        hidden_act="silu", max_position_embeddings=c.block_size, layer_norm_eps=c.norm_eps,
        # Cohere multiplies logits by logit_scale (default 0.0625): it must be our own multiplier.
        logit_scale=c.logit_multiplier, use_qk_norm=False, attention_bias=False, attention_dropout=c.dropout,
        rope_parameters={"rope_type": "default", "rope_theta": c.rope_theta},
        tie_word_embeddings=c.tie_embeddings, **_ids(special)),
    native_config=_cohere_native,
    # Cohere rotates interleaved pairs; a native half-rotation model needs its q/k rows permuted.
    transforms=lambda c: [rope_half_to_interleaved] if c.rope_style == "half" else [],
)


ADAPTERS: dict[str, Adapter] = {a.arch: a for a in (GPT2, OPT, BLOOM, LLAMA, COHERE)}
ALIASES = {"gpt2": "GPT2LMHeadModel", "opt": "OPTForCausalLM", "bloom": "BloomForCausalLM",
           "llama": "LlamaForCausalLM", "cohere": "CohereForCausalLM"}


def preferred_order(cfg: ModelConfig) -> list[Adapter]:
    """Which architectures to try for ``cfg``, most natural first (OPT for ReLU, GPT-2 otherwise...)."""
    if cfg.position == "learned":
        names = ["OPTForCausalLM", "GPT2LMHeadModel"] if cfg.mlp == "relu" else ["GPT2LMHeadModel", "OPTForCausalLM"]
    elif cfg.position == "alibi":
        names = ["BloomForCausalLM"]
    else:
        names = ["CohereForCausalLM", "LlamaForCausalLM"] if cfg.block == "parallel" else \
                ["LlamaForCausalLM", "CohereForCausalLM"]
    return [ADAPTERS[n] for n in names]


def pick_adapter(cfg: ModelConfig, arch: str | None = None) -> Adapter:
    """The adapter for ``cfg`` (or the named one); raises ExportRefused listing every reason."""
    if arch is not None:
        name = ALIASES.get(arch.lower(), arch)
        if name not in ADAPTERS:
            raise ExportRefused(f"--arch: unknown architecture {arch!r} (known: {', '.join(ALIASES)})")
        candidates = [ADAPTERS[name]]
    else:
        candidates = preferred_order(cfg)
    for a in candidates:
        if not a.refusals(cfg):
            return a
    a = candidates[0]
    raise ExportRefused(f"no Hugging Face architecture represents this model exactly; closest is {a.arch}, "
                        f"which refuses: " + "; ".join(a.refusals(cfg)))


def zero_fill(hf_sd: StateDict, expected: dict[str, torch.Tensor]) -> StateDict:
    """Biases the HF class always has but a bias-free native model lacks are exported as zeros,
    which computes exactly what the native model does; any other missing tensor is an error."""
    out = dict(hf_sd)
    for k, ref in expected.items():
        if k in out:
            continue
        if not re.search(r"\.bias$", k):
            raise ValueError(f"the exported state dict lacks {k}")
        out[k] = torch.zeros_like(ref, device="cpu")
    return out
