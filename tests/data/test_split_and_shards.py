from collections import Counter

import pytest
import zstandard

from gptlab.data.curate import split_heldout
from gptlab.data.documents import Document, ShardFormatError, read_shard, write_shard


def doc(i, text, domain="docs", **meta):
    return Document(id=str(i), text=text, source="s", domain=domain, meta=dict(meta))


def test_heldout_split_keeps_groups_together():
    docs = [doc(f"{t}{c}", f"chapter {c} in {t}", domain="bible", group=f"g{c}") for c in range(40) for t in "ABCD"]
    docs += [doc(f"d{i}", "text", domain="docs") for i in range(50)]

    class C:
        eval_fraction, eval_max_docs_per_domain, seed = 0.1, 100, 1
    held = split_heldout([(d.id, d.domain, d.meta.get("group", d.id)) for d in docs], C)
    groups = {d.meta["group"] for d in docs if d.id in held and d.domain == "bible"}
    for g in groups:
        assert all(d.id in held for d in docs if d.meta.get("group") == g)
    assert {d.domain for d in docs if d.id in held} == {"bible", "docs"}


def test_malformed_lines_are_quarantined_not_lost(tmp_path):

    p = tmp_path / "s.jsonl.zst"
    write_shard(p, [doc(1, "ok")])
    raw = zstandard.ZstdDecompressor().decompress(p.read_bytes(), max_output_size=1 << 20)
    p.write_bytes(zstandard.ZstdCompressor().compress(raw + b"{not json\n" + b'{"id": 1}\n'))
    q = Counter()
    assert [d.id for d in read_shard(p, quarantine=q)] == ["1"]
    assert q == Counter({"malformed-line": 2})

    with pytest.raises(ShardFormatError, match=r"s.jsonl.zst:2: not a document"):
        list(read_shard(p))
