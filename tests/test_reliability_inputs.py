"""Reliability of curation inputs: every input record is accounted for (kept, dropped or
quarantined with a reason), odd files are counted and named, and bad settings are one line."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gptlab import cli
from gptlab.config import load_config
from gptlab.data.curate import run_curate
from gptlab.data.documents import read_shard, shard_paths
from gptlab.data.readers import InputShard, Quarantined, read_jsonl
from gptlab.errors import UserError
from gptlab.manifest import read_manifest
from gptlab.sources import harvest as hv
from gptlab.sources.candidates import Candidate, HarvestStats

TEXTS = [f"Document number {i} talks about {w} and the many ways that {w} differs from everything else."
         for i, w in enumerate(["rivers", "mountains", "libraries", "engines", "gardens", "orchestras"])]


def _cfg(*overrides):
    return load_config(None, ["data.docs_per_shard=50", *overrides]).data


def _jsonl(path: Path, texts: list[str], bom: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(json.dumps({"text": t}) + "\n" for t in texts).encode()
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + body)
    return path


def _reconciles(s: dict) -> None:
    assert s["in_docs"] == s["kept_docs"] + s["dropped_docs"] + s["quarantined_docs"]


# ----------------------------------------------------------------------------- 3: deep nesting

def test_a_deeply_nested_line_is_quarantined_not_fatal(tmp_path):
    p = tmp_path / "deep.jsonl"
    p.write_bytes(b"[" * 100_000 + b"\n" + json.dumps({"text": "a fine document"}).encode() + b"\n")
    recs = list(read_jsonl(InputShard(str(p), "jsonl", "deep"), 10_000))
    assert [r.reason for r in recs if isinstance(r, Quarantined)] == ["malformed-json"]
    assert [r.text for r in recs if not isinstance(r, Quarantined)] == ["a fine document"]


# ----------------------------------------------------------------------------- 5: odd inputs

def test_a_bom_does_not_make_line_one_malformed(tmp_path):
    p = _jsonl(tmp_path / "bom.jsonl", TEXTS[:2], bom=True)
    recs = list(read_jsonl(InputShard(str(p), "jsonl", "bom"), 10_000))
    assert [getattr(r, "text", None) for r in recs] == TEXTS[:2]


def test_a_binary_file_is_one_quarantine_record(tmp_path):
    p = tmp_path / "random.jsonl"
    p.write_bytes(os.urandom(200_000))
    recs = list(read_jsonl(InputShard(str(p), "jsonl", "random"), 10_000))
    assert [r.reason for r in recs] == ["binary-file"]


def test_unsupported_and_empty_files_are_counted_and_named(tmp_path, caplog):
    inp = tmp_path / "in"
    _jsonl(inp / "good.jsonl", TEXTS)
    _jsonl(inp / "bom.jsonl", TEXTS[:1], bom=True)
    (inp / "table.csv").write_text("a,b\n1,2\n")
    (inp / "more.jsonl.bz2").write_bytes(b"BZh91AY&SY")
    (inp / "empty.jsonl").write_bytes(b"")
    (inp / "random.jsonl").write_bytes(os.urandom(50_000))
    s = run_curate(_cfg(), [inp], tmp_path / "out", workers=1, recipe="dedup")
    _reconciles(s)
    assert s["funnel"]["quarantined"] == {"unsupported-format": 2, "binary-file": 1}
    assert s["in_docs"] == len(TEXTS) + 1 + 3
    notices = " ".join(s["input_notices"])
    assert "table.csv" in notices and "more.jsonl.bz2" in notices and "empty.jsonl" in notices
    named = {d.meta["where"] for p in shard_paths(tmp_path / "out" / "quarantine") for d in read_shard(p)}
    assert {Path(w).name for w in named} == {"table.csv", "more.jsonl.bz2", "random.jsonl"}


def test_harvest_quarantines_empty_texts_instead_of_writing_them(tmp_path, monkeypatch):
    for i in range(3):
        (tmp_path / f"f{i}.txt").write_text("" if i else "real words here")
    (tmp_path / "blank.txt").write_text("   \n\n")
    cands = [Candidate(p, p.name, "docs", "t") for p in sorted(tmp_path.glob("*.txt"))]
    monkeypatch.setitem(hv.HARVESTERS, "fake", lambda: iter(cands))
    stats = HarvestStats()
    docs = list(hv.harvest_source("fake", 100, 10**6, 10**6, stats))
    assert [d.text for d in docs] == ["real words here"]
    assert stats.quarantined["empty-text"] == 3


# ----------------------------------------------------------------------------- 10: validation

@pytest.mark.parametrize("workers", ["0", "-3"])
def test_curate_refuses_nonpositive_workers(tmp_path, capsys, workers):
    _jsonl(tmp_path / "in" / "a.jsonl", TEXTS)
    code = cli.main(["data", "curate", "--input", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                     "--workers", workers])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "--workers" in err
    assert not (tmp_path / "out").exists()


def test_a_missing_model_names_the_step(tmp_path):
    _jsonl(tmp_path / "in" / "a.jsonl", TEXTS)
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[[steps]]\ntype = "normalize"\n\n[[steps]]\ntype = "classifier"\n'
                      f'model = "{tmp_path / "nowhere"}"\n')
    with pytest.raises(UserError, match="recipe step classifier"):
        run_curate(_cfg(), [tmp_path / "in"], tmp_path / "out", workers=1, recipe=str(recipe))


# ----------------------------------------------------------------------------- 11: stale work/

def test_a_work_folder_left_by_a_kill_after_the_manifest_is_removed_on_rerun(tmp_path):
    _jsonl(tmp_path / "in" / "a.jsonl", TEXTS)
    out = tmp_path / "out"
    first = run_curate(_cfg(), [tmp_path / "in"], out, workers=1, recipe="dedup")
    assert not (out / "work").exists()
    # What a kill between the manifest and the clean-up leaves: the work folder of this very run.
    (out / "work" / "seg0").mkdir(parents=True)
    (out / "work" / "key").write_text(read_manifest(out)["key"])
    (out / "work" / "seg0" / "00000.jsonl.zst").write_bytes(b"partial")
    again = run_curate(_cfg(), [tmp_path / "in"], out, workers=1, recipe="dedup")
    assert again == first
    assert not (out / "work").exists()
