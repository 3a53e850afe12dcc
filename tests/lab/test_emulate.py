"""Emulated fp16/bf16 (gptlab.train.emulate): fp16's rounding and range in fp32 arithmetic, so
that a CPU can run the precision ablation (C4) with a loss scaler that has to act."""
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from gptlab.config import load_config
from gptlab.train.emulate import Emulation, real, round_to, wanted
from gptlab.train.loop import run_train


def test_rounding_is_fp16s_own_range_precision_and_underflow():
    x = torch.tensor([65504.0, 65519.0, 65520.0, 70000.0, -1e6, 1.0 + 2 ** -10, 1.0 + 2 ** -11, 1e-8, 6e-8])
    r = round_to(x, torch.float16)
    assert r[0] == 65504 and r[1] == 65504                     # the largest fp16, and rounding down to it
    assert torch.isinf(r[2]) and torch.isinf(r[3]) and r[4] == -float("inf")   # overflow -> inf
    assert r[5] == 1.0 + 2 ** -10 and r[6] == 1.0              # 10 mantissa bits; a tie rounds to even
    assert r[7] == 0.0 and r[8] == 2 ** -24                    # underflow, and the smallest subnormal
    y = torch.randn(10_000) * 100
    assert torch.equal(round_to(y, torch.float16), y.half().float())
    assert torch.equal(round_to(y, torch.bfloat16), y.bfloat16().float())
    assert round_to(torch.tensor([1e30]), torch.bfloat16).isfinite().all()      # bf16 has fp32's range


def test_gradients_are_rounded_and_overflow_too():
    g = torch.tensor([1.0, 2.0], requires_grad=True)
    round_to(g, torch.float16).backward(torch.tensor([1e-9, 1e5]))
    assert g.grad[0] == 0.0 and torch.isinf(g.grad[1])        # what a loss scale must avoid, both ways


def test_matmuls_see_rounded_inputs_and_give_rounded_outputs():
    torch.manual_seed(0)
    lin = torch.nn.Linear(16, 8)
    x = torch.randn(4, 16, requires_grad=True)
    with Emulation("fp16"):
        y = lin(x)
        att = F.scaled_dot_product_attention(*(torch.randn(1, 2, 5, 8) for _ in range(3)), is_causal=True)
        big = torch.full((2, 2), 40000.0) @ torch.full((2, 2), 1.0)     # 80000 overflows at the output
    assert y.dtype == torch.float32 and torch.equal(y, y.half().float())
    ref = F.linear(x.half().float(), lin.weight.half().float(), lin.bias.half().float()).half().float()
    assert torch.allclose(y, ref, atol=0, rtol=0)
    assert not torch.equal(y, lin(x))                          # fp32 without the rounding differs
    assert torch.equal(att, att.half().float()) and torch.isinf(big).all()
    y.pow(2).sum().backward()
    for grad in (x.grad, lin.weight.grad):
        assert torch.equal(grad, grad.half().float())          # gradients of fp16 tensors are fp16 values
    # outside the context nothing is rounded, and the context can be entered again
    z = lin(x)
    assert not torch.equal(z, z.half().float())
    with Emulation("bf16"):
        w = lin(x)
    assert torch.equal(w, w.bfloat16().float())


def test_emulation_is_used_only_where_the_real_precision_is_slow():
    assert wanted("fp16-emulated", slow=True) and wanted("bf16-emulated", slow=True)
    assert not wanted("fp16-emulated", slow=False)             # a GPU runs real fp16
    assert not wanted("fp16", slow=True) and not wanted("fp32", slow=True)
    assert real("fp16-emulated") == "fp16" and real("bf16") == "bf16"


TINY = ["model.n_layer=1", "model.n_embd=32", "model.n_head=2", "train.batch_size=8", "train.threads=1",
        "train.log_every=1000", "train.warmup_steps=2", "train.checkpoint_every=100", "train.precision=fp16",
        "train.schedule=constant", "stability.enabled=false"]


def _run(pack, out, extra):
    cfg = load_config(None, TINY + list(extra))
    summary = run_train(cfg.model, cfg.train, cfg.stability, pack, out)
    return summary, [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(autouse=True)
def _no_tensorboard(monkeypatch):
    monkeypatch.setenv("GPTLAB_TENSORBOARD", "0")


def test_emulated_fp16_training_needs_its_loss_scaler_and_tracks_real_fp16(pack_dir, tmp_path):
    """2^24 overflows emulated fp16 gradients as it does real ones: the scaler skips and backs off.
    The emulated losses stay close to real fp16 autocast's (a few steps of a one-layer model)."""
    huge = ["train.loss_scale_init=16777216", "train.max_steps=10"]
    summary, rows = _run(pack_dir, tmp_path / "emu", ["train.precision=fp16-emulated", *huge])
    assert summary["precision"] == "fp16" and summary["emulated"] is True
    skipped = [r for r in rows if r["skipped_step"]]
    assert skipped and rows[-1]["loss_scale"] < 2 ** 24
    _, real = _run(pack_dir, tmp_path / "real", huge)
    assert [r["skipped_step"] for r in real] == [r["skipped_step"] for r in rows]
    for a, b in zip(rows, real):
        assert a["loss"] == pytest.approx(b["loss"], abs=2e-2)
    # and fp32 (no scaler, no rounding) is a different run
    s32, r32 = _run(pack_dir, tmp_path / "fp32", ["train.precision=fp32", "train.max_steps=10"])
    assert s32["emulated"] is False and "loss_scale" not in r32[0]
