"""Named, invertible tensor transforms between gptlab's layout and Hugging Face layouts.

Each transform is a pair of functions on a *native-named* state dict (``layers.0.self_attn.q_proj.weight``
...), applied before the key map renames to the HF names on export, and after it on import.
Every one of them changes numbers that a shape check cannot see (square matrices load either
way), so each has a negative-control test that skips it and watches logits parity break.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from gptlab.model.config import ModelConfig

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Transform:
    name: str
    to_hf: Callable[[StateDict, ModelConfig], StateDict]
    from_hf: Callable[[StateDict, ModelConfig], StateDict]


def _layers(cfg: ModelConfig) -> range:
    return range(cfg.n_layer)


# ----------------------------------------------------------------------------- fused q/k/v

def _fuse(sd: StateDict, cfg: ModelConfig, per_head: bool) -> StateDict:
    H, hd = cfg.n_head, cfg.head_dim
    for i in _layers(cfg):
        pre = f"layers.{i}.self_attn."
        for kind in ("weight", "bias"):
            parts = [sd.pop(f"{pre}{p}_proj.{kind}", None) for p in "qkv"]
            if parts[0] is None:
                continue
            if per_head:
                # BLOOM/NeoX rows: [q_h0; k_h0; v_h0; q_h1; ...] (HF splits view(.., H, 3, hd)).
                fused = torch.stack([t.reshape(H, hd, *t.shape[1:]) for t in parts], 1)
                sd[f"{pre}qkv_proj.{kind}"] = fused.reshape(3 * H * hd, *parts[0].shape[1:])
            else:
                sd[f"{pre}qkv_proj.{kind}"] = torch.cat(parts, 0)   # GPT-2: [q; k; v]
    return sd


def _split(sd: StateDict, cfg: ModelConfig, per_head: bool) -> StateDict:
    H, hd = cfg.n_head, cfg.head_dim
    for i in _layers(cfg):
        pre = f"layers.{i}.self_attn."
        for kind in ("weight", "bias"):
            fused = sd.pop(f"{pre}qkv_proj.{kind}", None)
            if fused is None:
                continue
            if per_head:
                parts = fused.reshape(H, 3, hd, *fused.shape[1:]).unbind(1)
                parts = [p.reshape(H * hd, *fused.shape[1:]) for p in parts]
            else:
                parts = fused.chunk(3, 0)
            for p, t in zip("qkv", parts):
                sd[f"{pre}{p}_proj.{kind}"] = t.contiguous()
    return sd


fuse_qkv_contiguous = Transform("fuse_qkv_contiguous", lambda sd, c: _fuse(sd, c, False),
                                lambda sd, c: _split(sd, c, False))
fuse_qkv_per_head = Transform("fuse_qkv_per_head", lambda sd, c: _fuse(sd, c, True),
                              lambda sd, c: _split(sd, c, True))


# ----------------------------------------------------------------------------- GPT-2 Conv1D

_CONV1D = ("self_attn.qkv_proj.weight", "self_attn.o_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight")


def _transpose(sd: StateDict, cfg: ModelConfig) -> StateDict:
    # GPT-2's Conv1D stores [in, out] and computes x @ W: every dense weight is transposed.
    return {k: (v.t().contiguous() if k.endswith(_CONV1D) else v) for k, v in sd.items()}


conv1d_transpose = Transform("conv1d_transpose", _transpose, _transpose)


# ----------------------------------------------------------------------------- OPT positions

OPT_OFFSET = 2


def _opt_pad(sd: StateDict, cfg: ModelConfig) -> StateDict:
    # metaseq numbers positions from padding_idx + 1 = 2, and HF's OPTLearnedPositionalEmbedding
    # adds offset 2: rows 0 and 1 of the HF table are never read.
    w = sd["embed_positions.weight"]
    sd["embed_positions.weight"] = torch.cat([w.new_zeros(OPT_OFFSET, w.shape[1]), w])
    return sd


def _opt_unpad(sd: StateDict, cfg: ModelConfig) -> StateDict:
    sd["embed_positions.weight"] = sd["embed_positions.weight"][OPT_OFFSET:].contiguous()
    return sd


opt_position_offset = Transform("opt_position_offset", _opt_pad, _opt_unpad)


# ----------------------------------------------------------------------------- rotary conventions

def interleaved_to_half(w: torch.Tensor, n_heads: int, head_dim: int, rotary_dim: int) -> torch.Tensor:
    """Reorder q/k output rows so that a half-rotation model computes what an interleaved one did:
    within each head, rotated dims (0,1),(2,3),... become (0, r/2),(1, r/2+1),... Works for
    weights [H*hd, in] and biases [H*hd]."""
    shape = w.shape
    w = w.reshape(n_heads, head_dim, -1)
    rot = w[:, :rotary_dim].reshape(n_heads, rotary_dim // 2, 2, -1).transpose(1, 2)
    return torch.cat([rot.reshape(n_heads, rotary_dim, -1), w[:, rotary_dim:]], 1).reshape(shape)


def half_to_interleaved(w: torch.Tensor, n_heads: int, head_dim: int, rotary_dim: int) -> torch.Tensor:
    shape = w.shape
    w = w.reshape(n_heads, head_dim, -1)
    rot = w[:, :rotary_dim].reshape(n_heads, 2, rotary_dim // 2, -1).transpose(1, 2)
    return torch.cat([rot.reshape(n_heads, rotary_dim, -1), w[:, rotary_dim:]], 1).reshape(shape)


def _permute_qk(fn) -> Callable[[StateDict, ModelConfig], StateDict]:
    def apply(sd: StateDict, cfg: ModelConfig) -> StateDict:
        heads = {"q": cfg.n_head, "k": cfg.n_kv_head or cfg.n_head}   # never v: it is not rotated
        for i in _layers(cfg):
            for p, n in heads.items():
                for kind in ("weight", "bias"):
                    key = f"layers.{i}.self_attn.{p}_proj.{kind}"
                    if key in sd:
                        sd[key] = fn(sd[key], n, cfg.head_dim, cfg.rotary_dim).contiguous()
        return sd
    return apply


# Native interleaved rotary, HF half rotation (Llama): "permute for sliced rotary".
rope_interleaved_to_half = Transform("rope_interleaved_to_half", _permute_qk(interleaved_to_half),
                                     _permute_qk(half_to_interleaved))
# Native half rotation, HF interleaved (Cohere).
rope_half_to_interleaved = Transform("rope_half_to_interleaved", _permute_qk(half_to_interleaved),
                                     _permute_qk(interleaved_to_half))


# ----------------------------------------------------------------------------- output scaling

def _fold_scale(sd: StateDict, cfg: ModelConfig) -> StateDict:
    # logits * s == x @ (s * W)^T: an untied head absorbs the scale exactly. The HF model is
    # then exported untied, since the input embedding must stay unscaled.
    sd["lm_head.weight"] = sd["lm_head.weight"] * cfg.logit_multiplier
    return sd


fold_logit_scale = Transform("fold_logit_scale", _fold_scale, lambda sd, cfg: sd)
