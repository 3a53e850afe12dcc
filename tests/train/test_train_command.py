"""`gptlab train` as a user runs it: resume by default, --restart, a guard stop's exit code
and manifest, periodic held-out bpb (--heldout), and the interrupt message."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gptlab import cli
from gptlab.checkpoint import latest_valid, list_checkpoints
from gptlab.report import write_report
from gptlab.report.plots import kept_and_abandoned

SMALL = ["model.n_layer=1", "model.n_embd=32", "model.n_head=2", "train.batch_size=8", "train.threads=1",
         "train.log_every=1000", "train.warmup_steps=2", "train.schedule=constant"]
GUARD = ["stability.warmup=10", "stability.snapshot_every=5", "stability.rollback_steps=10",
         "stability.skip_batches=1", "stability.skip_lead=0", "stability.cooldown=3"]


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("GPTLAB_TENSORBOARD", "0")
    monkeypatch.setenv("GPTLAB_PROGRESS", "0")


def train(pack, out, *args):
    return cli.main(["train", "--data", str(pack), "--out", str(out), *args])


def said(capsys) -> str:
    """What the command printed on stderr, on one line (the log wraps long lines)."""
    return " ".join(capsys.readouterr().err.split())


def rows(out):
    return [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]


def test_a_guard_stop_exits_3_with_the_reason_a_checkpoint_and_a_stopped_manifest(pack_dir, tmp_path, capsys):
    out = tmp_path / "stop"
    args = [*SMALL, *GUARD, "train.max_steps=40", "train.checkpoint_every=100",   # no periodic checkpoint
            "stability.inject=nan@15,nan@20,nan@25", "stability.max_rollbacks=2"]
    assert train(pack_dir, out, *args) == 3
    err = said(capsys)
    assert "stopped by the stability guard" in err and "budget 2" in err
    m = json.loads((out / "manifest.json").read_text())
    assert m["complete"] is False and m["status"] == "stopped" and "budget 2" in m["reason"]
    ck = latest_valid(out / "checkpoints")            # the last good state, restored and saved
    assert ck is not None and m["summary"]["checkpoint"] == str(ck.relative_to(out))
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    stop = events[-1]
    assert stop["event"] == "budget-exhausted"
    assert json.loads((ck / "state.json").read_text())["step"] == stop["restored_to"] < stop["step"]
    assert "Stopped by the stability guard" in write_report(out, tmp_path / "report.html").read_text()
    # A rerun does not skip the stopped run as done: it resumes from that checkpoint (with a
    # fresh budget, and the skip list the checkpoint carries) and here finishes.
    assert train(pack_dir, out, *args) == 0
    err = said(capsys)
    assert "was stopped by the stability guard" in err and f"resumed from {ck.name}" in err
    assert json.loads((out / "manifest.json").read_text())["complete"] is True


def test_rollback_epochs_mark_replayed_steps_and_survive_a_resume(pack_dir, tmp_path, capsys):
    out = tmp_path / "epochs"
    args = [*SMALL, *GUARD, "train.max_steps=36", "train.checkpoint_every=6", "train.keep_checkpoints=10",
            "stability.inject=nan@15,nan@25"]
    assert train(pack_dir, out, *args) == 0
    before = rows(out)
    assert sorted({r["rollback_epoch"] for r in before}) == [0, 1, 2]
    keys = [(r["rollback_epoch"], r["step"]) for r in before]
    assert len(keys) == len(set(keys))                # a step number repeats only in a new epoch
    assert len({r["step"] for r in before}) < len(before)
    kept, abandoned = kept_and_abandoned(before)
    assert [r["step"] for r in kept] == list(range(1, 37)) and abandoned
    assert all(r["rollback_epoch"] == 2 for r in kept if r["step"] > 25)
    # Killed after step 30's checkpoint (epoch 2): the resume keeps the abandoned records.
    for ck in list_checkpoints(out / "checkpoints"):
        if int(ck.name.split("-")[1]) > 30:
            for f in ck.iterdir():
                f.unlink()
            ck.rmdir()
    (out / "manifest.json").unlink()
    assert train(pack_dir, out, *args) == 0
    assert "resumed from step-00000030" in said(capsys)
    assert rows(out) == [{**r, "tokens_per_s": a["tokens_per_s"], "step_time_s": a["step_time_s"]}
                         for r, a in zip(before, rows(out))] and len(rows(out)) == len(before)


def test_the_same_command_resumes_a_killed_run_and_never_overwrites_another(pack_dir, tmp_path, capsys):
    out = tmp_path / "r"
    args = [*SMALL, "train.max_steps=12", "train.checkpoint_every=4", "stability.enabled=false"]
    assert train(pack_dir, out, *args) == 0
    full = rows(out)
    # As if killed at step 10: the step-12 checkpoint and the manifest gone, metrics up to step 10.
    for f in (out / "checkpoints" / "step-00000012").iterdir():
        f.unlink()
    (out / "checkpoints" / "step-00000012").rmdir()
    (out / "manifest.json").unlink()
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in full[:10]))
    capsys.readouterr()
    assert train(pack_dir, out, *args) == 0           # no --resume: resuming is the default
    assert "resumed from step-00000008" in said(capsys)
    again = rows(out)
    assert again[:8] == full[:8] and [r["loss"] for r in again] == [r["loss"] for r in full]
    # Another config in the same folder is refused, and nothing is touched.
    (out / "manifest.json").unlink()
    assert train(pack_dir, out, *args, "train.lr=0.01") == 2
    assert "different model/train config" in said(capsys) and rows(out) == again
    # --resume is still accepted; --restart starts over and says what it removed.
    assert train(pack_dir, out, *args, "--resume") == 0
    assert "resumed from step-00000012" in said(capsys)
    assert train(pack_dir, out, "--restart", *args, "train.lr=0.01", "train.max_steps=4") == 0
    err = said(capsys)
    assert "removed the previous run's checkpoints, metrics.jsonl" in err and "resumed from" not in err
    assert [r["step"] for r in rows(out)] == [1, 2, 3, 4]
    assert [c.name for c in list_checkpoints(out / "checkpoints")] == ["step-00000004"]


def test_heldout_enables_periodic_bpb(pack_dir, curated, tmp_path, capsys):
    out = tmp_path / "e"
    args = [*SMALL, "train.max_steps=8", "train.checkpoint_every=8", "train.eval_every=4"]
    assert train(pack_dir, out, "--heldout", str(curated / "heldout"), *args) == 0
    bpb = {r["step"]: r["eval_bpb"] for r in rows(out) if "eval_bpb" in r}
    assert sorted(bpb) == [4, 8] and all(0 < v < 20 for v in bpb.values())
    # Without train.eval_every, --heldout would do nothing: say so instead.
    assert train(pack_dir, tmp_path / "e2", "--heldout", str(curated / "heldout"), *SMALL) == 2
    assert "train.eval_every" in said(capsys)


def test_the_interrupt_message_matches_what_a_rerun_does(monkeypatch, capsys, tmp_path):
    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "run_train", interrupted)
    assert cli.main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 130
    err = said(capsys)
    assert "rerun the same command" in err and "resumes from its newest checkpoint" in err
    assert "add --resume" not in err


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_periodic_eval_under_torchrun_runs_on_every_rank_and_does_not_hang(pack_dir, curated, tmp_path, mode):
    """An FSDP forward gathers shards from every rank: an eval on rank 0 alone would wait forever.
    Every rank evaluates; rank 0 logs. The bpb equals the one-process run's."""
    env = {**os.environ, "GPTLAB_TENSORBOARD": "0", "GPTLAB_PROGRESS": "0",
           "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    args = [*SMALL, "train.max_steps=4", "train.checkpoint_every=4", "train.eval_every=2",
            f"train.distributed={mode}", "--heldout", str(curated / "heldout")]
    assert train(pack_dir, tmp_path / "one", *args) == 0
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    r = subprocess.run([*torchrun, "-m", "gptlab.cli", "train", "--data", str(pack_dir), "--out",
                        str(tmp_path / "two"), *args], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    one = {x["step"]: x["eval_bpb"] for x in rows(tmp_path / "one") if "eval_bpb" in x}
    two = {x["step"]: x["eval_bpb"] for x in rows(tmp_path / "two") if "eval_bpb" in x}
    assert sorted(two) == sorted(one) == [2, 4]
    assert all(abs(one[s] - two[s]) < 1e-3 for s in one)
