"""Corpus builders for the data tests: WARC/WET files built with warcio, JSONL, and a
corpus of random-word documents with planted near-duplicates."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np


def write_warc(path: Path, pages: list[tuple[str, str]], wet: bool = False) -> Path:
    """A WARC of (url, body) pages: HTML ``response`` records, or WET ``conversion`` records."""
    from warcio.statusandheaders import StatusAndHeaders  # noqa: PLC0415  (optional extra (gptlab[data]): WARC/WET reading)
    from warcio.warcwriter import WARCWriter  # noqa: PLC0415  (optional extra (gptlab[data]): WARC/WET reading)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        w = WARCWriter(f, gzip=str(path).endswith(".gz"))
        for url, body in pages:
            if wet:
                rec = w.create_warc_record(url, "conversion", payload=io.BytesIO(body.encode()),
                                           warc_content_type="text/plain")
            else:
                paras = "".join(f"<p>{line}</p>" for line in body.split("\n") if line.strip())
                html = (f"<html><head><title>t</title></head><body><nav><a href='/'>Home</a> | "
                        f"<a href='/x'>About</a></nav><article>{paras}</article>"
                        f"<footer>Copyright footer</footer></body></html>").encode()
                http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
                rec = w.create_warc_record(url, "response", payload=io.BytesIO(html), http_headers=http)
            w.write_record(rec)
    return path


def write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def planted_corpus(seed: int = 0, n_groups: int = 60, n_words: int = 300):
    """Random-word documents with planted variants. Returns (texts, word lists)."""
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(20_000)]
    texts: list[list[str]] = []
    for g in range(n_groups):
        base = [vocab[i] for i in rng.integers(0, len(vocab), n_words)]
        texts.append(base)
        # near copies (1-4 edits: Jaccard >= ~0.85) and far variants (15-40 edits: Jaccard < 0.5)
        for edits in (int(rng.integers(1, 5)), int(rng.integers(1, 5)), int(rng.integers(15, 40))):
            v = list(base)
            for pos in rng.choice(n_words, edits, replace=False):
                v[pos] = vocab[int(rng.integers(0, len(vocab)))]
            texts.append(v)
    return [" ".join(t) for t in texts]


def shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    w = text.lower().split()
    return {tuple(w[i:i + n]) for i in range(max(1, len(w) - n + 1))}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / max(1, len(a | b))
