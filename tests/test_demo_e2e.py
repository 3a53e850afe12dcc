"""End to end: `gptlab demo --size tiny` on the embedded corpus (built once by the tiny_run fixture)."""
import json
import shutil
import subprocess
import sys

import pytest
import torch

import gptlab
from gptlab.config import load_config
from gptlab.manifest import is_complete, read_manifest
from gptlab.pipeline import demo_preset, run_all

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """The in-process reruns of the chain train a tiny model: fastest on one thread."""
    yield


STAGES = ("harvest", "curate", "tokenizer", "pack", "train", "eval")


def test_every_stage_is_complete_with_a_resolved_config(tiny_run):
    for stage in STAGES:
        assert is_complete(tiny_run / stage), stage
        assert read_manifest(tiny_run / stage)["config"]["train"]["max_steps"] == 150
    assert (tiny_run / "config.toml").read_text().startswith("[data]")
    assert (tiny_run / "train" / "config.toml").exists()


def test_funnel_reconciles(tiny_run):
    s = read_manifest(tiny_run / "curate")["summary"]
    assert s["in_docs"] == s["kept_docs"] + s["dropped_docs"] + s["quarantined_docs"]
    assert s["in_docs"] == read_manifest(tiny_run / "harvest")["summary"]["docs"]
    assert s["kept_docs"] == s["train_docs"] + s["heldout_docs"]
    for src, c in s["funnel"]["sources"].items():
        assert c["in"] == c.get("kept", 0) + c.get("dropped", 0) + c.get("quarantined", 0), src
    # Curation had real work: exact and near duplicates (licenses, Bible translations) and junk.
    by_step = {step["name"]: step["dropped"] for step in s["funnel"]["steps"]}
    assert by_step["exact_dedup"].get("duplicate", 0) > 0
    assert by_step["minhash"].get("duplicate", 0) > 0
    assert sum(by_step["classifier"].values()) > 0
    steps = s["funnel"]["steps"]
    for a, b in zip(steps, steps[1:]):
        assert a["out_docs"] == b["in_docs"]
        assert a["in_docs"] == a["out_docs"] + sum(a["dropped"].values())


def test_report_has_its_sections(tiny_run):
    html = (tiny_run / "report.html").read_text()
    for section in ('id="funnel"', 'id="training"', 'id="evaluation"', 'id="config"'):
        assert section in html
    assert html.count("data:image/png;base64,") == 3      # funnel, loss curve, eval chart
    assert "unigram" in html and "reconciles" in html
    for png in ("funnel.png", "loss.png", "eval.png"):
        assert (tiny_run / "figures" / png).read_bytes()[:4] == b"\x89PNG"


def test_rerun_skips_finished_stages(tiny_run, cli_logging, capsys):
    before = {s: read_manifest(tiny_run / s)["finished_at"] for s in STAGES}
    run_all(load_config(None, [], fragments=[demo_preset("tiny")]), tiny_run, workers=1)
    after = {s: read_manifest(tiny_run / s)["finished_at"] for s in STAGES}
    assert before == after
    err = capsys.readouterr().err
    assert err.count("complete, skipping") == len(STAGES)


def test_changed_config_reruns_only_downstream_stages(tiny_run, tmp_path):
    """Copy the run, change a training setting: data stages skip, training reruns."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = {s: read_manifest(run / s)["finished_at"] for s in STAGES}
    shutil.rmtree(run / "train" / "checkpoints")
    run_all(load_config(None, ["train.max_steps=20"], fragments=[demo_preset("tiny")]), run, workers=1)
    after = {s: read_manifest(run / s)["finished_at"] for s in STAGES}
    for s in ("harvest", "curate", "tokenizer", "pack"):
        assert before[s] == after[s]
    assert after["train"] != before["train"] and after["eval"] != before["eval"]
    assert read_manifest(run / "train")["summary"]["steps"] == 20


def test_cli_errors_are_one_line_and_name_the_key(tmp_path):
    r = subprocess.run([sys.executable, "-m", "gptlab.cli", "train", "--data", str(tmp_path), "--out",
                        str(tmp_path / "o"), "train.lrr=1"], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert "train.lrr: unknown key" in r.stderr


def test_cli_report_and_load_model(tiny_run, tmp_path):

    out = tmp_path / "r.html"
    r = subprocess.run([sys.executable, "-m", "gptlab.cli", "report", str(tiny_run), "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert out.exists() and str(out) in r.stdout
    model = gptlab.load_model(tiny_run)
    ids = torch.randint(0, model.config.vocab_size, (2, 9))
    assert model(ids).shape == (2, 9, model.config.vocab_size)
    assert json.loads((tiny_run / "eval" / "eval.json").read_text())["overall"]["bpb"] > 0


def test_periodic_eval_is_logged_during_training(tiny_run):
    rows = [json.loads(l) for l in (tiny_run / "train" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval_bpb" in r]
    assert [r["step"] for r in evals] == [75, 150]
    assert evals[-1]["eval_bpb"] < evals[0]["eval_bpb"]
