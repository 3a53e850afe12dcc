"""Memory per GPU: the textbook numbers, and the layouts a 175B model does and does not fit."""
from __future__ import annotations

import dataclasses

import pytest

from gptlab.config import load_config
from gptlab.plan.gpus import find_gpu
from gptlab.plan.memory import (
    RUNTIME_RESERVE,
    Layout,
    Settings,
    candidate_layouts,
    checkpointed_layer_bytes,
    estimate,
    layer_activation_bytes,
    plan_memory,
)
from gptlab.plan.shape import shape_from_config

A100 = find_gpu("A100-80G")


@pytest.fixture(scope="module")
def gpt3():
    return shape_from_config(load_config(None, ["model.preset=gpt3-175b", "model.vocab_size=50257"]).model)


def test_korthikanti_per_layer_estimate(gpt3):
    # With dropout and unfused attention the per-tensor sum is Korthikanti et al.'s s·b·h·(34 + 5·a·s/h).
    s = dataclasses.replace(gpt3, dropout=0.1)
    sbh = s.seq * 1 * s.d_model
    expected = sbh * (34 + 5 * s.n_head * s.seq / s.d_model)
    assert layer_activation_bytes(s, 1, 1, Settings(flash=False)) == pytest.approx(expected)
    # Sequence + tensor parallelism divides all of it by t; full recompute keeps 2·s·b·h.
    assert layer_activation_bytes(s, 1, 8, Settings(flash=False)) == pytest.approx(expected / 8)
    assert checkpointed_layer_bytes(s, 1, 1, Settings()) == 2 * sbh
    # No dropout: no masks (32); fused attention: no s×s scores, only a row statistic.
    assert layer_activation_bytes(gpt3, 1, 1, Settings()) == pytest.approx(32 * sbh + 4 * s.seq * s.n_head)


def test_adamw_costs_16_bytes_per_parameter_either_way(gpt3):
    for weights in ("bf16", "fp32"):
        e = estimate(gpt3, Layout(1, 1, 1, "ddp"), A100, Settings(weights=weights))
        assert (e.params + e.grads + e.optimizer) / gpt3.n_params == pytest.approx(16.0)


def test_175b_does_not_fit_one_gpu_under_ddp(gpt3):
    e = estimate(gpt3, Layout(1, 1, 8, "ddp"), A100, Settings())
    assert not e.fits and not e.fits_checkpointed
    assert e.params + e.grads + e.optimizer > 2.5e12           # 2.8 TB of model state per GPU


def test_175b_fits_fsdp_on_1024_gpus_with_checkpointing(gpt3):
    e = estimate(gpt3, Layout(1, 1, 1024, "fsdp"), A100, Settings(global_batch=1536))
    assert e.fits_checkpointed
    assert not e.fits                                          # 96 layers of activations alone are ~77 GB
    assert e.optimizer == pytest.approx(gpt3.n_params * 12 / 1024, rel=1e-3)


def test_checkpointing_shrinks_activations(gpt3):
    e = estimate(gpt3, Layout(1, 1, 1024, "fsdp"), A100, Settings())
    assert e.activations_checkpointed < e.activations / 10
    assert e.total - e.total_checkpointed == pytest.approx(e.activations - e.activations_checkpointed)


def test_sharding_levels(gpt3):
    s = Settings(global_batch=2048)
    ddp, z1, fsdp = (estimate(gpt3, Layout(8, 8, 16, shard), A100, s) for shard in ("ddp", "zero1", "fsdp"))
    assert z1.params == ddp.params and z1.optimizer == pytest.approx(ddp.optimizer / 16)
    assert fsdp.params == pytest.approx(ddp.params / 16) and fsdp.grads == pytest.approx(ddp.grads / 16)
    assert "ddp_buckets" in ddp.buffers_detail and "fsdp_gather" in fsdp.buffers_detail
    assert min(e.buffers for e in (ddp, z1, fsdp)) >= RUNTIME_RESERVE


def test_tensor_and_pipeline_parallel_divide_the_weights(gpt3):
    one = estimate(gpt3, Layout(1, 1, 1, "ddp"), A100, Settings())
    tp8 = estimate(gpt3, Layout(8, 1, 1, "ddp"), A100, Settings())
    pp8 = estimate(gpt3, Layout(1, 8, 1, "ddp"), A100, Settings())
    assert tp8.params_per_gpu == pytest.approx(one.params_per_gpu / 8, rel=0.01)
    # The fullest pipeline stage: 12 of the 96 layers plus an end of the model (the token table).
    table = gpt3.vocab * gpt3.d_model
    assert pp8.params_per_gpu == 12 * gpt3.params_per_layer + table + gpt3.seq * gpt3.d_model
    # 1F1B: the first stage holds p micro-batches of its L/p layers, so pipelining alone does
    # not shrink activations; tensor (sequence) parallelism does.
    assert pp8.activations == pytest.approx(one.activations, rel=0.01)
    assert tp8.activations == pytest.approx(one.activations / 8, rel=0.01)


def test_adafactor_state(gpt3):
    adamw, factored, palm = (estimate(gpt3, Layout(1, 1, 1, "ddp"), A100, Settings(optimizer=o))
                             for o in ("adamw", "adafactor", "adafactor-palm"))
    assert palm.optimizer == adamw.optimizer                    # unfactored v + momentum: Adam's two moments
    master = 4 * gpt3.n_params
    assert master < factored.optimizer < master * 1.01          # factored v is ~rows + cols: almost nothing


def test_layouts_named_and_ranked(gpt3):
    names = [lay.name for lay in candidate_layouts(gpt3, 1024, A100)]
    assert names[:2] == ["DDP×1024", "FSDP×1024"] and "TP8×PP16×DP8 ZeRO-1" in names
    est = plan_memory(gpt3, 1024, A100, Settings(global_batch=1536))
    fitting = [e for e in est[2:] if e.fits or e.fits_checkpointed]
    assert fitting and all(e.fits or e.fits_checkpointed for e in fitting)
    # Every layout uses all GPUs and a tensor-parallel size inside one 8-GPU node.
    assert all(e.tp * e.pp * e.dp == 1024 and e.tp <= 8 for e in est)
