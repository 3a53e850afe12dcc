"""Schedules and Adafactor constants as the sources state them (metaseq, GPT-3, PaLM/t5x)."""
from __future__ import annotations

import math

import pytest
import torch

from gptlab.config import load_config
from gptlab.model import GPT
from gptlab.train.optim import build_optimizer, lr_schedule, warmup_steps

TINY = ["model.n_layer=1", "model.n_head=2", "model.n_embd=16", "model.vocab_size=32", "model.block_size=8"]


def tcfg(*over):
    return load_config(None, list(over)).train


def test_linear_schedule_is_metaseq_polynomial_decay_power_1():
    f = lr_schedule(tcfg("train.schedule=linear", "train.lr=1", "train.warmup_steps=10",
                         "train.max_steps=110", "train.min_lr_ratio=0.1"))
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)      # linear warmup
    assert f(60) == pytest.approx(0.55) and f(35) == pytest.approx(0.775)  # a straight line ...
    assert f(110) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)  # ... to 0.1 x lr, then held
    drops = [f(k) - f(k + 1) for k in range(10, 109)]
    assert max(drops) - min(drops) < 1e-12                                # constant slope


def test_warmup_fraction_wins_over_warmup_steps_and_is_at_least_one_step():
    assert warmup_steps(tcfg("train.warmup_steps=50", "train.warmup_fraction=0.1", "train.max_steps=200")) == 20
    assert warmup_steps(tcfg("train.warmup_fraction=0.00125", "train.max_steps=30")) == 1
    assert warmup_steps(tcfg("train.warmup_steps=7")) == 7


def test_decay_fraction_holds_the_floor_after_it():
    f = lr_schedule(tcfg("train.lr=1", "train.warmup_steps=0", "train.max_steps=300", "train.decay_fraction=0.5"))
    assert f(150) == pytest.approx(0.1) and f(299) == pytest.approx(0.1)
    assert f(75) == pytest.approx(0.55)                                  # cosine midpoint of 0..150


def test_palm_rsqrt_at_paper_scale_is_one_over_sqrt_max_k_1e4():
    f = lr_schedule(tcfg("model.preset=palm", "train.max_steps=255000"))
    for k in (0, 9_999, 10_000, 40_000, 254_999):
        assert f(k) == pytest.approx(1 / math.sqrt(max(k + 1, 10_000)), rel=1e-6)


def _one_zero_grad_step(over):
    cfg = load_config(None, TINY + over)
    torch.manual_seed(0)
    model = GPT(cfg.model)
    opt = build_optimizer(model, cfg.train)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    return cfg, before, dict(model.named_parameters())


def test_palm_adafactor_decays_every_parameter_embeddings_included_by_lr_squared():
    # t5x adafactor.py: param = (1 - wd) * param - m, wd = lr ** 2.0, applied to each parameter.
    cfg, before, after = _one_zero_grad_step(["model.preset=palm", "train.lr=0.1"])
    shrink = 1 - cfg.train.weight_decay * 0.1 ** 2
    assert cfg.train.decay_scope == "all"
    emb = next(n for n in after if "embed_tokens" in n)
    for name in (emb, *[n for n in after if "norm" in n][:1]):
        torch.testing.assert_close(after[name].detach(), before[name] * shrink)


def test_a_config_key_keeps_embeddings_and_norms_undecayed():
    _, before, after = _one_zero_grad_step(["model.preset=palm", "train.lr=0.1", "train.decay_scope=matrices"])
    emb = next(n for n in after if "embed_tokens" in n)
    assert torch.equal(after[emb].detach(), before[emb])
    mat = next(n for n, p in after.items() if p.dim() == 2 and "embed" not in n)
    assert not torch.equal(after[mat].detach(), before[mat])


def test_adafactor_exponent_follows_its_key():
    _, before, after = _one_zero_grad_step(["model.preset=palm", "train.lr=0.1", "train.adafactor_wd_lr_exponent=1"])
    emb = next(n for n in after if "embed_tokens" in n)
    torch.testing.assert_close(after[emb].detach(), before[emb] * (1 - 0.1))


@pytest.mark.parametrize("clip, decay_exponent", [(1.0, 0.8), (0.25, 0.5)])
def test_adafactor_clip_and_decay_exponent_are_config_keys(clip, decay_exponent):
    cfg = load_config(None, TINY + ["model.preset=palm", f"train.adafactor_clip={clip}",
                                    f"train.adafactor_decay_exponent={decay_exponent}", "train.weight_decay=0"])
    torch.manual_seed(0)
    model = GPT(cfg.model)
    opt = build_optimizer(model, cfg.train)
    assert all(g["clip_threshold"] == clip and g["decay_exponent"] == decay_exponent for g in opt.param_groups)
    p = next(p for p in model.parameters() if p.dim() == 2)
    p0 = p.detach().clone()
    for q in model.parameters():
        q.grad = torch.ones_like(q)
    opt.step()
    # Step 1: beta2_1 = 0, v = g^2, u = g/|g| = 1 everywhere (RMS 1), clipped to RMS = clip.
    lr, scale = cfg.train.lr, max(p0.pow(2).mean().sqrt().item(), 1e-3)
    torch.testing.assert_close(opt.state[p]["m"], torch.full_like(p0, 0.1 * lr * scale * min(1.0, clip)))
    for q in model.parameters():
        q.grad = torch.full_like(q, 2.0)
    opt.step()
    # Step 2: beta2_2 = 1 - 2^-c, so v = beta2_2 * 1 + (1 - beta2_2) * 4.
    b2 = 1 - 2 ** -decay_exponent
    torch.testing.assert_close(opt.state[p]["v"], torch.full_like(p0, b2 + (1 - b2) * 4.0))
