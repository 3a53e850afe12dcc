"""Through the CLI, a stage refuses a folder that is not its own in one line (exit 2) and
`--force` lets it write there."""
from __future__ import annotations

import json

import pytest

from gptlab.checkpoint import save_checkpoint
from gptlab.cli import main
from gptlab.config import RunConfig, load_config, to_dict
from gptlab.data.documents import Document, write_shard
from gptlab.manifest import MARKER, RUN, owner_of, read_manifest
from gptlab.model import GPT
from gptlab.pipeline import _claim_run
from gptlab.sources.bible import bible_documents
from gptlab.tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def texts():
    return [d.text for d in bible_documents(60) if d.source == "bible-kjv"][:12]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _foreign(folder):
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    return folder


def _refused(argv, capsys, folder, *words):
    capsys.readouterr()                       # earlier commands' logs
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("gptlab: error:"), err
    assert str(folder) in err and "--force" in err, err
    for w in words:
        assert w in err, err
    return err


def test_curate_and_tokenizer_refuse_foreign_folders_and_force_writes_there(tmp_path, texts, capsys):
    inp = _jsonl(tmp_path / "in.jsonl", [{"text": t} for t in texts])
    cur = tmp_path / "cur"
    assert main(["data", "curate", "--input", str(inp), "--out", str(cur), "--recipe", "dedup", "--workers", "1"]) == 0
    mine = _foreign(tmp_path / "mine")
    argv = ["tokenizer", "train", "--input", str(cur), "--out", str(mine), "tokenizer.vocab_size=300"]
    _refused(argv, capsys, mine, "not made by gptlab")
    assert main(argv + ["--force"]) == 0
    assert owner_of(mine) == "tokenizer" and (mine / "notes.txt").read_text() == "mine"
    # Another stage's folder: curate's output is not the tokenizer's to replace.
    _refused(["tokenizer", "train", "--input", str(cur), "--out", str(cur)], capsys, cur, "curate stage")
    assert read_manifest(cur)["stage"] == "curate"
    # Pack: the same two refusals, and --force.
    pack = ["data", "pack", "--input", str(cur), "--tokenizer", str(mine), "pack.seq_len=32"]
    _refused(pack + ["--out", str(cur)], capsys, cur, "curate stage")
    other = _foreign(tmp_path / "other")
    _refused(pack + ["--out", str(other)], capsys, other, "not made by gptlab")
    assert main(pack + ["--out", str(other), "--force"]) == 0
    assert read_manifest(other)["stage"] == "pack" and (other / "notes.txt").exists()


def test_curate_pointed_at_a_run_folder_refuses(tmp_path, texts, capsys):
    inp = _jsonl(tmp_path / "in.jsonl", [{"text": t} for t in texts])
    run = tmp_path / "run"
    (run / "train").mkdir(parents=True)
    (run / "train" / "ckpt.bin").write_bytes(b"weights")
    (run / MARKER).write_text(RUN + "\n")
    _refused(["data", "curate", "--input", str(inp), "--out", str(run)], capsys, run, "run folder")
    assert (run / "train" / "ckpt.bin").read_bytes() == b"weights" and not (run / "work").exists()


def test_harvest_refuses_before_doing_any_work(tmp_path, capsys):
    mine = _foreign(tmp_path / "mine")
    _refused(["data", "harvest", "--out", str(mine), "data.sources=['stdlib-code']"], capsys, mine)
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def test_eval_refuses_a_checkpoint_folder_and_a_foreign_one(tmp_path, texts, capsys):
    tok = train_tokenizer(texts, vocab_size=300)
    tok.save(str(tmp_path / "tokenizer.json"))
    cfg = RunConfig()
    cfg.model = load_config(None, ["model.vocab_size=320", "model.block_size=16", "model.n_layer=1",
                                   "model.n_head=2", "model.n_embd=32"]).model
    ck = save_checkpoint(tmp_path / "ckpts", 0, GPT(cfg.model).state_dict(), None, to_dict(cfg),
                         tokenizer_file=tmp_path / "tokenizer.json")
    held = tmp_path / "held" / "heldout.jsonl.zst"
    write_shard(held, [Document(id=str(i), text=t[:200], source="s", domain="d") for i, t in enumerate(texts[:3])])
    argv = ["eval", "--checkpoint", str(ck), "--heldout", str(held), "eval.device=cpu", "eval.precision=fp32"]
    _refused(argv + ["--out", str(ck)], capsys, ck, "checkpoint stage")
    assert read_manifest(ck)["stage"] == "checkpoint"
    mine = _foreign(tmp_path / "mine")
    _refused(argv + ["--out", str(mine)], capsys, mine, "not made by gptlab")
    assert main(argv + ["--out", str(mine), "--force"]) == 0
    assert read_manifest(mine)["stage"] == "eval" and (mine / "notes.txt").exists()


def test_bakeoff_refuses_a_foreign_folder_and_force_writes_there(tmp_path, capsys):
    rows = [{"text": f"{w} {w} {i}", "label": lab} for i in range(6) for w, lab in (("good", "pos"), ("bad", "neg"))]
    train, test = _jsonl(tmp_path / "train.jsonl", rows), _jsonl(tmp_path / "test.jsonl", rows[:4])
    mine = _foreign(tmp_path / "mine")
    argv = ["advise", "bakeoff", "--train", str(train), "--test", str(test), "--out", str(mine)]
    _refused(argv, capsys, mine)
    assert main(argv + ["--force"]) == 0
    assert (mine / "bakeoff.json").exists() and (mine / "notes.txt").read_text() == "mine"


def test_demo_refuses_a_non_empty_folder_that_is_not_a_run(tmp_path, capsys):
    mine = _foreign(tmp_path / "mine")
    _refused(["demo", "--size", "tiny", "--out", str(mine)], capsys, mine, "not a gptlab run")
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    _claim_run(mine, force=True)            # what `--force` does before the stages run
    assert owner_of(mine) == RUN and (mine / "notes.txt").read_text() == "mine"
    _claim_run(mine, force=False)           # a run folder: accepted on the next run


def test_demo_accepts_an_older_run_folder(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text("[data]\nseed = 1\n[train]\nmax_steps = 3\n")
    (run / "report.html").write_text("<html></html>")
    _claim_run(run, force=False)
    assert owner_of(run) == RUN


def test_demo_refuses_a_stage_folder(tmp_path, capsys):
    ev = tmp_path / "eval"
    (ev / "tasks").mkdir(parents=True)
    (ev / "tasks" / "manifest.json").write_text(json.dumps({"stage": "eval-tasks", "complete": True}))
    (ev / "eval.json").write_text("{}")
    (ev / MARKER).write_text("eval\n")
    _refused(["demo", "--size", "tiny", "--out", str(ev)], capsys, ev, "eval stage")
    assert owner_of(ev) == "eval"
