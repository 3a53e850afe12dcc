"""The fused q/k/v layout and the cached ALiBi bias compute exactly what the old code did."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import gptlab.model.gpt as gpt_mod
from gptlab.model import GPT, ModelConfig
from gptlab.model.gpt import KVCache, alibi_bias, apply_rope, causal_mask, fuse_qkv_state, split_qkv_state


class LegacyAttention(nn.Module):
    """The attention of the previous layout, kept here as the reference: separate q/k/v
    parameters, concatenated into one weight on every forward."""

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
            rep = self.n_head // self.n_kv_head
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        if "alibi" in pos:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=pos["alibi"].to(q.dtype))
        elif "mask" in pos:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=pos["mask"])
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, -1))


def legacy_gpt(cfg: ModelConfig, monkeypatch) -> GPT:
    with monkeypatch.context() as m:
        m.setattr(gpt_mod, "Attention", LegacyAttention)
        return GPT(cfg)


def old_alibi_forward(model: GPT, idx, cache=None):
    """The old ALiBi path: the bias rebuilt on every forward (and cast in every layer)."""
    saved = model._masks.alibi
    model._masks.alibi = lambda slopes, T, offset, dtype: alibi_bias(slopes, T, offset)
    try:
        return model(idx, cache=cache)
    finally:
        model._masks.alibi = saved


CONFIGS = [
    dict(), dict(bias=True, norm_bias=True), dict(n_kv_head=2, position="rope"),
    dict(n_kv_head=1, position="rope", rope_style="interleaved", init="palm", block="parallel"),
    dict(position="alibi", bias=True), dict(init="deepnorm", placement="deepnorm"),
]


def tiny(**kw) -> ModelConfig:
    base = dict(n_layer=2, n_head=4, n_embd=32, vocab_size=50, block_size=24)
    base.update(kw)
    return ModelConfig(**base)


def ids(T=16, seed=1):
    return torch.randint(0, 50, (2, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kw", CONFIGS)
def test_fused_layout_initialises_and_computes_bitwise_like_the_old_one(kw, monkeypatch):
    cfg = tiny(**kw)
    torch.manual_seed(0)
    old = legacy_gpt(cfg, monkeypatch)
    torch.manual_seed(0)
    new = GPT(cfg)
    old_sd = old.state_dict()
    assert any(".q_proj." in k for k in old_sd) and not any(".q_proj." in k for k in new.state_dict())
    # same seed, same weights: the fused matrix is the three old ones stacked
    new_split = split_qkv_state(new.state_dict(), cfg)
    assert new_split.keys() == old_sd.keys()
    assert all(torch.equal(new_split[k], old_sd[k]) for k in old_sd)
    with torch.no_grad():
        assert torch.equal(new(ids()), old(ids()))
    # a checkpoint of the old layout loads (strictly) into the new model
    again = GPT(cfg)
    again.load_state_dict(old_sd, strict=True)
    with torch.no_grad():
        assert torch.equal(again(ids()), old(ids()))


def test_gradients_match_the_old_layout(monkeypatch):
    cfg = tiny(n_kv_head=2, position="rope", bias=True)
    torch.manual_seed(0)
    old = legacy_gpt(cfg, monkeypatch)
    new = GPT(cfg)
    new.load_state_dict(old.state_dict())
    for m in (old, new):
        m(ids()).pow(2).mean().backward()
    g_old = {n: p.grad for n, p in old.named_parameters()}
    g_new = split_qkv_state({n: p.grad for n, p in new.named_parameters()}, cfg)
    for k in g_old:
        assert torch.allclose(g_new[k], g_old[k], atol=1e-6, rtol=0), k


def test_split_and_fuse_are_inverse_and_the_order_matters():
    cfg = tiny(n_kv_head=2, bias=True)
    sd = GPT(cfg).state_dict()
    back = fuse_qkv_state(split_qkv_state(sd, cfg), cfg)
    assert back.keys() == sd.keys() and all(torch.equal(back[k], sd[k]) for k in sd)
    split = split_qkv_state(sd, cfg)
    assert split["layers.0.self_attn.q_proj.weight"].shape == (32, 32)
    assert split["layers.0.self_attn.k_proj.weight"].shape == (16, 32)
    # control: q and k swapped is a different model
    swapped = dict(split)
    swapped["layers.0.self_attn.q_proj.weight"], swapped["layers.0.self_attn.v_proj.weight"] = (
        split["layers.0.self_attn.v_proj.weight"].repeat(2, 1), split["layers.0.self_attn.q_proj.weight"][:16])
    m = GPT(cfg)
    m.load_state_dict(fuse_qkv_state(swapped, cfg))
    ref = GPT(cfg)
    ref.load_state_dict(sd)
    with torch.no_grad():
        assert not torch.allclose(m(ids()), ref(ids()), atol=1e-4)


# ----------------------------------------------------------------------------- ALiBi and the decoding mask

def test_cached_alibi_bias_equals_the_rebuilt_one():
    torch.manual_seed(0)
    model = GPT(tiny(position="alibi", init_std=0.3)).eval()
    with torch.no_grad():
        a = model(ids())
        b = old_alibi_forward(model, ids())
        assert torch.allclose(a, b, atol=1e-6, rtol=0)
        first = model._masks.value
        model(ids(seed=2))
        assert model._masks.value is first          # built once for this T
        model(ids(T=8))
        assert model._masks.value.shape[-1] == 8    # another T: rebuilt


@pytest.mark.parametrize("position", ["alibi", "learned", "rope"])
def test_cached_decoding_matches_the_full_forward(position):
    torch.manual_seed(0)
    model = GPT(tiny(position=position, init_std=0.3, n_kv_head=2)).eval()
    x = ids(T=12)
    with torch.no_grad():
        full = model(x)
        cache = KVCache(model)
        parts = [model(x[:, :5], cache=cache)] + [model(x[:, t:t + 1], cache=cache) for t in range(5, 12)]
        assert torch.allclose(torch.cat(parts, 1), full, atol=1e-5, rtol=0)
        if position == "alibi":
            cache = KVCache(model)
            old = [old_alibi_forward(model, x[:, :5], cache)] + \
                  [old_alibi_forward(model, x[:, t:t + 1], cache) for t in range(5, 12)]
            assert torch.allclose(torch.cat(old, 1), torch.cat(parts, 1), atol=1e-6, rtol=0)


def test_causal_mask_with_an_offset_aligns_the_diagonal_bottom_right():
    m = causal_mask(2, 3, "cpu")
    assert m.tolist() == [[True, True, True, True, False], [True, True, True, True, True]]


def test_one_new_token_needs_no_mask():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 4, 1, 8), torch.randn(2, 4, 9, 8), torch.randn(2, 4, 9, 8)
    old = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(1, 8, "cpu"))
    assert torch.allclose(F.scaled_dot_product_attention(q, k, v), old, atol=1e-6, rtol=0)


@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
@pytest.mark.parametrize("n_head", [4, 6])
def test_alibi_on_flex_attention_equals_the_sdpa_path(n_head):
    # Forward only: FlexAttention has no CPU backward (the model falls back to SDPA there).
    torch.manual_seed(0)
    cfg = tiny(position="alibi", n_head=n_head, n_embd=48, n_kv_head=2 if n_head == 4 else None)
    attn = gpt_mod.Attention(cfg).eval()
    slopes = gpt_mod.alibi_slopes(n_head)
    x = torch.randn(2, 16, 48)
    masks = gpt_mod.MaskCache()
    with torch.no_grad():
        sdpa = attn(x, {"alibi": masks.alibi(slopes, 16, 0, torch.float32)})
        flex = attn(x, {"alibi": None, "flex": masks.alibi_flex(slopes, 16)})
        assert torch.allclose(flex, sdpa, atol=1e-6, rtol=0)
        _, block_mask = masks.alibi_flex(slopes, 16)   # control: flex without the bias differs
        plain = attn(x, {"flex": (lambda s, b, h, q, kv: s, block_mask)})
        assert not torch.allclose(plain, sdpa, atol=1e-3)
    # The whole model, through the same switch (two kernels: equal to float rounding).
    a, b = GPT(cfg).eval(), GPT(cfg).eval()
    b.load_state_dict(a.state_dict())
    b.attention_impl = "flex"
    with torch.no_grad():
        ya, yb = a(ids()), b(ids())
    assert b._masks.flex_key is not None and a._masks.flex_key is None
    assert torch.allclose(ya, yb, atol=1e-5, rtol=1e-5)
    assert not b._use_flex(torch.device("cpu"))     # with gradients on the CPU: SDPA
    b.attention_impl = "auto"                       # flex only while being compiled
    with torch.no_grad():
        assert not b._use_flex(torch.device("cpu"))
