"""Fault section 'inputs': property-based fuzzing of every reader and every per-document step.

hypothesis writes input files the way users' data goes wrong (invalid UTF-8, byte-order marks,
malformed and deeply nested JSON, huge lines, NUL bytes, empty and binary files; gzip, zstd,
Parquet and WARC files that are truncated or have flipped bits) and curates each one through
segment 0 of a recipe holding every per-document step, plus the MinHash map. A crash is an
exception escaping a reader or a step (the one-line InputError/UserError contract aside); the
accounting holds when every record read is kept, dropped or quarantined, and the shards written
say the same. A last check curates a folder of fuzzed files end to end.
"""
from __future__ import annotations

import gzip
import io
import json
import logging
import random
import shutil
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from gptlab.config import RunConfig
from gptlab.data.classifier import QualityModel
from gptlab.data.curate import SegmentTask, run_curate, run_segment
from gptlab.data.dedup import MinHasher, map_keys
from gptlab.data.documents import Document, read_shard
from gptlab.data.readers import Quarantined, discover, read_input
from gptlab.data.recipe import DOC_STEPS, GLOBAL_STEPS, StepSpec, load_recipe
from gptlab.errors import UserError
from gptlab.selftest.table import Context, Row

WORDS = ("the", "of", "and", "to", "with", "that", "have", "be", "river", "stone", "quiet", "morning", "city",
         "people", "walked", "slowly", "through", "garden", "light", "water", "history", "because", "small")
MAX_DOC_BYTES = 1 << 16   # small, so that huge lines are oversized documents


# ----------------------------------------------------------------------------- the run under test

def _tiny_classifier(folder: Path) -> Path:
    """A bound model for the classifier step: random weights over a few hashed features."""
    rng = np.random.default_rng(0)
    QualityModel(coef=rng.normal(size=1024).astype(np.float32), intercept=0.0, n_features=1024,
                 ngram_max=2, info={"positives": 0, "negatives": 0}).save(folder)
    return folder


def _specs() -> list[StepSpec]:
    """Every per-document step of the registry, with its default parameters (tag-mode copies of
    the costly ones run too: a tagged document goes on to the next step)."""
    out = []
    for name, cls in DOC_STEPS.items():
        out.append(StepSpec(name, name, cls.Params()))
    for name in ("basic", "gopher_quality", "c4"):
        p = DOC_STEPS[name].Params()
        p.mode = "tag"
        out.insert(0, StepSpec(name, f"{name}#tag", p))
    return out


@dataclass
class Tally:
    cases: int = 0
    crashes: int = 0
    held: int = 0
    missed: int = 0
    records: int = 0
    failures: list[str] = field(default_factory=list)

    def fail(self, what: str) -> None:
        if len(self.failures) < 5:
            self.failures.append(what)


def _one_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"


def _where(e: BaseException) -> str:
    tb = traceback.extract_tb(e.__traceback__)
    last = tb[-1] if tb else None
    return f" at {Path(last.filename).name}:{last.lineno}" if last else ""


def _plain_lines(data: bytes) -> int:
    """Non-blank lines, as a line-by-line reader of a plain file counts them."""
    return sum(1 for line in io.BytesIO(data) if line.strip())


def check_file(path: Path, work: Path, specs: list[StepSpec], model_dir: Path, tally: Tally,
               expect_lines: int | None = None) -> None:
    """Curate one input through segment 0 (every doc step + the MinHash map); count a crash or
    a broken account."""
    tally.cases += 1
    label = f"{path.name} ({path.stat().st_size if path.is_file() else 'folder'} bytes)"
    out = work / "out"
    if out.exists():
        shutil.rmtree(out)
    (out / "keys").mkdir(parents=True)
    try:
        shards = [s for s in discover([path]) if s.kind != "unsupported"]
        records = 0
        reasons: set[str] = set()
        for s in shards:
            for rec in read_input(s, MAX_DOC_BYTES):
                records += 1
                if isinstance(rec, Quarantined):
                    reasons.add(rec.reason)
        kept = dropped = quarantined = 0
        for i, s in enumerate(shards):
            mh = StepSpec("minhash", "minhash", _minhash_params())
            task = SegmentTask(k=0, shard=i, input=s, prev_docs=None, drops=None, drop_step=None, steps=specs,
                               global_step=mh, out_docs=str(out / f"docs-{i:05d}.jsonl.zst"),
                               keys_dir=str(out / "keys"), done=str(out / f"done-{i:05d}.json"),
                               model_dirs={"classifier": str(model_dir)}, keep_dropped=True,
                               max_doc_bytes=MAX_DOC_BYTES, want=[])
            res = run_segment(task)
            f = res["funnel"]
            n_in = sum(c.get("in", 0) for c in f["sources"].values())
            n_drop = sum(c.get("dropped", 0) for c in f["sources"].values())
            n_q = sum(f["quarantined"].values())
            on_disk = (sum(1 for _ in read_shard(task.out_docs)),
                       _count(out / f"dropped-{i:05d}.jsonl.zst"), _count(out / f"quarantine-{i:05d}.jsonl.zst"))
            if n_in != res["n_docs"] + n_drop + n_q or on_disk != (res["n_docs"], n_drop, n_q):
                tally.missed += 1
                tally.fail(f"{label}: {n_in} in != {res['n_docs']} kept + {n_drop} dropped + {n_q} quarantined "
                           f"(on disk {on_disk})")
                return
            kept, dropped, quarantined = kept + res["n_docs"], dropped + n_drop, quarantined + n_q
    except UserError:
        tally.held += 1   # the one-line contract: an input gptlab refuses, by name
        return
    except Exception as e:  # noqa: BLE001  (that is what is counted)
        tally.crashes += 1
        tally.fail(f"{label}: {_one_line(e)}{_where(e)}")
        return
    tally.records += records
    whole = not reasons & {"binary-file", "truncated-file"}
    if records != kept + dropped + quarantined or (expect_lines is not None and whole and records != expect_lines):
        tally.missed += 1
        tally.fail(f"{label}: {records} records read ({expect_lines} lines written) != {kept} kept + "
                   f"{dropped} dropped + {quarantined} quarantined")
        return
    tally.held += 1


def _minhash_params():
    return GLOBAL_STEPS["minhash"]()


def _count(path: Path) -> int:
    return sum(1 for _ in read_shard(path)) if path.exists() else 0


# ----------------------------------------------------------------------------- corruptions

def corrupt(data: bytes, how: str, rng: random.Random) -> bytes:
    if not data or how == "none":
        return data
    if how == "truncate":
        return data[: rng.randrange(len(data))]
    if how == "bitflip":
        b = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        return bytes(b)
    if how == "garbage-tail":
        return data + bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    raise ValueError(how)


CORRUPTIONS = ("none", "truncate", "bitflip", "garbage-tail")


@contextmanager
def _quiet_logs():
    lg = logging.getLogger("gptlab")
    level = lg.level
    lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        lg.setLevel(level)


def _hypothesis_run(strategy, n: int, seed: int, fn: Callable[[Any], None]) -> None:
    """Drive ``fn`` over ``n`` examples of ``strategy``, deterministically; ``fn`` never raises
    (it counts), so hypothesis only generates."""
    from hypothesis import HealthCheck, Phase, given, settings  # noqa: PLC0415  (optional test extra)
    from hypothesis import seed as hseed  # noqa: PLC0415  (optional test extra)

    @hseed(seed)
    @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def case(x):
        fn(x)

    case()


def _strategies():
    """hypothesis strategies for a line, a JSONL file, a document text, and the other formats."""
    from hypothesis import strategies as st  # noqa: PLC0415  (optional test extra)

    words = st.lists(st.sampled_from(WORDS), min_size=0, max_size=120).map(" ".join)
    sentences = st.lists(words.map(lambda w: w.capitalize() + "."), min_size=0, max_size=12).map("\n".join)
    any_text = st.text(st.characters(codec=None, categories=None), max_size=300)   # incl. controls
    surrogate = st.sampled_from(["\\ud800", "\\udfff", "\\ud83d", "\\u0000", "\\ufeff"])
    text = st.one_of(sentences, words, any_text)
    scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))

    def record(t: str, extra: dict) -> bytes:
        return json.dumps({"text": t, **extra}, ensure_ascii=bool(len(t) % 2)).encode("utf-8", "surrogatepass")

    extra = st.dictionaries(st.sampled_from(["id", "source", "domain", "meta", "metadata", "url", "date", "x"]),
                            st.one_of(scalar, st.lists(scalar, max_size=3), st.dictionaries(st.text(max_size=5), scalar,
                                                                                              max_size=3)), max_size=4)
    nested = st.tuples(st.integers(100, 200_000), st.sampled_from(["[", "{\"a\":", "{\"text\": \"x\", \"meta\": ["]))
    line = st.one_of(
        st.builds(record, text, extra),
        st.builds(record, text, st.just({})),
        st.builds(lambda s, t: b'{"text": "' + s.encode() + t.encode("utf-8", "surrogatepass")[:50] + b'"}',
                  surrogate, words),
        st.builds(lambda d, n: json.dumps({"text": "deep " * 20, "meta": json.loads("[" * d + "]" * d)}).encode()
                  if d < 900 else b"[" * d, st.integers(1, 990), st.just(0)),
        nested.map(lambda p: p[1].encode() * p[0]),
        st.binary(max_size=200),                                          # invalid UTF-8, NULs, anything
        st.builds(lambda b: b"\xef\xbb\xbf" + b, st.builds(record, text, st.just({}))),
        st.builds(lambda r, k: r[: max(0, len(r) - k)], st.builds(record, text, extra), st.integers(1, 30)),
        st.builds(lambda n, c: b'{"text": "' + c * n + b'"}', st.integers(10_000, 3_000_000),
                  st.sampled_from([b"a", b"word ", b"\\u00e9"])),         # huge lines
        st.sampled_from([b"", b"   ", b"null", b"[]", b"42", b'"text"', b'{"text": null}', b'{"text": 5}',
                         b'{"text": ""}', b'{"text": "\\u0000\\u0000"}', b"\x00" * 40, b'{"text": "a"}\x00']),
    )
    eol = st.sampled_from([b"\n", b"\r\n"])
    jsonl = st.one_of(
        st.builds(lambda ls, e, bom, tail: (b"\xef\xbb\xbf" if bom else b"") + e.join(ls) + (e if tail else b""),
                  st.lists(line, min_size=0, max_size=12), eol, st.booleans(), st.booleans()),
        st.binary(min_size=0, max_size=20_000),
        st.builds(lambda n: bytes(random.Random(n).randrange(256) for _ in range(n)), st.integers(1, 30_000)),
    )
    return st, text, jsonl, sentences


# ----------------------------------------------------------------------------- formats

def _compress(kind: str, data: bytes) -> bytes:
    if kind == "gz":
        return gzip.compress(data, mtime=0)
    if kind == "zst":
        return zstandard.ZstdCompressor(level=1).compress(data)
    return data


def _parquet_bytes(texts: list[Any], columns: str) -> bytes:
    if columns == "text":
        table = pa.table({"text": pa.array(texts, type=pa.string())})
    elif columns == "full":
        table = pa.table({"id": [str(i) for i in range(len(texts))], "text": pa.array(texts, type=pa.string()),
                          "meta": ["{bad json" if i % 3 else "{}" for i in range(len(texts))]})
    elif columns == "int-text":
        table = pa.table({"text": list(range(len(texts)))})
    else:
        table = pa.table({"body": pa.array(texts, type=pa.string())})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd" if len(texts) % 2 else "snappy", row_group_size=max(1, len(texts) // 2))
    return buf.getvalue()


def _warc_record(rtype: str, n: int, payload: bytes, wrong_length: int) -> bytes:
    head = (f"WARC/1.0\r\nWARC-Type: {rtype}\r\nWARC-Record-ID: <urn:uuid:00000000-0000-0000-0000-{n:012d}>\r\n"
            f"WARC-Target-URI: http://example.com/{n}\r\nWARC-Date: 2024-01-01T00:00:00Z\r\n")
    ctype = {"response": "application/http; msgtype=response", "conversion": "text/plain"}.get(rtype, "text/plain")
    head += f"Content-Type: {ctype}\r\nContent-Length: {max(0, len(payload) + wrong_length)}\r\n\r\n"
    return head.encode() + payload + b"\r\n\r\n"


def _warc_bytes(items: list[tuple[str, bytes, str, int]], wet: bool, gz: bool) -> bytes:
    out = []
    for n, (html_or_text, raw, ctype, wrong) in enumerate(items):
        if wet:
            rec = _warc_record("conversion", n, raw if html_or_text == "raw" else html_or_text.encode("utf-8", "surrogatepass"),
                               wrong)
        else:
            body = raw if html_or_text == "raw" else f"<html><body><p>{html_or_text}</p></body></html>".encode(
                "utf-8", "surrogatepass")
            http = f"HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\n\r\n".encode() + body
            rec = _warc_record("response" if n % 5 else "request", n, http, wrong)
        out.append(gzip.compress(rec, mtime=0) if gz else rec)
    return b"".join(out)


@dataclass
class Format:
    name: str
    suffix: str
    make: Callable   # strategy of (bytes to write | {name: bytes} for a folder, lines expected or None)


def _formats() -> list[Format]:
    st, text, jsonl, sentences = _strategies()
    corruption = st.sampled_from(CORRUPTIONS)
    rnd = st.randoms(use_true_random=False)

    def plain(data: bytes):
        return data, _plain_lines(data)

    def compressed(kind):
        return st.builds(lambda d, c, r: (corrupt(_compress(kind, d), c, r), None), jsonl, corruption, rnd)

    texts = st.lists(st.one_of(sentences, text, st.none()), min_size=0, max_size=20)
    parquet = st.builds(lambda t, cols, c, r: (corrupt(_parquet_bytes(t, cols), c, r), None), texts,
                        st.sampled_from(["text", "full", "int-text", "no-text"]), corruption, rnd)
    warc_item = st.tuples(st.one_of(sentences, text, st.just("raw")), st.binary(max_size=300),
                          st.sampled_from(["text/html; charset=utf-8", "text/html", "image/png", ""]),
                          st.sampled_from([0, 0, 0, -5, 7]))

    def warc(wet: bool):
        return st.builds(lambda items, gz, c, r: (corrupt(_warc_bytes(items, wet, gz), c, r), None),
                         st.lists(warc_item, min_size=0, max_size=6), st.booleans(), corruption, rnd)

    textfile = st.one_of(sentences.map(str.encode), text.map(lambda t: t.encode("utf-8", "surrogatepass")),
                         st.binary(max_size=500), st.builds(lambda t: b"\xef\xbb\xbf" + t.encode(), sentences),
                         st.just(b""), st.just(b"\x00" * 100))
    textdir = st.dictionaries(st.sampled_from(["a.txt", "b.md", "c.rst", "d.text", "e.TXT"]), textfile,
                              min_size=1, max_size=5).map(lambda d: (d, None))
    return [
        Format("jsonl", ".jsonl", jsonl.map(plain)),
        Format("jsonl.gz", ".jsonl.gz", compressed("gz")),
        Format("jsonl.zst", ".jsonl.zst", compressed("zst")),
        Format("parquet", ".parquet", parquet),
        Format("text", "", textdir),
        Format("warc", ".warc", warc(False)),
        Format("wet", ".wet", warc(True)),
    ]


def _write_case(folder: Path, fmt: Format, payload) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    if isinstance(payload, dict):
        for name, data in payload.items():
            (folder / name).write_bytes(data)
        return folder
    path = folder / f"case{fmt.suffix}"
    path.write_bytes(payload)
    return path


def fuzz_readers(ctx: Context, n: int) -> list[Row]:
    specs = _specs()
    model_dir = _tiny_classifier(ctx.work / "classifier")
    keep = ctx.work / "sample"   # some fuzzed files, for the end-to-end curate below
    keep.mkdir(parents=True, exist_ok=True)
    rows, total = [], Tally()
    for k, fmt in enumerate(_formats()):
        tally = Tally()

        def one(x, fmt=fmt, tally=tally):
            payload, lines = x
            path = _write_case(ctx.work / "case", fmt, payload)
            check_file(path, ctx.work / "run", specs, model_dir, tally, expect_lines=lines)
            if tally.cases % max(1, n // 6) == 1 and path.is_file():
                shutil.copy(path, keep / f"{fmt.name.replace('.', '-')}-{tally.cases}{fmt.suffix}")

        with _quiet_logs():   # thousands of broken files: their warnings would bury the table
            _hypothesis_run(fmt.make, n, ctx.seed + k, one)
        rows.append(Row("inputs", f"reader {fmt.name} + every doc step", tally.cases, tally.crashes, "crashes",
                        ok=tally.held, ok_what="accounted", note=f"{tally.records} records",
                        failures=tally.failures))
        for attr in ("cases", "crashes", "held", "missed", "records"):
            setattr(total, attr, getattr(total, attr) + getattr(tally, attr))
        total.failures += [f for f in tally.failures if " in != " in f or "records read" in f]
    rows.append(Row("inputs", "in = kept + dropped + quarantined", total.cases, total.missed, "cases off",
                    ok=total.cases - total.missed, ok_what="held", failures=total.failures[:5]))
    rows.append(_curate_sample(ctx, keep))
    return rows


def _curate_sample(ctx: Context, folder: Path) -> Row:
    """`data curate` end to end on a folder of the fuzzed files: a summary that reconciles."""
    out = ctx.work / "curate"
    files = sorted(folder.iterdir())
    dcfg = RunConfig().data
    try:
        s = run_curate(dcfg, [folder], out, workers=1, recipe=load_recipe("default"), executor="local", force=True)
        ok = s["in_docs"] == s["kept_docs"] + s["dropped_docs"] + s["quarantined_docs"]
        note = (f"{len(files)} files: {s['in_docs']} in, {s['kept_docs']} kept, {s['dropped_docs']} dropped, "
                f"{s['quarantined_docs']} quarantined")
        return Row("inputs", "curate a folder of fuzzed files", 1, 0 if ok else 1, "crashes / off", ok=int(ok),
                   ok_what="reconciled", note=note)
    except UserError as e:
        return Row("inputs", "curate a folder of fuzzed files", 1, 0, "crashes", note=f"refused: {e}")
    except Exception as e:  # noqa: BLE001  (counted)
        return Row("inputs", "curate a folder of fuzzed files", 1, 1, "crashes",
                   failures=[f"{_one_line(e)}{_where(e)}"])


# ----------------------------------------------------------------------------- steps on documents

def fuzz_steps(ctx: Context, n: int) -> Row:
    """Every per-document step (filter and tag mode) and every dedup key function on hypothesis
    documents: any text (controls, lone surrogates, huge), any source and meta."""
    st, text, _, sentences = _strategies()
    specs = _specs()
    model = QualityModel.load(_tiny_classifier(ctx.work / "classifier"))
    built = []
    for s in specs:
        step = s.build()
        if s.type == "classifier":
            step.model = model
        built.append(step)
    hasher = MinHasher()
    tally = Tally()
    lone = st.sampled_from(["\ud800", "\udfff", "\x00", "\ufeff", "\u200b", "\r", "\r\n", "\u2028", "…", "•"])
    doc_text = st.one_of(
        text, sentences,
        st.lists(st.one_of(sentences, lone, text), max_size=8).map("".join),
        st.builds(lambda t, k: t * k, st.one_of(sentences, lone), st.integers(1, 3000)))
    meta = st.dictionaries(st.sampled_from(["url", "tags", "date", "x"]),
                           st.one_of(st.none(), st.integers(), st.text(max_size=40),
                                     st.dictionaries(st.text(max_size=4), st.integers(), max_size=2)), max_size=3)
    docs = st.builds(lambda t, src, m: Document(id=f"d{len(t)}", text=t, source=src, domain=src, meta=m),
                     doc_text, st.sampled_from(["web", "bible", "", "x" * 300]), meta)

    def one(doc: Document) -> None:
        tally.cases += 1
        try:
            for step in built:
                reason = step(doc)
                if reason is not None and not isinstance(reason, str):
                    raise TypeError(f"{step.name} returned {reason!r}")
            for kind in ("exact_dedup", "url_dedup", "minhash"):
                map_keys(kind, [doc], hasher if kind == "minhash" else None)
            doc.to_json()
            tally.held += 1
        except UserError:
            tally.held += 1
        except Exception as e:  # noqa: BLE001  (counted)
            tally.crashes += 1
            tally.fail(f"text {doc.text[:60]!r}...: {_one_line(e)}{_where(e)}")

    _hypothesis_run(docs, n, ctx.seed + 100, one)
    return Row("inputs", "every doc step + dedup keys on fuzzed documents", tally.cases, tally.crashes, "crashes",
               ok=tally.held, ok_what="decided", failures=tally.failures)


def run(ctx: Context) -> list[Row]:
    n_files = 40 if ctx.quick else 200     # per format: 7 formats
    n_docs = 100 if ctx.quick else 800
    return [fuzz_steps(ctx, n_docs), *fuzz_readers(ctx, n_files)]
