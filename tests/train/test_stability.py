"""Stability guard: detectors, rollback + skip, replay determinism, persisted skips, budget."""
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gptlab.checkpoint import latest_valid
from gptlab.config import ConfigError, load_config
from gptlab.train.loop import run_train
from gptlab.train.stability import RobustSpike, nonfinite

BASE = ["model.n_layer=1", "model.n_embd=32", "model.n_head=2", "train.batch_size=8", "train.threads=1",
        "train.log_every=1000", "train.warmup_steps=5", "train.max_steps=60", "train.checkpoint_every=10",
        "train.keep_checkpoints=10", "train.schedule=constant",
        "stability.warmup=10", "stability.snapshot_every=5", "stability.rollback_steps=10",
        "stability.skip_batches=5", "stability.skip_lead=5", "stability.cooldown=3"]


@pytest.fixture(autouse=True)
def _no_tensorboard(monkeypatch):
    monkeypatch.setenv("GPTLAB_TENSORBOARD", "0")


def run(pack, out, extra=()):
    cfg = load_config(None, BASE + list(extra))
    summary = run_train(cfg.model, cfg.train, cfg.stability, pack, out, resume=True)
    rows = [json.loads(l) for l in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    ev = Path(out) / "events.jsonl"
    events = [json.loads(l) for l in ev.read_text().splitlines()] if ev.exists() else []
    return summary, rows, events


def test_robust_detector_fires_on_a_spike_not_on_noise():
    d = RobustSpike("loss-spike", "loss", k=6, window=20, min_delta=0.5)
    for i in range(20):
        d.accept({"loss": 3.0 + 0.05 * ((-1) ** i)})
    assert d.check({"loss": 3.1}) is None
    hit = d.check({"loss": 4.5})
    assert hit and hit["detector"] == "loss-spike" and hit["threshold"] < 4.5
    assert nonfinite({"loss": float("nan"), "grad_norm": 1.0})["detector"] == "nonfinite-loss"
    assert nonfinite({"loss": 1.0, "grad_norm": float("inf")})["detector"] == "nonfinite-grad_norm"
    assert nonfinite({"loss": 1.0, "grad_norm": 1.0}) is None
    g = RobustSpike("grad-spike", "grad_norm", k=6, window=20, min_ratio=5)
    for i in range(20):
        g.accept({"grad_norm": 1.0 + 0.01 * i})
    assert g.check({"grad_norm": 3.0}) is None          # an outlier by MAD, but not 5x the median
    assert g.check({"grad_norm": 9.0})


def test_bad_injection_spec_is_a_config_error():
    with pytest.raises(ConfigError, match="stability.inject: 'boom@3' is not"):
        load_config(None, ["stability.inject=boom@3"])


@pytest.fixture(scope="module")
def clean(pack_dir, tmp_path_factory):
    return run(pack_dir, tmp_path_factory.mktemp("clean") / "run")


def test_lr_spike_recovers_and_replays_bitwise(pack_dir, tmp_path, clean):
    _, clean_rows, clean_events = clean
    assert clean_events == []                            # no false alarms on a healthy run
    summary, rows, events = run(pack_dir, tmp_path / "g", ["stability.inject=lr_spike@40"])
    kinds = [e["event"] for e in events]
    assert kinds[:4] == ["inject", "detect", "rollback", "skip"] and "recovered" in kinds
    detect = events[1]
    rollback, skip = events[2], events[3]
    assert detect["step"] == 41 and detect["detector"] == "loss-spike"
    assert rollback["to_step"] == 30                     # newest snapshot >= 10 steps before the onset
    # 5 batches from 5 before the onset, stretched to reach the detecting step's batch.
    assert skip["from_step"] == 35 and skip["batches"] == 6
    assert skip["sequences"] == [35 * 8, 41 * 8]        # the injected batch (step 40) is in the window
    # Replay determinism: after the rollback, steps 31..35 read the same batches as the clean run.
    back = next(i for i in range(1, len(rows)) if rows[i]["step"] <= rows[i - 1]["step"])
    replay = {r["step"]: r["loss"] for r in rows[back:] if r["step"] <= 35}
    assert sorted(replay) == [31, 32, 33, 34, 35]
    assert all(replay[s] == clean_rows[s - 1]["loss"] for s in replay)     # bitwise
    assert summary["steps"] == 60
    assert abs(summary["final_loss"] - clean[0]["final_loss"]) < 0.3
    # The skip list is in the checkpoint, so no later resume can replay those batches.
    st = json.loads((latest_valid(tmp_path / "g" / "checkpoints") / "state.json").read_text())
    assert st["skips"] == [[35, 48]]


def test_guard_off_shows_the_divergence_and_the_nan(pack_dir, tmp_path, clean):
    s, rows, _ = run(pack_dir, tmp_path / "off", ["stability.enabled=false", "stability.inject=lr_spike@40"])
    assert s["final_loss"] > clean[0]["final_loss"] + 1.0
    _, rows, _ = run(pack_dir, tmp_path / "nan", ["stability.enabled=false", "stability.inject=nan@30",
                                                           "train.max_steps=35"])
    assert all(math.isnan(r["loss"]) for r in rows[30:])


def test_nan_is_caught_and_the_run_finishes_finite(pack_dir, tmp_path):
    s, rows, events = run(pack_dir, tmp_path / "n", ["stability.inject=nan@30"])
    assert events[1]["detector"] == "nonfinite-loss"
    assert math.isfinite(s["final_loss"]) and s["steps"] == 60


def test_skip_list_survives_kill_and_resume(pack_dir, tmp_path):
    extra = ["stability.inject=poison@40,lr_spike@40"]
    full, _, _ = run(pack_dir, tmp_path / "a", extra)
    run(pack_dir, tmp_path / "b", extra)
    # "Kill" run b after its step-50 checkpoint: drop the later ones and the finished manifest.
    for p in (tmp_path / "b" / "checkpoints").iterdir():
        if p.name > "step-00000050":
            shutil.rmtree(p)
    (tmp_path / "b" / "manifest.json").unlink()
    resumed, _, _ = run(pack_dir, tmp_path / "b", extra)
    wa = load_file(str(latest_valid(tmp_path / "a" / "checkpoints") / "model.safetensors"))
    wb = load_file(str(latest_valid(tmp_path / "b" / "checkpoints") / "model.safetensors"))
    assert all((wa[k] == wb[k]).all() for k in wa)      # bitwise: the skips were restored
    assert resumed["final_loss"] == full["final_loss"]


def test_a_spike_soon_after_a_resume_is_judged_as_without_the_kill(pack_dir, tmp_path):
    """The checkpoint carries the guard's windows: resumed at step 40, a run still has the 25
    losses its loss detector needs to arm, detects the spike at 55 as the uninterrupted run
    does, and ends bitwise the same (its rollback target, step 45, is after the restart)."""
    extra = ["stability.inject=lr_spike@55", "stability.grad_k=0"]
    full, _, events_full = run(pack_dir, tmp_path / "a", extra)
    assert [e["event"] for e in events_full][:3] == ["inject", "detect", "rollback"]
    run(pack_dir, tmp_path / "b", extra)
    for p in (tmp_path / "b" / "checkpoints").iterdir():
        if p.name > "step-00000040":
            shutil.rmtree(p)
    (tmp_path / "b" / "manifest.json").unlink()
    (tmp_path / "b" / "events.jsonl").unlink()
    resumed, _, events_resumed = run(pack_dir, tmp_path / "b", extra)
    assert events_resumed == events_full          # the same detection, threshold and target
    wa = load_file(str(latest_valid(tmp_path / "a" / "checkpoints") / "model.safetensors"))
    wb = load_file(str(latest_valid(tmp_path / "b" / "checkpoints") / "model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert resumed["final_loss"] == full["final_loss"]


def test_rollback_budget_stops_with_a_report(pack_dir, tmp_path):
    s, _, events = run(pack_dir, tmp_path / "b",
                       ["stability.inject=nan@20,nan@28,nan@36", "stability.max_rollbacks=2",
                        "stability.skip_batches=1", "stability.skip_lead=0"])
    assert events[-1]["event"] == "budget-exhausted"
    assert "budget 2" in s["stopped"]
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["status"] == "stopped" and manifest["complete"] is False   # a stopped run is not "complete"
