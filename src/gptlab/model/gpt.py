"""The gptlab decoder: one readable GPT, parameterised by ModelConfig.

Parameter names follow Hugging Face's Llama layout (``layers.{i}.self_attn.o_proj``...)
so that interop adapters are mostly key maps; the one exception is ``self_attn.qkv_proj``,
q, k and v as one matrix so that a single GEMM computes them with no copy (``split_qkv_state``
gives the separate q/k/v tensors the HF layouts start from, and a checkpoint written with
separate ``q_proj``/``k_proj``/``v_proj`` still loads). In every block ``input_layernorm`` is
the norm that belongs to the attention branch and ``post_attention_layernorm`` the one that
belongs to the MLP branch, wherever the placement puts them. Calling the model on token
ids of shape [batch, seq] returns logits of shape [batch, seq, vocab];
``model(ids, targets=y, z_coef=...)`` returns the loss instead (:mod:`gptlab.model.loss`,
chunked so that the full fp32 logits never exist), and ``return_hidden=True`` the final
hidden states.

For generation, ``model(ids, cache=KVCache(model))`` keeps each layer's keys and values, so
the next call feeds only the new tokens: positions continue where the cache ends.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention.flex_attention import create_block_mask, flex_attention

from gptlab.model.config import ModelConfig
from gptlab.model.loss import LMLoss, lm_loss


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


class MaskCache:
    """The ALiBi score bias for training-length calls, built once per (T, device, dtype).

    Without a KV cache every forward of a run has the same T, so one entry is enough; the
    bias of a cached-decoding step (offset > 0) is small ([H, T, offset + T]) and built fresh."""

    def __init__(self):
        self.key: tuple | None = None
        self.value: torch.Tensor | None = None
        self.flex_key: tuple | None = None
        self.flex_value: tuple | None = None

    def alibi(self, slopes: torch.Tensor, T: int, offset: int, dtype: torch.dtype) -> torch.Tensor:
        if offset:
            return alibi_bias(slopes, T, offset).to(dtype)
        key = (T, slopes.device, dtype)
        if self.key != key:
            with torch.no_grad():
                self.value, self.key = alibi_bias(slopes, T).to(dtype), key
        return self.value

    def alibi_flex(self, slopes: torch.Tensor, T: int) -> tuple:
        """(score_mod, block_mask) for FlexAttention: the same ALiBi bias computed inside the
        kernel, and causality as a block mask that skips the blocks above the diagonal."""
        key = (T, slopes.device)
        if self.flex_key != key:
            def score_mod(score, b, h, q_idx, kv_idx):
                return score + slopes[h] * (kv_idx - q_idx)

            def causal(b, h, q_idx, kv_idx):
                return kv_idx <= q_idx

            mask = create_block_mask(causal, B=None, H=None, Q_LEN=T, KV_LEN=T, device=slopes.device)
            self.flex_value, self.flex_key = (score_mod, mask), key
        return self.flex_value


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


# ----------------------------------------------------------------------------- the fused q/k/v layout

def qkv_sizes(cfg: ModelConfig) -> list[int]:
    """Rows of q, k and v in ``qkv_proj`` (k and v have n_kv_head heads)."""
    kv = (cfg.n_kv_head or cfg.n_head) * cfg.head_dim
    return [cfg.n_head * cfg.head_dim, kv, kv]


def _fuse_into(sd: dict, prefix: str) -> None:
    for kind in ("weight", "bias"):
        names = [f"{prefix}{p}_proj.{kind}" for p in "qkv"]
        if all(n in sd for n in names):
            sd[f"{prefix}qkv_proj.{kind}"] = torch.cat([sd.pop(n) for n in names])


def _fuse_legacy_qkv(module, state_dict, prefix, *args) -> None:
    """Load pre-hook: a state dict with separate q_proj/k_proj/v_proj (checkpoints written
    before the fused layout) loads into ``qkv_proj``; the separate tensors win over a fused
    one already in the dict (torch.distributed's loader adds the current one)."""
    _fuse_into(state_dict, prefix)


def split_qkv_state(sd: dict, cfg: ModelConfig) -> dict:
    """A native state dict with each ``qkv_proj`` split into ``q_proj``/``k_proj``/``v_proj``
    (views, no copy): the layout the interop transforms start from."""
    out = dict(sd)
    sizes = qkv_sizes(cfg)
    for i in range(cfg.n_layer):
        pre = f"layers.{i}.self_attn."
        for kind in ("weight", "bias"):
            fused = out.pop(f"{pre}qkv_proj.{kind}", None)
            if fused is not None:
                for p, t in zip("qkv", fused.split(sizes)):
                    out[f"{pre}{p}_proj.{kind}"] = t
    return out


def fuse_qkv_state(sd: dict, cfg: ModelConfig) -> dict:
    """The inverse of ``split_qkv_state``."""
    out = dict(sd)
    for i in range(cfg.n_layer):
        _fuse_into(out, f"layers.{i}.self_attn.")
    return out


# ----------------------------------------------------------------------------- layers

class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.n_kv_head = cfg.n_kv_head or cfg.n_head
        self.head_dim = cfg.head_dim
        self.rope_style = cfg.rope_style
        self.sizes = qkv_sizes(cfg)
        # q, k and v rows of one matrix ([q; k; v], as GPT-2's c_attn): one GEMM, and no
        # per-forward concatenation of three weights (a copy, and its gradient a split).
        self.qkv_proj = nn.Linear(cfg.n_embd, sum(self.sizes), bias=cfg.bias)
        self.o_proj = nn.Linear(cfg.n_head * self.head_dim, cfg.n_embd, bias=cfg.bias)
        self.dropout = cfg.dropout
        self.register_load_state_dict_pre_hook(_fuse_legacy_qkv)

    def forward(self, x: torch.Tensor, pos: dict) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = self.qkv_proj(x).split(self.sizes, dim=-1)
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
        if "flex" in pos and not drop:
            score_mod, block_mask = pos["flex"]
            y = flex_attention(q, k, v, score_mod=score_mod, block_mask=block_mask)
        elif "alibi" in pos:
            # A float mask carries both ALiBi and causality (SDPA then uses its memory-efficient kernel).
            bias = pos["alibi"]
            if bias.dtype != q.dtype:   # a bf16 forward whose bias was built for another dtype
                bias = bias.to(q.dtype)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=drop)
        elif "mask" in pos:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=pos["mask"], dropout_p=drop)
        elif "cache" in pos and T == 1:
            # One new token after the cache sees every key: no mask at all (any SDPA kernel).
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)
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


def _activation_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype attention's q/k/v will have: autocast's when it is on, else the input's."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


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
        self._masks = MaskCache()
        self.loss_chunk: int | None = None   # rows of logits per chunk of the loss; None = about 1 GiB
        # ALiBi attention: sdpa = SDPA with the cached additive bias; flex = FlexAttention with the
        # bias in the kernel (fused only under torch.compile; on the CPU only without gradients);
        # auto = flex while being compiled.
        self.attention_impl = "sdpa"
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
        for name, p in self._init_targets():
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

    def _init_targets(self):
        """(name, tensor) pairs to initialise, in parameter order, with the fused q/k/v matrix
        as its three views under their own names: the same draws, in the same order, as three
        separate q/k/v parameters got (and v keeps DeepNorm's beta)."""
        for name, p in self.named_parameters():
            if name.endswith("qkv_proj.weight"):
                pre = name[: -len("qkv_proj.weight")]
                for q, t in zip("qkv", p.split(qkv_sizes(self.config))):
                    yield f"{pre}{q}_proj.weight", t
            else:
                yield name, p

    # ------------------------------------------------------------------------- forward

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None, targets: torch.Tensor | None = None,
                z_coef: float = 0.0, return_hidden: bool = False) -> torch.Tensor | LMLoss:
        """Logits [B, T, V]; with ``targets``, the loss (``LMLoss``: ce, z, max_logit) computed
        chunk by chunk from the hidden states; with ``return_hidden``, the final hidden states."""
        x = self.hidden(idx, cache)
        if return_hidden:
            return x
        if targets is not None:
            return lm_loss(x, self.lm_head.weight, targets, z_coef, self.config.logit_multiplier,
                           chunk=self.loss_chunk)
        return self.logits(x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The output head on final hidden states."""
        logits = self.lm_head(x)
        if self.config.logit_scale != "none":
            logits = logits * self.config.logit_multiplier
        return logits

    def _use_flex(self, device: torch.device) -> bool:
        if device.type == "cpu" and torch.is_grad_enabled():
            return False            # FlexAttention has no backward on the CPU
        if self.attention_impl == "auto":
            return torch.compiler.is_compiling()
        return self.attention_impl == "flex"

    def hidden(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Final hidden states [B, T, d] (after the final norm): what the head multiplies."""
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
            pos["alibi"] = self._masks.alibi(self.alibi_slopes, T, offset, _activation_dtype(x))
            if not offset and self._use_flex(idx.device):
                pos["flex"] = self._masks.alibi_flex(self.alibi_slopes, T)
        if offset and T > 1 and "alibi" not in pos:
            pos["mask"] = causal_mask(T, offset, idx.device)
        if c.embed_norm:
            x = self.embed_layernorm(x)
        x = self.drop(x)
        for i, block in enumerate(self.layers):
            x = block(x, pos if cache is None else {**pos, "cache": (cache, i)})
        if c.placement == "pre":
            x = self.norm(x)
        return x

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


def resolve_compile(value: bool | str, device: torch.device | str) -> bool:
    """train.compile: ``auto`` compiles on CUDA (where it pays for itself within a few hundred
    steps) and not on the CPU (minutes of compile for a short run); true/false (or the
    strings "true"/"false") force it."""
    if isinstance(value, str):
        choices = {"auto": torch.device(device).type == "cuda", "true": True, "false": False}
        if value.lower() not in choices:
            raise ValueError(f"compile: {value!r} is not auto, true or false")
        return choices[value.lower()]
    return bool(value)


def compile_model(model: GPT, mode: str = "full") -> nn.Module:
    """torch.compile for training. full: the whole forward as one graph (what nanoGPT does);
    regional: each block compiled in place, one graph that every layer reuses, so compile
    time does not grow with depth (torchtitan's choice); embeddings, final norm and the
    chunked loss then run eagerly, as a few large kernels. Returns what to call."""
    if mode == "regional":
        for block in model.layers:
            block.compile()
        return model
    if mode != "full":
        raise ValueError(f"compile mode: {mode!r} is not full or regional")
    return torch.compile(model)
