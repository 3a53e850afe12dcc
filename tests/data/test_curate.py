from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
import zstandard
from data_corpora import planted_corpus, write_jsonl, write_warc

from gptlab.cli import main
from gptlab.config import load_config
from gptlab.data import curate
from gptlab.data.curate import run_curate
from gptlab.data.documents import read_shard, shard_paths
from gptlab.manifest import read_manifest


def _cfg(*overrides):
    return load_config(None, ["data.docs_per_shard=50", *overrides])


def _reconciles(s):
    f = s["funnel"]
    assert s["in_docs"] == s["kept_docs"] + s["dropped_docs"] + s["quarantined_docs"]
    for src, c in f["sources"].items():
        assert c.get("in", 0) == c.get("kept", 0) + c.get("dropped", 0) + c.get("quarantined", 0), src
    steps = f["steps"]
    for a, b in zip(steps, steps[1:]):
        assert a["out_docs"] == b["in_docs"], (a["name"], b["name"])  # nothing vanishes between steps
    for st in steps:
        assert st["in_docs"] == st["out_docs"] + sum(st["dropped"].values()), st["name"]
        assert sum(c["in_docs"] for c in st["sources"].values()) == st["in_docs"]


def test_default_recipe_on_a_warc_reconciles_and_quarantines_a_cut_file(tmp_path, prose):
    pages = [(f"http://site{i}.org/page", prose[i]) for i in range(20)]
    pages += [("http://spam.org/", "Buy now.\n" * 40), ("http://mirror.org/", prose[0])]  # junk, exact copy
    good = write_warc(tmp_path / "in" / "a.warc.gz", pages)
    cut = tmp_path / "in" / "b.warc.gz"
    write_warc(cut, pages[:10])
    cut.write_bytes(cut.read_bytes()[: int(cut.stat().st_size * 0.5)])
    s = run_curate(_cfg("data.keep_dropped=true").data, [good, cut], tmp_path / "out", workers=2, recipe="default")
    _reconciles(s)
    names = [st["name"] for st in s["funnel"]["steps"]]
    assert names == ["normalize", "langid", "gopher_quality", "gopher_repetition", "c4", "classifier",
                     "url_dedup", "exact_dedup", "minhash"]
    assert s["quarantined_docs"] == 1 and s["funnel"]["quarantined"] == {"truncated-warc": 1}
    assert s["classifier"]["classifier"]["skipped"].startswith("classifier skipped")  # no reference set given
    # the cut archive gave some pages before its truncation was quarantined
    assert s["in_docs"] > 22 + 1
    dropped = [(d.meta["url"], d.meta["drop_reason"]) for p in shard_paths(tmp_path / "out" / "dropped") for d in read_shard(p)]
    rules = {"langid:language", "langid:language_score", "gopher_quality:gopher_min_words",
             "gopher_repetition:gopher_dup_lines", "gopher_repetition:gopher_dup_line_chars"}
    assert dict(dropped)["http://spam.org/"] in rules
    assert len(dropped) == s["dropped_docs"]
    m = read_manifest(tmp_path / "out")
    assert m["complete"] and any(k.startswith("train/") for k in m["outputs"])


def test_bad_input_is_quarantined_counted_and_kept_for_inspection(tmp_path, prose):
    short = [t[:1500] for t in prose[:6]]
    rows = [{"text": t, "id": f"ok{i}"} for i, t in enumerate(short)]
    rows += ["{broken json", {"text": ""}, {"text": "junk\x00\x01\x02" * 10}, {"text": "z" * 3000}]
    write_jsonl(tmp_path / "in" / "mixed.jsonl", rows)
    raw = b"".join(json.dumps({"text": short[i % 6] + f" copy {i}"}).encode() + b"\n" for i in range(400))
    blob = zstandard.ZstdCompressor().compress(raw)
    (tmp_path / "in" / "cut.jsonl.zst").write_bytes(blob[: len(blob) // 2])
    (tmp_path / "in" / "latin1.jsonl").write_bytes(b'{"text": "caf\xe9"}\n')
    s = run_curate(_cfg("data.max_doc_bytes=2000", "data.keep_dropped=true").data, [tmp_path / "in"], tmp_path / "out",
                   workers=1, recipe="dedup")
    _reconciles(s)
    q = s["funnel"]["quarantined"]
    assert q == {"malformed-json": 1, "empty-document": 1, "binary-content": 1, "oversized-document": 1,
                 "truncated-file": 1, "invalid-utf8": 1}
    inspected = [d for p in shard_paths(tmp_path / "out" / "quarantine") for d in read_shard(p)]
    assert sorted(d.meta["reason"] for d in inspected) == sorted(k for k, v in q.items() for _ in range(v))
    dropped = [d for p in shard_paths(tmp_path / "out" / "dropped") for d in read_shard(p)]
    assert len(dropped) == s["dropped_docs"] and all(d.meta["drop_reason"].endswith("duplicate") for d in dropped)


def test_dedup_recipe_from_the_cli_removes_exact_and_near_copies(tmp_path):
    texts = planted_corpus(seed=3, n_groups=20)
    rows = [{"text": t, "id": f"d{i}"} for i, t in enumerate(texts)] + [{"text": texts[0].upper(), "id": "copy"}]
    write_jsonl(tmp_path / "c.jsonl", rows)
    assert main(["data", "curate", "--input", str(tmp_path / "c.jsonl"), "--out", str(tmp_path / "o"),
                 "--recipe", "dedup", "--workers", "1"]) == 0
    s = read_manifest(tmp_path / "o")["summary"]
    dd = {st["name"]: st for st in s["funnel"]["steps"]}
    assert dd["exact_dedup"]["dropped"] == {"duplicate": 1}
    assert dd["minhash"]["dropped"]["duplicate"] >= 30  # two near copies planted per group
    assert s["dedup"]["minhash"]["samples"][0][0]["id"].startswith("d")


def test_cli_config_errors_are_one_line(tmp_path, capsys):
    write_jsonl(tmp_path / "c.jsonl", [{"text": "x"}])
    (tmp_path / "r.toml").write_text('[[steps]]\ntype = "langid"\nmin_score = 2.0\n')
    assert main(["data", "curate", "--input", str(tmp_path / "c.jsonl"), "--out", str(tmp_path / "o"),
                 "--recipe", str(tmp_path / "r.toml")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "steps[0] (langid).min_score: 2.0 is above the maximum 1.0" in err


def test_killed_run_resumes_with_unfinished_shards(tmp_path, monkeypatch, prose):
    for k in range(4):
        write_jsonl(tmp_path / "in" / f"part{k}.jsonl", [{"text": t, "id": f"{k}-{i}"} for i, t in enumerate(prose[k * 5:k * 5 + 5])])
    real, calls = curate.run_segment, []

    def flaky(task):
        calls.append((task.k, task.shard))
        if task.k == 0 and task.shard == 2 and len(calls) < 10:
            raise KeyboardInterrupt  # the run is killed while shard 2 is in flight
        return real(task)
    monkeypatch.setattr(curate, "run_segment", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_curate(_cfg().data, [tmp_path / "in"], tmp_path / "out", workers=1, recipe="dedup")
    assert not (tmp_path / "out" / "manifest.json").exists()
    calls.clear()
    monkeypatch.setattr(curate, "run_segment", lambda t: calls.append((t.k, t.shard, "done" if __import__("pathlib").Path(t.done).exists() else "run")) or real(t))
    s = run_curate(_cfg().data, [tmp_path / "in"], tmp_path / "out", workers=1, recipe="dedup")
    assert [c for c in calls if c[0] == 0] == [(0, 0, "done"), (0, 1, "done"), (0, 2, "run"), (0, 3, "run")]
    _reconciles(s)
    assert s["in_docs"] == 20 and not (tmp_path / "out" / "work").exists()
    # a complete stage is skipped on rerun
    calls.clear()
    run_curate(_cfg().data, [tmp_path / "in"], tmp_path / "out", workers=1, recipe="dedup")
    assert calls == []


def test_parquet_output(tmp_path, prose):
    write_jsonl(tmp_path / "a.jsonl", [{"text": t} for t in prose[:8]])
    run_curate(_cfg("data.write_parquet=true").data, [tmp_path / "a.jsonl"], tmp_path / "o", workers=1, recipe="dedup")
    zst = [d.text for p in shard_paths(tmp_path / "o" / "train") for d in read_shard(p)]
    pqt = [t for p in sorted((tmp_path / "o" / "train").glob("*.parquet")) for t in pq.read_table(p)["text"].to_pylist()]
    assert zst == pqt and len(zst) >= 6


@pytest.mark.slow
def test_embedded_demo_run_reports_funnel_clusters_and_reference_set(tiny_run):
    s = read_manifest(tiny_run / "curate")["summary"]
    _reconciles(s)
    assert s["recipe"]["name"] == "embedded"
    assert s["dedup"]["minhash"]["duplicates"] > 0  # Bible translations and license copies
    page = (tiny_run / "report.html").read_text()
    assert "Reference set (positives): input sources bible, stdlib-prose" in page
    assert "Sample cluster 1" in page and "reconciles" in page and "DOES NOT" not in page


def test_url_dedup_keeps_the_first_page_per_normalised_url(tmp_path, prose):
    rows = [{"text": prose[0], "url": "https://www.example.org/a/"}, {"text": prose[1], "url": "http://example.org/a#x"},
            {"text": prose[2], "url": "http://example.org/b"}, {"text": prose[3]}]
    write_jsonl(tmp_path / "u.jsonl", rows)
    s = run_curate(_cfg().data, [tmp_path / "u.jsonl"], tmp_path / "o", workers=1, recipe={"steps": [{"type": "url_dedup"}]})
    _reconciles(s)
    assert s["funnel"]["steps"][0]["dropped"] == {"duplicate": 1} and s["kept_docs"] == 3
    assert s["dedup"]["url_dedup"]["samples"][0][0]["snippet"] == " ".join(prose[0].split())[:160]
