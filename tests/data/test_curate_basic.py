from gptlab.data.curate import MaxSymbolRatio, MinLength, Normalize, TagStats, _split_heldout, dedup_key
from gptlab.data.documents import Document, read_shard, write_shard


def doc(i, text, domain="docs", **meta):
    return Document(id=str(i), text=text, source="s", domain=domain, meta=dict(meta))


def test_normalize_and_tags():
    d = doc(1, "Cafe\u0301  \r\nline two   \r\n")
    assert Normalize()(d) is None
    assert d.text == "Caf\u00e9\nline two"
    TagStats()(d)
    assert d.meta["chars"] == len(d.text)
    assert 0.8 < d.meta["alpha_ratio"] <= 1.0
    assert Normalize()(doc(2, "  \n\t ")) == "empty"


def test_filters_decide_from_tags_only():
    d = doc(1, "x")
    d.meta.update(chars=10, symbol_ratio=0.9)
    assert MinLength(20)(d) == "too-short"
    assert MinLength(5)(d) is None
    assert MaxSymbolRatio(0.5)(d) == "too-many-symbols"


def test_dedup_key_ignores_case_and_whitespace():
    assert dedup_key("MIT License\n\nCopyright") == dedup_key("mit   license copyright")
    assert dedup_key("a b") != dedup_key("a c")


def test_heldout_split_keeps_groups_together():
    docs = [doc(f"{t}{c}", f"chapter {c} in {t}", domain="bible", group=f"g{c}") for c in range(40) for t in "ABCD"]
    docs += [doc(f"d{i}", "text", domain="docs") for i in range(50)]

    class C:
        eval_fraction, eval_max_docs_per_domain, seed = 0.1, 100, 1
    held = _split_heldout(docs, C)
    groups = {d.meta["group"] for d in docs if d.id in held and d.domain == "bible"}
    for g in groups:
        assert all(d.id in held for d in docs if d.meta.get("group") == g)
    assert {d.domain for d in docs if d.id in held} == {"bible", "docs"}


def test_malformed_lines_are_quarantined_not_lost(tmp_path):
    from collections import Counter

    import zstandard
    p = tmp_path / "s.jsonl.zst"
    write_shard(p, [doc(1, "ok")])
    raw = zstandard.ZstdDecompressor().decompress(p.read_bytes(), max_output_size=1 << 20)
    p.write_bytes(zstandard.ZstdCompressor().compress(raw + b"{not json\n" + b'{"id": 1}\n'))
    q = Counter()
    assert [d.id for d in read_shard(p, quarantine=q)] == ["1"]
    assert q == Counter({"malformed-line": 2})
    import pytest

    from gptlab.data.documents import ShardFormatError
    with pytest.raises(ShardFormatError, match=r"s.jsonl.zst:2: not a document"):
        list(read_shard(p))
