"""One ablation end to end at the smallest size: 2 arms × 2 paired seeds, a few steps each,
on the shared test pack; then a rerun that trains nothing, and the report."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import builders
import gptlab
from gptlab.lab.report import write_ablation_report
from gptlab.lab.runner import SharedData, run_ablation, run_dir
from gptlab.lab.spec import load_ablation
from gptlab.pipeline import demo_preset

ABLATION = """
[ablation]
name = "z-loss (test)"
baseline = "off"
[common]
train.max_steps = 12
train.batch_size = 8
train.warmup_steps = 2
train.log_every = 3
train.checkpoint_every = 6
train.eval_every = 0
train.threads = 1
train.lr = 1e-2
[arms.off]
train.z_loss = 0.0
[arms.on]
train.z_loss = 0.05
[[claims]]
id = "C6"
claim = "z-loss keeps logits small"
arm = "on"
metric = "max_logit"
direction = "lower"
min_effect = 0.0
[[claims]]
id = "same"
claim = "a metric both arms share exactly"
arm = "on"
metric = "tokens_per_s"
direction = "higher"
min_effect = 1e12
"""


@pytest.fixture
def ablation(tmp_path, monkeypatch):
    monkeypatch.setenv("GPTLAB_TENSORBOARD", "0")
    p = tmp_path / "zloss.toml"
    p.write_text(ABLATION)
    return load_ablation(p, demo_preset("tiny"))


@pytest.mark.slow
def test_an_ablation_runs_end_to_end_and_resumes(ablation, pack_dir, curated, tokenizer_dir, tmp_path):
    data = SharedData(pack_dir, curated / "heldout", tokenizer_dir / "tokenizer.json")
    out = tmp_path / "ab"
    with builders.one_thread():
        doc = run_ablation(ablation, demo_preset("tiny"), out, seeds=2, data=data)
    runs = {(r["arm"], r["seed"]): r for r in doc["runs"]}
    assert len(runs) == 4 and {a for a, _ in runs} == {"off", "on"}
    seeds = sorted({s for _, s in runs})
    for arm, seed in runs:
        cfg = (run_dir(out, arm, seed) / "config.toml").read_text()
        assert f"seed = {seed}" in cfg
        assert (run_dir(out, arm, seed) / "eval" / "eval.json").exists()
    # equal budgets: the same tokens for every run; paired seeds across arms
    assert len({r["tokens"] for r in runs.values()}) == 1
    assert all(r["bpb"] > 0 and r["final_loss"] > 0 for r in runs.values())
    # seed changes the run, the arm changes the run: no two runs are the same
    assert len({r["final_loss"] for r in runs.values()}) == 4
    claims = {c["id"]: c for c in doc["claims"]}
    assert claims["C6"]["seeds"] == 2 and claims["C6"]["verdict"] in ("supported", "inconclusive", "contradicted")
    assert claims["C6"]["effect"] == pytest.approx(
        sum(runs[("on", s)]["max_logit"] - runs[("off", s)]["max_logit"] for s in seeds) / 2)
    assert claims["same"]["verdict"] == "inconclusive"

    # a rerun reuses every finished run through its manifests: nothing trains again (and the
    # rerun goes through the process pool, so jobs must travel to worker processes)
    before = {k: (run_dir(out, *k) / "train" / "metrics.jsonl").read_text() for k in runs}
    again = run_ablation(ablation, demo_preset("tiny"), out, seeds=2, data=data, workers=2)
    assert {k: (run_dir(out, *k) / "train" / "metrics.jsonl").read_text() for k in runs} == before
    assert [r["final_loss"] for r in again["runs"]] == [r["final_loss"] for r in doc["runs"]]

    saved = json.loads((out / "results.json").read_text())
    assert saved["claims"][0]["id"] == "C6"
    report = write_ablation_report(out)
    page = report.read_text()
    assert "holds at" in page and "this scale only" in page
    assert "C6: z-loss keeps logits small" in page and "tokens/s" in page
    assert (out / "figures" / "loss.png").stat().st_size > 1000


@pytest.mark.slow
def test_runs_become_ray_tasks_where_ray_address_is_set(ablation, pack_dir, curated, tokenizer_dir, tmp_path,
                                                        monkeypatch):
    ray = pytest.importorskip("ray")
    src = str(Path(gptlab.__file__).resolve().parent.parent)   # the workers import this very gptlab
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": src, "GPTLAB_TENSORBOARD": "0"}})
    monkeypatch.setenv("RAY_ADDRESS", "already-connected")       # init_ray sees the live connection
    try:
        data = SharedData(pack_dir, curated / "heldout", tokenizer_dir / "tokenizer.json")
        doc = run_ablation(ablation, demo_preset("tiny"), tmp_path / "ab", seeds=1, data=data)
    finally:
        ray.shutdown()
    assert {r["arm"] for r in doc["runs"]} == {"off", "on"}
    assert all(r["final_loss"] > 0 and r["bpb"] > 0 for r in doc["runs"])
    for r in doc["runs"]:
        assert (run_dir(tmp_path / "ab", r["arm"], r["seed"]) / "eval" / "eval.json").exists()
