"""The configurable decoder: positions, norms, blocks, init schemes, accounting."""
from __future__ import annotations

import math

import pytest
import torch

from gptlab.config import ConfigError, load_config
from gptlab.interop.transforms import half_to_interleaved, interleaved_to_half
from gptlab.model import GPT, ModelConfig
from gptlab.model.gpt import alibi_bias, alibi_slopes, apply_rope, fuse_qkv_state, rope_tables, split_qkv_state


def tiny(**kw) -> ModelConfig:
    base = dict(n_layer=2, n_head=4, n_embd=32, vocab_size=50, block_size=24)
    base.update(kw)
    return ModelConfig(**base)


def logits(model: GPT, seed: int = 0, T: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, model.config.vocab_size, (2, T), generator=g)
    with torch.no_grad():
        return model.eval()(x)


# ----------------------------------------------------------------------------- ALiBi

@pytest.mark.parametrize("n_head, expected", [
    (4, [2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8]),
    # not a power of two: the 4-head list, then every other slope of the 8-head list
    (6, [2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8, 2 ** -1, 2 ** -3]),
    (12, [2 ** -(i + 1) for i in range(8)] + [2 ** -0.5, 2 ** -1.5, 2 ** -2.5, 2 ** -3.5]),
])
def test_alibi_slopes(n_head, expected):
    assert torch.allclose(alibi_slopes(n_head), torch.tensor(expected), rtol=1e-6)


def test_alibi_bias_is_causal_and_linear_in_distance():
    b = alibi_bias(torch.tensor([0.5]), 4)[0]
    assert torch.isinf(b[0, 1]) and b[0, 1] < 0          # the future is masked
    assert b[3, 3] == 0 and b[3, 1] == -1.0 and b[3, 0] == -1.5


# ----------------------------------------------------------------------------- RoPE

@pytest.mark.parametrize("style", ["half", "interleaved"])
def test_rope_rotates_each_pair_by_position_times_frequency(style):
    # head_dim 4, theta 100: pair 0 turns by p radians, pair 1 by p/10.
    cos, sin = rope_tables(4, 8, theta=100.0)
    p = 5
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).expand(1, 1, 8, 4)
    y = apply_rope(x, cos, sin, style)[0, 0, p]
    pairs = [(0, 2), (1, 3)] if style == "half" else [(0, 1), (2, 3)]
    for f, (a, b) in enumerate(pairs):
        angle = p * 100.0 ** (-2 * f / 4)
        xa, xb = x[0, 0, p, a], x[0, 0, p, b]
        assert torch.allclose(y[a], xa * math.cos(angle) - xb * math.sin(angle), atol=1e-5)
        assert torch.allclose(y[b], xb * math.cos(angle) + xa * math.sin(angle), atol=1e-5)


@pytest.mark.parametrize("style", ["half", "interleaved"])
def test_rope_scores_depend_only_on_relative_position(style):
    cos, sin = rope_tables(8, 32, theta=10_000.0)
    q, k = torch.randn(8), torch.randn(8)
    def score(i, j):
        qi = apply_rope(q.expand(1, 1, 32, 8), cos, sin, style)[0, 0, i]
        kj = apply_rope(k.expand(1, 1, 32, 8), cos, sin, style)[0, 0, j]
        return (qi * kj).sum()
    assert torch.allclose(score(7, 3), score(20, 16), atol=1e-4)
    assert not torch.allclose(score(7, 3), score(7, 5), atol=1e-3)


def test_rope_conventions_agree_up_to_the_qk_permutation():
    torch.manual_seed(0)
    inter = GPT(tiny(position="rope", rope_style="interleaved", n_kv_head=2, bias=True, init_std=0.3))
    half = GPT(tiny(position="rope", rope_style="half", n_kv_head=2, bias=True, init_std=0.3))
    sd = split_qkv_state(inter.state_dict(), inter.config)
    for k in list(sd):
        if ".q_proj." in k or ".k_proj." in k:
            n = 4 if ".q_proj." in k else 2
            sd[k] = interleaved_to_half(sd[k], n, 8, 8)
    half.load_state_dict(fuse_qkv_state(sd, half.config))
    assert torch.allclose(logits(inter), logits(half), atol=1e-5)
    # ...and the unpermuted weights do not agree (the permutation is needed).
    half.load_state_dict(inter.state_dict())
    assert not torch.allclose(logits(inter), logits(half), atol=1e-3)
    w = torch.randn(16, 5)
    assert torch.equal(half_to_interleaved(interleaved_to_half(w, 2, 8, 8), 2, 8, 8), w)


def test_partial_rope_leaves_the_other_dims_alone():
    cfg = tiny(position="rope", rope_fraction=0.5)
    assert cfg.rotary_dim == 4
    cos, sin = rope_tables(cfg.rotary_dim, 8, cfg.rope_theta)
    x = torch.randn(1, 1, 8, 8)
    y = apply_rope(x, cos, sin, "half")
    assert torch.equal(y[..., 4:], x[..., 4:])
    assert not torch.allclose(y[..., 1:, :4], x[..., 1:, :4])
    GPT(cfg)(torch.zeros(1, 8, dtype=torch.long))


# ----------------------------------------------------------------------------- blocks, norms, switches

@pytest.mark.parametrize("kw", [
    dict(), dict(position="alibi"), dict(position="rope", rope_style="interleaved"),
    dict(norm="rmsnorm"), dict(norm_bias=True, bias=True), dict(placement="post"),
    dict(placement="deepnorm", deepnorm="deepnet"), dict(block="parallel"), dict(block="parallel2"),
    dict(mlp="relu"), dict(mlp="gelu_tanh"), dict(mlp="swiglu"), dict(mlp="geglu"), dict(n_kv_head=1),
    dict(n_kv_head=2), dict(embed_norm=True), dict(tie_embeddings=False), dict(logit_scale="rsqrt_d"),
])
def test_every_switch_builds_and_returns_logits(kw):
    m = GPT(tiny(**kw))
    out = logits(m)
    assert out.shape == (2, 16, 50) and torch.isfinite(out).all()


def test_parallel_shares_one_norm_and_differs_from_sequential():
    par = GPT(tiny(block="parallel", init_std=0.3))
    assert not hasattr(par.layers[0], "post_attention_layernorm")
    assert hasattr(GPT(tiny(block="parallel2")).layers[0], "post_attention_layernorm")
    seq = GPT(tiny())
    seq.load_state_dict(par.state_dict(), strict=False)
    assert not torch.allclose(logits(par), logits(seq), atol=1e-4)


def test_post_ln_and_deepnorm_have_no_final_norm_and_alpha():
    assert not hasattr(GPT(tiny(placement="post")), "norm")
    cfg = tiny(placement="deepnorm", n_layer=8)
    assert cfg.deepnorm_alpha_beta == pytest.approx((16 ** 0.5, 16 ** -0.5))
    cfg = tiny(placement="deepnorm", deepnorm="deepnet", n_layer=8)
    assert cfg.deepnorm_alpha_beta == pytest.approx((16 ** 0.25, 64 ** -0.25))
    assert GPT(cfg).layers[0].alpha == pytest.approx(16 ** 0.25)


def test_logit_scale_multiplies_by_rsqrt_d():
    torch.manual_seed(0)
    a = GPT(tiny(logit_scale="rsqrt_d"))
    b = GPT(tiny())
    b.load_state_dict(a.state_dict())
    assert torch.allclose(logits(a), logits(b) / math.sqrt(32), atol=1e-6)


def test_embedding_gradient_shrink_scales_only_the_gradient():
    torch.manual_seed(0)
    a = GPT(tiny(embed_grad_scale=0.1, tie_embeddings=False))
    b = GPT(tiny(tie_embeddings=False))
    b.load_state_dict(a.state_dict())
    x = torch.randint(0, 50, (2, 16))
    la, lb = a(x).sum(), b(x).sum()
    assert torch.allclose(la, lb)
    la.backward()
    lb.backward()
    assert torch.allclose(a.embed_tokens.weight.grad, 0.1 * b.embed_tokens.weight.grad, atol=1e-6)
    ga, gb = (m.layers[0].self_attn.qkv_proj.weight.grad[:32] for m in (a, b))   # the q rows
    assert torch.allclose(ga, gb)


def test_ffn_width_rules():
    assert tiny(mlp="gelu").ffn_hidden == 128
    assert tiny(mlp="swiglu").ffn_hidden == 88                     # 2/3 * 128 = 85.3 -> up to a multiple of 8
    assert tiny(mlp="swiglu", ffn_rule="ratio").ffn_hidden == 128  # PaLM keeps 4d
    assert tiny(ffn_rule="explicit", ffn_size=100, ffn_multiple_of=1).ffn_hidden == 100


def test_dropout_defaults_to_zero():
    assert ModelConfig().dropout == 0.0


# ----------------------------------------------------------------------------- init schemes

def _std(model, name):
    return split_qkv_state(dict(model.named_parameters()), model.config)[name].std().item()


def test_init_gpt2_opt_bloom_scale_residual_projections():
    L, d = 4, 256
    for init, std in (("gpt2", 0.02), ("opt", 0.006), ("bloom", math.sqrt(1 / (3 * d)))):
        m = GPT(tiny(n_layer=L, n_embd=d, n_head=4, init=init, vocab_size=512))
        assert _std(m, "layers.0.self_attn.q_proj.weight") == pytest.approx(std, rel=0.05)
        assert _std(m, "layers.0.mlp.down_proj.weight") == pytest.approx(std / math.sqrt(2 * L), rel=0.05)
        assert _std(m, "embed_tokens.weight") == pytest.approx(std, rel=0.05)


def test_init_palm_is_fan_in_with_unit_embeddings():
    d = 256
    m = GPT(tiny(n_embd=d, init="palm", mlp="swiglu", ffn_rule="ratio", vocab_size=512))
    assert _std(m, "embed_tokens.weight") == pytest.approx(1.0, rel=0.05)
    assert _std(m, "layers.0.self_attn.q_proj.weight") == pytest.approx(1 / math.sqrt(d), rel=0.05)
    assert _std(m, "layers.0.mlp.down_proj.weight") == pytest.approx(1 / math.sqrt(4 * d), rel=0.05)


def test_init_deepnorm_shrinks_v_o_and_mlp_by_beta():
    d, L = 256, 6
    m = GPT(tiny(n_embd=d, n_layer=L, init="deepnorm", placement="deepnorm", vocab_size=512))
    beta = (2 * L) ** -0.5
    xavier = math.sqrt(2 / (d + d))
    assert _std(m, "layers.0.self_attn.q_proj.weight") == pytest.approx(xavier, rel=0.05)
    assert _std(m, "layers.0.self_attn.v_proj.weight") == pytest.approx(beta * xavier, rel=0.05)
    assert _std(m, "layers.0.self_attn.o_proj.weight") == pytest.approx(beta * xavier, rel=0.05)


def test_norm_gains_one_and_biases_zero():
    m = GPT(tiny(norm_bias=True, bias=True))
    assert torch.equal(m.layers[0].input_layernorm.weight, torch.ones(32))
    assert torch.equal(m.layers[0].input_layernorm.bias, torch.zeros(32))
    assert torch.equal(m.layers[0].self_attn.qkv_proj.bias, torch.zeros(96))


# ----------------------------------------------------------------------------- accounting

def test_param_count_and_flops_per_token():
    cfg = tiny(tie_embeddings=True)
    m = GPT(cfg)
    d, L, V, T, F = 32, 2, 50, 24, 128
    per_layer = 4 * d * d + 2 * d * F + 2 * d        # attention, MLP, two LayerNorm gains (no biases)
    assert m.num_params() == L * per_layer + d      # + final norm; embeddings excluded
    matmul_params = L * per_layer + d + V * d        # the tied table is the output matmul
    assert m.flops_per_token() == 6 * matmul_params + 12 * L * 4 * 8 * T


def test_cross_field_errors_name_the_key():
    with pytest.raises(ConfigError, match="block"):
        load_config(None, ["model.block=parallel", "model.placement=post"])
    with pytest.raises(ConfigError, match="rope_fraction"):
        load_config(None, ["model.position=rope", "model.rope_fraction=0.01"])
    with pytest.raises(ConfigError, match="model.position"):
        load_config(None, ["model.position=sinusoid"])
