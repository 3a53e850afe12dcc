"""The planner's tensor inventory agrees with the model gptlab really builds."""
from __future__ import annotations

import math

import pytest

from gptlab.config import load_config
from gptlab.model import GPT
from gptlab.model.presets import RECIPES
from gptlab.plan.compute import hardware_flops_per_token, model_flops_per_token
from gptlab.plan.shape import shape_from_config

SMALL = ["model.n_layer=2", "model.n_embd=64", "model.n_head=4", "model.vocab_size=97", "model.block_size=32"]


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_counts_match_the_built_model(recipe):
    cfg = load_config(None, [f"model.preset={recipe}", *SMALL])
    model = GPT(cfg.model)
    shape = shape_from_config(cfg.model)
    assert shape.n_params == model.num_params(non_embedding=False)
    assert model_flops_per_token(shape) == model.flops_per_token()


@pytest.mark.parametrize("extra", [
    ["model.tie_embeddings=false"],                       # untied head: counted, the input table is not a matmul
    ["model.n_kv_head=2", "model.mlp=swiglu"],            # grouped-query heads, gated MLP
    ["model.bias=true", "model.norm_bias=true", "model.embed_norm=true"],
    ["model.placement=deepnorm"],                         # no final norm
])
def test_variants_match_the_built_model(extra):
    cfg = load_config(None, [*SMALL, *extra])
    model = GPT(cfg.model)
    shape = shape_from_config(cfg.model)
    assert shape.n_params == model.num_params(non_embedding=False)
    assert model_flops_per_token(shape) == model.flops_per_token()


def test_gpt3_175b_has_175b_parameters():
    shape = shape_from_config(load_config(None, ["model.preset=gpt3-175b", "model.vocab_size=50257"]).model)
    assert 174e9 < shape.n_params < 175.5e9
    # Recompute adds one forward: 8N + 16LHQT over 6N + 12LHQT is exactly 4/3.
    assert hardware_flops_per_token(shape, True) / model_flops_per_token(shape) == pytest.approx(4 / 3)
    assert hardware_flops_per_token(shape, False) == model_flops_per_token(shape)


def test_head_dim_override_gives_palm_540b():
    cfg = load_config(None, ["model.preset=palm", "model.n_layer=118", "model.n_embd=18432", "model.n_head=48",
                             "model.vocab_size=256000", "model.block_size=2048"])
    assert shape_from_config(cfg.model).n_params > 560e9          # 384-wide heads: too many
    assert shape_from_config(cfg.model, head_dim=256).n_params == pytest.approx(540.35e9, rel=1e-3)


def test_tensor_parallel_split():
    cfg = load_config(None, ["model.preset=palm", *SMALL])   # multi-query: one k/v head
    shape = shape_from_config(cfg.model)
    by_name = {w.name: w for w in shape.layer_weights()}
    q, k, norm = by_name["q_proj.weight"], by_name["k_proj.weight"], by_name["input_layernorm.weight"]
    assert math.prod(q.local_shape(4, shape.n_kv_head)) * 4 == q.numel
    assert k.local_shape(4, shape.n_kv_head) == k.shape            # one k/v head cannot be split 4 ways
    assert norm.local_shape(4, shape.n_kv_head) == norm.shape      # norms are replicated
    down = by_name["down_proj.weight"]
    assert down.local_shape(2, shape.n_kv_head) == (down.shape[0] // 2, down.shape[1])   # row split: inputs
