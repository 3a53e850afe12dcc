from __future__ import annotations

import gzip
import json

import pytest
import zstandard
from data_corpora import write_jsonl, write_warc

from gptlab.data import readers
from gptlab.data.documents import Document, read_shard, write_shard
from gptlab.data.readers import Quarantined, discover, read_input, write_parquet


def _read_all(path, max_bytes=10**7):
    docs, bad = [], []
    for shard in discover([path]):
        for r in read_input(shard, max_bytes):
            (bad if isinstance(r, Quarantined) else docs).append(r)
    return docs, bad


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".jsonl.zst"])
def test_jsonl_plain_gz_zst(tmp_path, suffix):
    raw = "".join(json.dumps({"text": f"document number {i}", "url": f"http://x/{i}"}) + "\n" for i in range(5)).encode()
    data = {".jsonl": raw, ".jsonl.gz": gzip.compress(raw), ".jsonl.zst": zstandard.ZstdCompressor().compress(raw)}[suffix]
    p = tmp_path / f"web{suffix}"
    p.write_bytes(data)
    docs, bad = _read_all(p)
    assert [d.text for d in docs] == [f"document number {i}" for i in range(5)]
    assert bad == []
    assert docs[0].source == "web" and docs[0].meta["url"] == "http://x/0" and docs[0].id == "web:1"


def test_parquet_roundtrip_and_text_folder(tmp_path):
    docs = [Document(id=f"d{i}", text=f"text {i}", source="s", domain="dom", meta={"k": i}) for i in range(3)]
    write_parquet(tmp_path / "a" / "part.parquet", docs)
    (tmp_path / "a" / "notes").mkdir()
    (tmp_path / "a" / "notes" / "one.txt").write_text("a plain text file")
    (tmp_path / "a" / "notes" / "bad.txt").write_bytes(b"\xff\xfe not utf-8")
    got, bad = _read_all(tmp_path / "a")
    assert [(d.id, d.text, d.meta.get("k")) for d in got[:3]] == [("d0", "text 0", 0), ("d1", "text 1", 1), ("d2", "text 2", 2)]
    assert got[3].text == "a plain text file" and got[3].source == "notes"
    assert [q.reason for q in bad] == ["invalid-utf8"]


def test_bad_jsonl_lines_are_quarantined_with_reasons(tmp_path):
    p = tmp_path / "bad.jsonl"
    lines = [json.dumps({"text": "fine document"}).encode(), b"{not json", b'{"text": "caf\xe9 latin-1"}',
             json.dumps({"text": "   "}).encode(), json.dumps({"text": "x" * 5000}).encode(),
             json.dumps({"text": "bin\x00ary\x01\x02\x03junk"}).encode(), json.dumps({"no_text": 1}).encode()]
    p.write_bytes(b"\n".join(lines) + b"\n")
    docs, bad = _read_all(p, max_bytes=1000)
    assert [d.text for d in docs] == ["fine document"]
    assert [q.reason for q in bad] == ["malformed-json", "invalid-utf8", "empty-document", "oversized-document",
                                       "binary-content", "no-text-field"]
    assert bad[0].where.endswith("bad.jsonl:2")


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl.zst"])
def test_truncated_compressed_file_is_quarantined(tmp_path, suffix):
    raw = "".join(json.dumps({"text": f"document {i} " * 20}) + "\n" for i in range(3000)).encode()
    data = gzip.compress(raw) if suffix.endswith("gz") else zstandard.ZstdCompressor().compress(raw)
    p = tmp_path / f"cut{suffix}"
    p.write_bytes(data[: len(data) // 2])
    docs, bad = _read_all(p)
    assert 0 < len(docs) < 3000
    assert bad[-1].reason == "truncated-file"


def test_warc_html_main_text_and_wet(tmp_path, prose):
    pages = [(f"http://example.org/{i}", prose[i]) for i in range(3)]
    docs, bad = _read_all(write_warc(tmp_path / "crawl.warc.gz", pages))
    assert bad == [] and len(docs) == 3
    assert docs[0].meta["url"] == "http://example.org/0"
    # main text, without the navigation and footer boilerplate
    assert prose[0].split("\n")[-1][:60] in docs[0].text
    assert "About" not in docs[0].text and "Copyright footer" not in docs[0].text
    wet_docs, _ = _read_all(write_warc(tmp_path / "crawl.warc.wet.gz", pages, wet=True))
    assert [d.text for d in wet_docs] == [p for _, p in pages]


def test_truncated_warc_is_quarantined(tmp_path, prose):
    p = write_warc(tmp_path / "full.warc.gz", [(f"http://e.org/{i}", prose[i % len(prose)]) for i in range(12)])
    data = p.read_bytes()
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    docs, bad = _read_all(cut)
    assert 0 < len(docs) < 12
    assert [q.reason for q in bad] == ["truncated-warc"]


def test_discover_reports_missing_and_unknown_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="input not found"):
        discover([tmp_path / "nope.jsonl"])
    (tmp_path / "x.bin").write_bytes(b"\0")
    with pytest.raises(FileNotFoundError, match="unknown input format"):
        discover([tmp_path / "x.bin"])
    write_jsonl(tmp_path / "d.jsonl", [{"text": "a"}])
    # x.bin is no input format: counted (one unsupported-format record), not skipped silently
    assert [s.kind for s in discover([tmp_path])] == ["jsonl", "unsupported"]


def test_lone_surrogate_escapes_are_quarantined_and_shards_stay_readable(tmp_path):
    """JSON can escape half a surrogate pair; such a record used to become a document whose
    shard (kept, dropped or quarantine) could not be read back as UTF-8."""
    p = tmp_path / "s.jsonl"
    p.write_text('{"text": "fine \\ud83d\\ude00 document"}\n{"text": "half \\ud800 pair"}\n'
                 '{"text": "ok", "id": "\\udfff"}\n{"text": "ok", "meta": {"k": "\\ud83d"}}\n')
    docs, bad = _read_all(p)
    assert [d.text for d in docs] == ["fine \U0001F600 document"]
    assert [q.reason for q in bad] == ["invalid-unicode"] * 3
    out = tmp_path / "q.jsonl.zst"
    write_shard(out, [Document(id=q.where, text=q.sample, source=q.source, domain=q.source) for q in bad] + docs)
    assert len(list(read_shard(out))) == 4


def _wet_record(n: int, text: bytes, wrong_length: int = 0) -> bytes:
    head = (f"WARC/1.0\r\nWARC-Type: conversion\r\nWARC-Record-ID: <urn:uuid:{n}>\r\n"
            f"WARC-Target-URI: http://example.com/{n}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(text) + wrong_length}\r\n\r\n")
    return head.encode() + text + b"\r\n\r\n"


def test_a_wrong_warc_content_length_is_one_log_line_not_warcio_noise(tmp_path, capsys, monkeypatch):
    logged = []
    monkeypatch.setattr(readers, "log", logged.append)
    p = tmp_path / "x.wet"
    p.write_bytes(_wet_record(1, b"first page of plain text", -5) + _wet_record(2, b"second page of plain text"))
    docs, bad = _read_all(p)
    assert len(docs) + len(bad) >= 1
    assert "Content-Length is invalid" not in capsys.readouterr().err     # warcio's raw warning
    assert len(logged) == 1 and "wrong Content-Length" in logged[0] and "x.wet" in logged[0]


def test_a_json_integer_too_long_to_convert_is_malformed_json(tmp_path):
    p = tmp_path / "big.jsonl"
    p.write_text('{"text": "fine document"}\n{"text": "x", "n": ' + "9" * 5000 + '}\n{"text": "also fine"}\n')
    docs, bad = _read_all(p)
    assert [d.text for d in docs] == ["fine document", "also fine"]
    assert [(q.reason, q.where.endswith("big.jsonl:2")) for q in bad] == [("malformed-json", True)]
