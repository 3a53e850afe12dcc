"""fp16: an overflow is the loss scaler's business, not a spike for the stability guard.

GradScaler skips a step whose gradients are inf/NaN and lowers its scale; rolling back would
restore the old, too-high scale and replay the same overflow. These runs use real fp16
autocast on CPU (slow per step, so a one-layer model and few steps)."""
import json
from pathlib import Path

import pytest
import torch

from gptlab.config import load_config
from gptlab.train.loop import run_train, scaler_step

TINY = ["model.n_layer=1", "model.n_embd=32", "model.n_head=2", "train.batch_size=8", "train.threads=1",
        "train.log_every=1000", "train.warmup_steps=2", "train.checkpoint_every=100", "train.precision=fp16",
        "train.schedule=constant"]
# The guard armed early, so that a false alarm would show within a few steps.
GUARD = ["stability.enabled=true", "stability.warmup=6", "stability.window=6", "stability.snapshot_every=2",
         "stability.rollback_steps=2", "stability.cooldown=1"]


@pytest.fixture(autouse=True)
def _no_tensorboard(monkeypatch):
    monkeypatch.setenv("GPTLAB_TENSORBOARD", "0")


def _run(pack, out, extra):
    cfg = load_config(None, TINY + GUARD + list(extra))
    summary = run_train(cfg.model, cfg.train, cfg.stability, pack, out)
    rows = [json.loads(l) for l in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    ev = Path(out) / "events.jsonl"
    events = [json.loads(l) for l in ev.read_text().splitlines()] if ev.exists() else []
    return summary, rows, events


def test_a_huge_initial_scale_recovers_by_backoff_alone(pack_dir, tmp_path):
    """2^24 overflows the fp16 gradients: the scaler halves its scale on each skipped step until
    they fit. Before the fix each overflow was a 'nonfinite-grad_norm' spike and a rollback."""
    summary, rows, events = _run(pack_dir, tmp_path / "s", ["train.loss_scale_init=16777216", "train.max_steps=14"])
    skipped = [r for r in rows if r["skipped_step"]]
    assert skipped, "2^24 should overflow fp16 gradients at least once"
    assert all(b["loss_scale"] < a["loss_scale"] for a, b in zip(rows, rows[1:]) if b["skipped_step"])
    assert [e for e in events if e["event"] in ("detect", "rollback")] == []
    assert "stopped" not in summary and summary["steps"] == 14
    assert [r["step"] for r in rows] == list(range(1, 15))         # no step replayed
    assert not rows[-1]["skipped_step"] and rows[-1]["loss_scale"] < 2 ** 24
    assert json.loads((tmp_path / "s" / "manifest.json").read_text())["complete"] is True


def _fake_step(scaler, found_inf: bool):
    """One scaler step on a single parameter whose gradient is inf (or finite)."""
    p = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([p], lr=0.1)
    scaler.scale(torch.ones(()))                      # the scaler starts its scale lazily, here
    p.grad = torch.full((2,), float("inf") if found_inf else 1.0)
    scaler.unscale_(opt)
    return scaler_step(scaler, opt, min_scale=2.0 ** -5)


def test_the_loss_scale_has_a_floor():
    """torch's GradScaler halves without limit; gptlab holds the scale at loss_scale_min, and an
    overflow at the floor is reported as skipped but not backed off (then the guard judges it)."""
    if not torch.amp.GradScaler("cpu").is_enabled():
        pytest.skip("GradScaler disabled on this build")
    s = torch.amp.GradScaler("cpu", init_scale=2.0 ** -4, backoff_factor=0.5, growth_interval=256)
    assert _fake_step(s, True) == (True, True) and s.get_scale() == 2.0 ** -5
    assert _fake_step(s, True) == (True, False) and s.get_scale() == 2.0 ** -5     # held at the floor
    assert _fake_step(s, False) == (False, False) and s.get_scale() == 2.0 ** -5


def test_opt_preset_uses_metaseqs_loss_scaler():
    t = load_config(None, ["model.preset=opt"]).train
    assert (t.precision, t.loss_scale_init, t.loss_scale_growth_interval, t.loss_scale_min) == ("fp16", 4.0, 256, 2 ** -5)
    d = load_config(None, []).train                     # everyone else: torch's defaults, no floor
    assert (d.loss_scale_init, d.loss_scale_growth_interval, d.loss_scale_min) == (2.0 ** 16, 2000, 0.0)


@pytest.mark.parametrize("preset", ["opt", "glm"])
def test_fp16_presets_train_with_the_guard_on_and_no_false_alarm(pack_dir, tmp_path, preset):
    """The fp16 recipes with their own optimizer, schedule and loss scaler, and the guard armed
    after a few steps: no rollback, the loss goes down."""
    cfg = load_config(None, [f"model.preset={preset}", "model.n_layer=1", "model.n_embd=32", "model.n_head=2"])
    assert cfg.train.precision == "fp16" and cfg.stability.enabled
    summary, rows, events = _run(pack_dir, tmp_path / preset, [
        f"model.preset={preset}", "model.n_layer=1", "model.n_embd=32", "model.n_head=2", "train.batch_size=8",
        "train.ramp=none", "train.max_steps=16", "train.warmup_steps=2", "train.lr=3e-3"])
    assert [e["event"] for e in events if e["event"] in ("detect", "rollback")] == []
    assert "stopped" not in summary and [r["step"] for r in rows] == list(range(1, 17))
    assert rows[-1]["loss"] < rows[0]["loss"]
    assert all("loss_scale" in r for r in rows)
