"""The gptlab decoder: one readable GPT, parameterised by ModelConfig.

Parameter names follow Hugging Face's Llama layout (``layers.{i}.self_attn.q_proj``...)
so that interop adapters are mostly key maps. In every block ``input_layernorm`` is the
norm that belongs to the attention branch and ``post_attention_layernorm`` the one that
belongs to the MLP branch, wherever the placement puts them. Calling the model on token
ids of shape [batch, seq] returns logits of shape [batch, seq, vocab]; the loss lives in
the trainer, because recipes differ in what they add to it (z-loss, for one).

For generation, ``model(ids, cache=KVCache(model))`` keeps each layer's keys and values, so
the next call feeds only the new tokens: positions continue where the cache ends.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gptlab.model.config import ModelConfig


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in fp32: under bf16 autocast the mean of squares loses too many bits.
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (xf * self.weight.float()).to(x.dtype)


def make_norm(cfg: ModelConfig) -> nn.Module:
    if cfg.norm == "rmsnorm":
        return RMSNorm(cfg.n_embd, cfg.norm_eps)
    return nn.LayerNorm(cfg.n_embd, eps=cfg.norm_eps, bias=cfg.norm_bias)


# ----------------------------------------------------------------------------- positions

def alibi_slopes(n_head: int) -> torch.Tensor:
    """ALiBi head slopes as BLOOM computes them: 2^(-8i/n) for a power-of-two n; otherwise the
    list for the nearest lower power of two, then every other slope of the list for twice that."""
    def power_of_two(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    p = 2 ** math.floor(math.log2(n_head))
    slopes = power_of_two(p)
    if p < n_head:
        slopes += power_of_two(2 * p)[0::2][: n_head - p]
    return torch.tensor(slopes, dtype=torch.float32)


def alibi_bias(slopes: torch.Tensor, T: int, offset: int = 0) -> torch.Tensor:
    """[H, T, offset + T] additive score bias: -slope * distance to the key, -inf for future keys.

    ``offset`` is the number of cached tokens before the T queries (0 without a KV cache)."""
    q = torch.arange(offset, offset + T, device=slopes.device)
    k = torch.arange(offset + T, device=slopes.device)
    distance = (k[None, :] - q[:, None]).float()              # j - i: <= 0 where attention is allowed
    bias = slopes[:, None, None] * distance
    return bias.masked_fill(distance > 0, float("-inf"))


def rope_tables(rotary_dim: int, length: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin of shape [length, rotary_dim/2]: one frequency per rotated pair."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, rotary_dim, 2, dtype=torch.float32) / rotary_dim))
    angles = torch.outer(torch.arange(length, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, style: str) -> torch.Tensor:
    """Rotate the first 2*cos.shape[-1] dims of each head. x: [B, H, T, D].

    half: pair dim i with dim i + r/2 (NeoX/Llama); interleaved: pair dims 2i and 2i+1 (GPT-J/PaLM).
    Both are the same rotation up to a fixed permutation of q/k rows, which the exporters apply."""
    r = 2 * cos.shape[-1]
    rot, rest = x[..., :r].float(), x[..., r:]
    if style == "half":
        x1, x2 = rot[..., : r // 2], rot[..., r // 2:]
        out = torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)
    else:
        x1, x2 = rot[..., 0::2], rot[..., 1::2]
        out = torch.stack([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).flatten(-2)
    return torch.cat([out.to(x.dtype), rest], dim=-1)


def causal_mask(T: int, offset: int, device) -> torch.Tensor:
    """[T, offset + T] boolean mask, True where query i (at position offset + i) may attend key j.

    SDPA's is_causal aligns the diagonal top-left, which is wrong once keys outnumber queries."""
    q = torch.arange(offset, offset + T, device=device)
    return torch.arange(offset + T, device=device)[None, :] <= q[:, None]


class KVCache:
    """Keys and values of every layer for the tokens seen so far (incremental decoding).

    Keys are stored after the rotary rotation and before grouped-query expansion, so a
    multi-query model caches one head, not n_head copies."""

    def __init__(self, model: nn.Module | None = None, n_layer: int | None = None):
        n = n_layer if n_layer is not None else model.config.n_layer
        self.keys: list[torch.Tensor | None] = [None] * n
        self.values: list[torch.Tensor | None] = [None] * n

    @property
    def length(self) -> int:
        return 0 if self.keys[0] is None else self.keys[0].shape[2]

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.keys[layer] is not None:
            k = torch.cat([self.keys[layer], k], dim=2)
            v = torch.cat([self.values[layer], v], dim=2)
        self.keys[layer], self.values[layer] = k, v
        return k, v


# ----------------------------------------------------------------------------- layers

class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.n_kv_head = cfg.n_kv_head or cfg.n_head
        self.head_dim = cfg.head_dim
        self.rope_style = cfg.rope_style
        self.q_proj = nn.Linear(cfg.n_embd, cfg.n_head * self.head_dim, bias=cfg.bias)
        self.k_proj = nn.Linear(cfg.n_embd, self.n_kv_head * self.head_dim, bias=cfg.bias)
        self.v_proj = nn.Linear(cfg.n_embd, self.n_kv_head * self.head_dim, bias=cfg.bias)
        self.o_proj = nn.Linear(cfg.n_head * self.head_dim, cfg.n_embd, bias=cfg.bias)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor, pos: dict) -> torch.Tensor:
        B, T, _ = x.shape
        # One matmul for q, k and v: the three weights stay separate parameters (HF's layout),
        # but a single wider GEMM is faster than three narrow ones.
        projs = (self.q_proj, self.k_proj, self.v_proj)
        bias = torch.cat([p.bias for p in projs]) if self.q_proj.bias is not None else None
        qkv = F.linear(x, torch.cat([p.weight for p in projs]), bias)
        q, k, v = qkv.split([self.n_head * self.head_dim] + [self.n_kv_head * self.head_dim] * 2, dim=-1)
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        k = k.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        v = v.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        if "rope" in pos:
            cos, sin = pos["rope"]
            q, k = apply_rope(q, cos, sin, self.rope_style), apply_rope(k, cos, sin, self.rope_style)
        if "cache" in pos:
            cache, layer = pos["cache"]
            k, v = cache.update(layer, k, v)
        if self.n_kv_head != self.n_head:
            # Grouped/multi-query attention: each key/value head serves n_head/n_kv_head queries.
            rep = self.n_head // self.n_kv_head
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        drop = self.dropout if self.training else 0.0
        if "alibi" in pos:
            # A float mask carries both ALiBi and causality (SDPA then uses its memory-efficient kernel).
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=pos["alibi"].to(q.dtype), dropout_p=drop)
        elif "mask" in pos:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=pos["mask"], dropout_p=drop)
        else:
            # is_causal lets SDPA pick the flash kernel where the hardware has one.
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=drop)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, -1))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.kind = cfg.mlp
        hidden = cfg.ffn_hidden
        self.up_proj = nn.Linear(cfg.n_embd, hidden, bias=cfg.bias)
        if cfg.gated:
            self.gate_proj = nn.Linear(cfg.n_embd, hidden, bias=cfg.bias)
        self.down_proj = nn.Linear(hidden, cfg.n_embd, bias=cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "swiglu":
            h = F.silu(self.gate_proj(x)) * self.up_proj(x)
        elif self.kind == "geglu":
            h = F.gelu(self.gate_proj(x)) * self.up_proj(x)
        elif self.kind == "relu":
            h = F.relu(self.up_proj(x))
        elif self.kind == "gelu_tanh":
            h = F.gelu(self.up_proj(x), approximate="tanh")
        else:
            h = F.gelu(self.up_proj(x))
        return self.down_proj(h)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.block, self.placement = cfg.block, cfg.placement
        self.alpha = cfg.deepnorm_alpha_beta[0]
        self.input_layernorm = make_norm(cfg)
        self.self_attn = Attention(cfg)
        if cfg.block != "parallel":  # PaLM's parallel block shares one LN between both branches
            self.post_attention_layernorm = make_norm(cfg)
        self.mlp = MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, pos: dict) -> torch.Tensor:
        attn, mlp = self.self_attn, self.mlp
        if self.block == "parallel":
            h = self.input_layernorm(x)
            return x + self.drop(attn(h, pos)) + self.drop(mlp(h))
        if self.block == "parallel2":
            return (x + self.drop(attn(self.input_layernorm(x), pos))
                    + self.drop(mlp(self.post_attention_layernorm(x))))
        if self.placement == "pre":
            x = x + self.drop(attn(self.input_layernorm(x), pos))
            return x + self.drop(mlp(self.post_attention_layernorm(x)))
        # post-LN and DeepNorm: normalise after the residual sum; DeepNorm up-weights the skip path
        # by alpha so that updates of deep stacks stay bounded (alpha = 1 is plain post-LN).
        x = self.input_layernorm(self.alpha * x + self.drop(attn(x, pos)))
        return self.post_attention_layernorm(self.alpha * x + self.drop(mlp(x)))


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.vocab_size is None or cfg.block_size is None:
            raise ValueError("ModelConfig needs vocab_size and block_size set before building")
        cfg.check()
        self.config = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        if cfg.position == "learned":
            self.embed_positions = nn.Embedding(cfg.block_size, cfg.n_embd)
        # Position tables are derived from the config, so they are not persistent:
        # checkpoints stay pure weights and load with strict=True.
        if cfg.position == "rope":
            cos, sin = rope_tables(cfg.rotary_dim, cfg.block_size, cfg.rope_theta)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        if cfg.position == "alibi":
            self.register_buffer("alibi_slopes", alibi_slopes(cfg.n_head), persistent=False)
        if cfg.embed_norm:
            self.embed_layernorm = make_norm(cfg)
        self.drop = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        if cfg.placement == "pre":  # post-LN/DeepNorm blocks already end in a norm
            self.norm = make_norm(cfg)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        self.reset_parameters()

    # ------------------------------------------------------------------------- init

    def _init_std(self) -> float:
        c = self.config
        if c.init_std is not None:
            return c.init_std
        return {"gpt2": 0.02,                        # GPT-2 code; GPT-3 kept GPT-2's init (Brown et al. App. B)
                "opt": 0.006,                        # OPT paper §2.2; metaseq --megatron-init-sigma 0.006
                "bloom": math.sqrt(1 / (3 * c.n_embd)),  # BLOOM: --init-method-std 0.0048 = sqrt(1/(3*14336))
                "deepnorm": 0.02, "palm": 1.0}[c.init]

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Initialise every parameter by the config's scheme (see ModelConfig.init)."""
        c = self.config
        std = self._init_std()
        beta = c.deepnorm_alpha_beta[1]
        for name, p in self.named_parameters():
            if p.dim() < 2:  # norm gains 1, biases 0
                p.fill_(0.0 if name.endswith("bias") else 1.0)
                continue
            is_embedding = name.startswith("embed_")
            is_residual_out = name.endswith(("o_proj.weight", "down_proj.weight"))
            if c.init == "palm":
                # PaLM: kernels N(0, 1/fan_in); embeddings N(0, 1), "since layer normalization is
                # not applied to the embeddings" (shared with the output, scaled by 1/sqrt(d)).
                s = std if is_embedding else 1.0 / math.sqrt(p.shape[1])
                nn.init.normal_(p, 0.0, s)
            elif c.init == "deepnorm":
                # DeepNorm: Xavier normal, shrunk by beta on v, o and the MLP (GLM-130B §2.3, DeepNet §3).
                if is_embedding:
                    nn.init.normal_(p, 0.0, std)
                else:
                    gain = beta if name.endswith(("v_proj.weight", "o_proj.weight", "up_proj.weight",
                                                  "gate_proj.weight", "down_proj.weight")) else 1.0
                    nn.init.xavier_normal_(p, gain=gain)
            else:
                # GPT-2/OPT/BLOOM: N(0, std); residual projections std/sqrt(2L) so the residual
                # stream's variance does not grow with depth (GPT-2 paper §2.3, Megatron's scaled init).
                s = std / math.sqrt(2 * c.n_layer) if is_residual_out else std
                nn.init.normal_(p, 0.0, s)

    # ------------------------------------------------------------------------- forward

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        c = self.config
        B, T = idx.shape
        offset = cache.length if cache is not None else 0   # tokens already in the cache
        if offset + T > c.block_size:
            raise ValueError(f"sequence of {offset + T} tokens exceeds block_size {c.block_size}")
        x = self.embed_tokens(idx)
        if c.embed_grad_scale != 1.0:
            # GLM-130B's embedding-gradient shrink: same value, gradient times alpha.
            x = x * c.embed_grad_scale + x.detach() * (1.0 - c.embed_grad_scale)
        pos: dict = {}
        if c.position == "learned":
            x = x + self.embed_positions(torch.arange(offset, offset + T, device=idx.device))
        elif c.position == "rope":
            pos["rope"] = (self.rope_cos[offset:offset + T], self.rope_sin[offset:offset + T])
        else:
            pos["alibi"] = alibi_bias(self.alibi_slopes, T, offset)
        if offset and "alibi" not in pos:
            pos["mask"] = causal_mask(T, offset, idx.device)
        if c.embed_norm:
            x = self.embed_layernorm(x)
        x = self.drop(x)
        for i, block in enumerate(self.layers):
            x = block(x, pos if cache is None else {**pos, "cache": (cache, i)})
        if c.placement == "pre":
            x = self.norm(x)
        logits = self.lm_head(x)
        if c.logit_scale != "none":
            logits = logits * c.logit_multiplier
        return logits

    # ------------------------------------------------------------------------- accounting

    def num_params(self, non_embedding: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.embed_tokens.weight.numel()
            if hasattr(self, "embed_positions"):
                n -= self.embed_positions.weight.numel()
            if not self.config.tie_embeddings:
                n -= self.lm_head.weight.numel()
        return n

    def flops_per_token(self) -> float:
        """Training FLOPs per token: 6N for the matmuls plus 12·L·H·Q·T for attention (PaLM App. B)."""
        c = self.config
        # Matmul parameters: the lookup tables cost nothing, but a tied table is also the head.
        n = sum(p.numel() for p in self.parameters())
        if hasattr(self, "embed_positions"):
            n -= self.embed_positions.weight.numel()
        if not c.tie_embeddings:
            n -= self.embed_tokens.weight.numel()
        return 6 * n + 12 * c.n_layer * c.n_head * c.head_dim * c.block_size
