"""Curate as a Stage: it writes only into its own folder, keys on input content, and deletes
nothing it did not write."""
from __future__ import annotations

import os
import shutil

import pytest
from data_corpora import write_jsonl

from gptlab.config import load_config
from gptlab.data.curate import run_curate
from gptlab.data.documents import read_shard, shard_paths
from gptlab.errors import UserError
from gptlab.manifest import MARKER, RUN, atomic_write, read_manifest, write_manifest


def _data(*overrides):
    return load_config(None, ["data.docs_per_shard=50", *overrides]).data


def _curate(inputs, out, *overrides, **kw):
    return run_curate(_data(*overrides), inputs, out, workers=1, recipe="dedup", **kw)


@pytest.fixture
def rows(prose):
    return [{"text": t, "id": f"d{i}"} for i, t in enumerate(prose[:12])]


def _fake_run(run):
    """A run folder as `gptlab demo` leaves it: config, marker, stage subfolders."""
    (run / "train" / "checkpoints").mkdir(parents=True)
    (run / "train" / "checkpoints" / "weights.bin").write_bytes(b"precious")
    write_manifest(run / "train", stage="train", key="t", outputs=["checkpoints/weights.bin"])
    atomic_write(run / "config.toml", "[data]\n")
    atomic_write(run / MARKER, RUN + "\n")


def test_curate_into_a_run_folder_is_refused_and_deletes_nothing(tmp_path, rows):
    write_jsonl(tmp_path / "in.jsonl", rows)
    run = tmp_path / "run"
    _fake_run(run)
    with pytest.raises(UserError, match="run folder") as e:
        _curate([tmp_path / "in.jsonl"], run)
    assert "--force" in str(e.value) and "\n" not in str(e.value)
    assert (run / "train" / "checkpoints" / "weights.bin").read_bytes() == b"precious"
    assert sorted(p.name for p in run.iterdir()) == sorted([MARKER, "config.toml", "train"])
    # An older run without the marker: its config.toml is not a stage's output either.
    (run / MARKER).unlink()
    with pytest.raises(UserError, match="not made by gptlab"):
        _curate([tmp_path / "in.jsonl"], run)
    assert read_manifest(run / "train")["stage"] == "train"


def test_curate_refuses_another_stages_folder(tmp_path, rows):
    write_jsonl(tmp_path / "in.jsonl", rows)
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "index.json").write_text("{}")
    write_manifest(pack, stage="pack", key="p", outputs=["index.json"])
    with pytest.raises(UserError, match="pack stage"):
        _curate([tmp_path / "in.jsonl"], pack)
    assert read_manifest(pack)["stage"] == "pack"


def test_the_key_is_the_inputs_content_not_their_path_or_mtime(tmp_path, rows):
    a = tmp_path / "a" / "in.jsonl"
    write_jsonl(a, rows)
    out = tmp_path / "out"
    _curate([a], out)
    before = read_manifest(out)["finished_at"]
    os.utime(a, ns=(1, 1))                               # touched: same content
    b = tmp_path / "b" / "in.jsonl"
    b.parent.mkdir()
    shutil.copy(a, b)                                    # moved: same content and name
    _curate([b], out)
    assert read_manifest(out)["finished_at"] == before
    write_jsonl(b, rows[:-1])                            # new content: rerun
    s = _curate([b], out)
    assert read_manifest(out)["finished_at"] != before and s["in_docs"] == len(rows) - 1


def test_a_rerun_removes_only_curates_own_stale_outputs(tmp_path, rows):
    write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out"
    _curate([tmp_path / "in.jsonl"], out, "data.docs_per_shard=2")
    assert len(shard_paths(out / "train")) > 1
    (out / "train" / "my-notes.txt").write_text("mine")
    s = _curate([tmp_path / "in.jsonl"], out, "data.docs_per_shard=50")
    shards = shard_paths(out / "train")
    assert [p.name for p in shards] == ["train-00000.jsonl.zst"]   # no stale shard for the tokenizer to read
    assert sum(1 for p in shards for _ in read_shard(p)) == s["train_docs"]
    assert (out / "train" / "my-notes.txt").read_text() == "mine"


def test_forced_into_a_foreign_folder_curate_deletes_nothing_of_its_owner(tmp_path, rows):
    write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "mine"
    (out / "train").mkdir(parents=True)
    old = out / "train" / "train-00007.jsonl.zst"       # named like curate's, but not curate's
    old.write_bytes(b"not curate's")
    with pytest.raises(UserError, match="not made by gptlab"):
        _curate([tmp_path / "in.jsonl"], out)
    s = _curate([tmp_path / "in.jsonl"], out, force=True)
    assert s["in_docs"] == len(rows)
    assert old.read_bytes() == b"not curate's"
    assert read_manifest(out)["stage"] == "curate"


def test_forced_curate_will_not_take_over_a_work_folder_it_did_not_write(tmp_path, rows):
    write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "mine"
    (out / "work").mkdir(parents=True)
    (out / "work" / "thesis.tex").write_text("years of it")
    with pytest.raises(UserError, match="work"):
        _curate([tmp_path / "in.jsonl"], out, force=True)
    assert (out / "work" / "thesis.tex").read_text() == "years of it"
