"""`run_eval` as a Stage: it recomputes exactly when what its numbers depend on changes."""
from __future__ import annotations

import shutil

import pytest
import torch
from rich.progress import Progress

from gptlab.checkpoint import save_checkpoint
from gptlab.config import RunConfig, load_config, to_dict
from gptlab.data.documents import Document, write_shard
from gptlab.eval import bpb
from gptlab.eval.bpb import run_eval
from gptlab.eval.config import EvalConfig
from gptlab.manifest import read_manifest
from gptlab.model import GPT
from gptlab.tokenizer import train_tokenizer

TEXTS = ["the cat sat on the mat", "a dog ran to the door", "in the beginning was the word",
         "and the evening and the morning were the first day"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny random GPT with a real byte-level BPE, saved as a gptlab checkpoint."""
    root = tmp_path_factory.mktemp("ck")
    tok = train_tokenizer(TEXTS * 20, vocab_size=300, min_frequency=1)
    tok.save(str(root / "tokenizer.json"))
    cfg = RunConfig()
    cfg.model = load_config(None, ["model.vocab_size=320", "model.block_size=16", "model.n_layer=1",
                                   "model.n_head=2", "model.n_embd=32"]).model
    torch.manual_seed(0)
    return save_checkpoint(root / "ckpts", 0, GPT(cfg.model).state_dict(), None, to_dict(cfg),
                           tokenizer_file=root / "tokenizer.json")


def _heldout(folder, texts):
    write_shard(folder / "heldout.jsonl.zst",
                [Document(id=str(i), text=t, source="s", domain="d") for i, t in enumerate(texts)])
    return folder


def _eval(precision, heldout, checkpoint, out):
    return run_eval(EvalConfig(device="cpu", precision=precision), heldout, checkpoint, None, out)


def _finished(out):
    return read_manifest(out)["finished_at"]


def test_precision_change_recomputes_and_an_unchanged_eval_skips(tmp_path, checkpoint, one_thread):
    held, out = _heldout(tmp_path / "h", TEXTS), tmp_path / "ev"
    r32 = _eval("fp32", held, checkpoint, out)
    assert r32["precision"] == "fp32" and r32["overall"]["docs"] == len(TEXTS)
    first = _finished(out)
    assert _eval("fp32", held, checkpoint, out) == r32 and _finished(out) == first
    r16 = _eval("bf16", held, checkpoint, out)
    assert r16["precision"] == "bf16" and _finished(out) != first
    assert read_manifest(out)["summary"]["precision"] == "bf16"


def test_held_out_content_not_its_name_decides(tmp_path, checkpoint, one_thread):
    held, out = _heldout(tmp_path / "h", TEXTS), tmp_path / "ev"
    _eval("fp32", held, checkpoint, out)
    first = _finished(out)
    moved = tmp_path / "elsewhere"
    shutil.copytree(held, moved)                       # same bytes, another path: skipped
    _eval("fp32", moved, checkpoint, out)
    assert _finished(out) == first
    _heldout(moved, TEXTS[:2])                         # same file name, new content: recomputed
    r = _eval("fp32", moved, checkpoint, out)
    assert r["overall"]["docs"] == 2 and _finished(out) != first


def test_the_eval_bar_has_the_number_of_batches_as_its_total(checkpoint, tmp_path, monkeypatch):
    made = []
    monkeypatch.setattr(bpb, "make_progress", lambda: made.append(Progress(disable=True)) or made[-1])
    (tmp_path / "h").mkdir()
    run_eval(EvalConfig(batch_size=2), _heldout(tmp_path / "h", TEXTS * 3), checkpoint, None, tmp_path / "eval")
    (task,) = made[0].tasks
    assert task.total is not None and task.total > 1 and task.completed == task.total   # not "0/1"
