"""Readers for what a curation run takes in, and the Parquet writer.

Inputs are JSONL (plain, .gz, .zst), Parquet, folders of text files, Common Crawl WARC
(HTML main text extracted with resiliparse) and WET files (read with warcio), and gptlab's
own harvest folders. Each input file is one shard, the unit of parallel work.

A reader never raises on bad content. It yields either a :class:`Document` or a
:class:`Quarantined` record that names the reason and the place (file, line or record),
so that every input record is accounted for: in = kept + dropped + quarantined.
"""
from __future__ import annotations

import contextlib
import gzip
import io
import itertools
import json
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from gptlab.console import log
from gptlab.data.documents import Document
from gptlab.manifest import MARKER as STAGE_MARKER
from gptlab.manifest import atomic_path

JSONL_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".jsonl.zst", ".json.zst", ".ndjson")
PARQUET_SUFFIXES = (".parquet",)
WARC_SUFFIXES = (".warc", ".warc.gz")
WET_SUFFIXES = (".wet", ".wet.gz", ".warc.wet", ".warc.wet.gz")
TEXT_SUFFIXES = (".txt", ".md", ".rst", ".text")


@dataclass
class Quarantined:
    """An input record that could not become a document, with why and where."""
    source: str
    reason: str
    where: str
    sample: str = ""


@dataclass(frozen=True)
class InputShard:
    """One unit of work: a file (or a folder of text files) and how to read it."""
    path: str
    kind: str  # jsonl | parquet | warc | wet | textdir | unsupported (a file no reader takes: one quarantine record)
    source: str  # the source name for records that do not carry one


class TruncatedInput(Exception):
    """A compressed stream ended before its end-of-frame marker."""


# ----------------------------------------------------------------------------- discovery

def _kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(WET_SUFFIXES):
        return "wet"
    if name.endswith(WARC_SUFFIXES):
        return "warc"
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


def _source_name(path: Path) -> str:
    name = path.name
    for suffix in sorted(JSONL_SUFFIXES + PARQUET_SUFFIXES + WARC_SUFFIXES + WET_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or name
    return name


def discover(inputs: list[str | Path] | str | Path) -> list[InputShard]:
    """Expand input paths into shards, in a deterministic order.

    A gptlab harvest folder contributes its ``shards/``; another folder contributes every
    data file under it, plus one text-folder shard per directory holding text files."""
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    shards: list[InputShard] = []
    for raw in inputs:
        p = Path(raw)
        if not p.exists():
            raise FileNotFoundError(f"{p}: input not found")
        if p.is_file():
            kind = _kind(p)
            if kind is None:
                raise FileNotFoundError(f"{p}: unknown input format (expected JSONL, Parquet, WARC, WET or a folder)")
            shards.append(InputShard(str(p), kind, _source_name(p)))
            continue
        if (p / "shards").is_dir() and (p / "manifest.json").exists():
            p = p / "shards"
        text_dirs: dict[Path, None] = {}
        for f in sorted(x for x in p.rglob("*") if x.is_file()):
            kind = _kind(f)
            if kind is not None:
                shards.append(InputShard(str(f), kind, _source_name(f)))
            elif f.name.lower().endswith(TEXT_SUFFIXES):
                text_dirs.setdefault(f.parent)
            elif f.name != STAGE_MARKER:
                # Never skipped silently: the file is counted, and named in the quarantine.
                shards.append(InputShard(str(f), "unsupported", f.name))
        for d in text_dirs:
            shards.append(InputShard(str(d), "textdir", d.name))
    if not any(s.kind != "unsupported" for s in shards):
        names = ", ".join(Path(s.path).name for s in shards[:5])
        raise FileNotFoundError(f"{', '.join(map(str, inputs))}: no readable inputs found"
                                + (f" (unsupported formats: {names})" if names else ""))
    return shards


# ----------------------------------------------------------------------------- byte streams

def _zstd_chunks(f, size: int = 1 << 20) -> Iterator[bytes]:
    """Decompress a (possibly multi-frame) zstd file; raise TruncatedInput if it is cut short.
    zstandard's stream_reader ends silently on a truncated frame, so we track frame ends."""
    dctx = zstandard.ZstdDecompressor()
    dobj = dctx.decompressobj()
    in_frame = False
    while block := f.read(size):
        while block:
            out = dobj.decompress(block)
            in_frame = True
            if out:
                yield out
            if dobj.eof:
                block = dobj.unused_data
                dobj = dctx.decompressobj()
                in_frame = False
            else:
                block = b""
    if in_frame:
        raise TruncatedInput("zstd stream ends mid-frame")


def _raw_lines(path: Path) -> Iterator[bytes]:
    """Byte lines of a plain, gzip or zstd file; TruncatedInput at a cut-off end."""
    name = path.name.lower()
    with open(path, "rb") as f:
        if name.endswith(".gz"):
            try:
                with gzip.GzipFile(fileobj=f) as g:
                    yield from g
            except (EOFError, zlib.error, gzip.BadGzipFile) as e:
                raise TruncatedInput(f"gzip: {e}") from None
        elif name.endswith(".zst"):
            try:
                pending = b""
                for chunk in _zstd_chunks(f):
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        yield line + b"\n"
                if pending:
                    yield pending
            except zstandard.ZstdError as e:
                raise TruncatedInput(f"zstd: {e}") from None
        else:
            yield from f


# ----------------------------------------------------------------------------- record checks

def _snippet(raw: bytes | str, n: int = 200) -> str:
    if isinstance(raw, bytes):
        raw = raw[:n].decode("utf-8", errors="replace")
    # A lone surrogate would make the quarantine shard unreadable: it becomes "?".
    return raw[:n].encode("utf-8", errors="replace").decode("utf-8")


def _looks_binary(text: str) -> bool:
    """NUL bytes, or many control characters: binary junk, not text."""
    head = text[:8192]
    if "\x00" in head:
        return True
    ctrl = sum(1 for c in head if ord(c) < 32 and c not in "\n\r\t\f\v")
    return ctrl > 0.05 * max(1, len(head))


def _check_text(text: str, max_bytes: int) -> str | None:
    """Reason to quarantine a decoded text, or None."""
    if not text.strip():
        return "empty-document"
    if len(text) > max_bytes:
        return "oversized-document"
    try:
        nbytes = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        # A lone surrogate ("\ud800" escaped in JSON) is no character: a shard holding it
        # could not be read back as UTF-8.
        return "invalid-unicode"
    if nbytes > max_bytes:
        return "oversized-document"
    if _looks_binary(text):
        return "binary-content"
    return None


def _make_doc(rec: dict[str, Any], default_id: str, source: str) -> Document:
    meta = rec.get("meta") or rec.get("metadata") or {}
    if isinstance(meta, str):  # our Parquet writer stores meta as a JSON string
        try:
            meta = json.loads(meta)
        except json.JSONDecodeError:
            meta = {"raw_meta": meta}
    meta = dict(meta) if isinstance(meta, dict) else {"raw_meta": meta}
    for k in ("url", "date"):
        if k in rec and k not in meta:
            meta[k] = rec[k]
    src = str(rec.get("source") or meta.pop("source", None) or source)
    return Document(id=str(rec.get("id", default_id)), text=rec["text"], source=src,
                    domain=str(rec.get("domain") or src), meta=meta)


# ----------------------------------------------------------------------------- readers

def _binary_head(lines: list[bytes]) -> bool:
    """A file's first bytes look like binary data, not text lines: a raw NUL byte (JSON text
    escapes it, so no valid line holds one), or mostly undecodable bytes."""
    head = b"".join(lines)[:HEAD_BYTES]
    if b"\x00" in head:
        return True
    text = head.decode("utf-8", errors="replace")
    return text.count("\ufffd") > 0.25 * max(1, len(text))


HEAD_BYTES = 8192
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _has_lone_surrogate(rec: Any) -> bool:
    """JSON may escape half of a surrogate pair ("\\ud800"): no character, and a shard holding
    one (in the text, the id or the meta) could not be read back as UTF-8."""
    try:
        json.dumps(rec, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def read_jsonl(shard: InputShard, max_bytes: int) -> Iterator[Document | Quarantined]:
    path = Path(shard.path)
    lineno = 0
    try:
        lines = _raw_lines(path)
        head: list[bytes] = []
        for raw in lines:   # look at the first few KiB before reading line by line
            head.append(raw)
            if sum(map(len, head)) >= HEAD_BYTES:
                break
        if _binary_head(head):
            # One record for the file, not one per "line" of random bytes.
            yield Quarantined(shard.source, "binary-file", str(path), _snippet(b"".join(head)))
            return
        for lineno, raw in enumerate(itertools.chain(head, lines), 1):
            if not raw.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield Quarantined(shard.source, "invalid-utf8", where, _snippet(raw))
                continue
            if lineno == 1:
                line = line.removeprefix("\ufeff")   # a UTF-8 byte-order mark is not part of the record
            try:
                rec = json.loads(line)
            # RecursionError: nesting deeper than the parser goes; ValueError: an integer of more
            # digits than Python converts (sys.get_int_max_str_digits), JSONDecodeError's parent.
            except (ValueError, RecursionError):
                yield Quarantined(shard.source, "malformed-json", where, _snippet(line))
                continue
            if _SURROGATE_ESCAPE.search(line) and _has_lone_surrogate(rec):
                yield Quarantined(shard.source, "invalid-unicode", where, _snippet(line))
                continue
            if not isinstance(rec, dict) or not isinstance(rec.get("text"), str):
                yield Quarantined(shard.source, "no-text-field", where, _snippet(line))
                continue
            reason = _check_text(rec["text"], max_bytes)
            if reason:
                yield Quarantined(str(rec.get("source") or shard.source), reason, where, _snippet(rec["text"]))
                continue
            yield _make_doc(rec, f"{shard.source}:{lineno}", shard.source)
    except TruncatedInput as e:
        yield Quarantined(shard.source, "truncated-file", f"{path}: after line {lineno} ({e})")


def read_parquet(shard: InputShard, max_bytes: int) -> Iterator[Document | Quarantined]:
    path = Path(shard.path)
    row = 0
    try:
        pf = pq.ParquetFile(path)
        if "text" not in pf.schema_arrow.names:
            yield Quarantined(shard.source, "no-text-field", f"{path}: no 'text' column")
            return
        for batch in pf.iter_batches(batch_size=1024):
            for rec in batch.to_pylist():
                row += 1
                where = f"{path}:row {row}"
                if not isinstance(rec.get("text"), str):
                    yield Quarantined(shard.source, "no-text-field", where)
                    continue
                reason = _check_text(rec["text"], max_bytes)
                if reason:
                    yield Quarantined(shard.source, reason, where, _snippet(rec["text"]))
                    continue
                yield _make_doc(rec, f"{shard.source}:{row}", shard.source)
    except (OSError, pa.ArrowException) as e:
        yield Quarantined(shard.source, "unreadable-parquet", f"{path}: after row {row} ({type(e).__name__}: {e})")


def read_textdir(shard: InputShard, max_bytes: int) -> Iterator[Document | Quarantined]:
    folder = Path(shard.path)
    for f in sorted(x for x in folder.iterdir() if x.is_file() and x.name.lower().endswith(TEXT_SUFFIXES)):
        raw = f.read_bytes()
        try:
            text = raw.decode("utf-8-sig")   # a byte-order mark is not text
        except UnicodeDecodeError:
            yield Quarantined(shard.source, "invalid-utf8", str(f), _snippet(raw))
            continue
        reason = _check_text(text, max_bytes)
        if reason:
            yield Quarantined(shard.source, reason, str(f), _snippet(text))
            continue
        yield Document(id=f"{shard.source}/{f.name}", text=text, source=shard.source, domain=shard.source,
                       meta={"path": f.name})


def _html_text(payload: bytes) -> str:
    """Main text of an HTML page: resiliparse detects the charset and drops boilerplate."""
    from resiliparse.extract.html2text import extract_plain_text  # noqa: PLC0415  (optional extra (gptlab[data]): WARC text extraction)
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding  # noqa: PLC0415  (optional extra (gptlab[data]): WARC text extraction)
    html = bytes_to_str(payload, detect_encoding(payload))
    return extract_plain_text(html, main_content=True)


def _quiet_records(archive, path: Path) -> Iterator[Any]:
    """warcio's records, without its multi-line stderr warning per record whose Content-Length
    is wrong (it resynchronises on the next record): one log line per file instead. stderr is
    swapped only while warcio reads, never while our caller runs."""
    sink = io.StringIO()
    records = iter(archive)
    try:
        while True:
            with contextlib.redirect_stderr(sink):
                record = next(records, None)
            if record is None:
                return
            yield record
    finally:
        bad = getattr(archive, "err_count", 0)
        if bad:
            log(f"[yellow]{path}: {bad} WARC record(s) with a wrong Content-Length (read on from the next record)")


def read_warc(shard: InputShard, max_bytes: int) -> Iterator[Document | Quarantined]:
    """WARC ``response`` records (HTML → main text) or WET ``conversion`` records (text)."""
    from warcio.archiveiterator import ArchiveIterator  # noqa: PLC0415  (optional extra (gptlab[data]): WARC/WET reading)
    from warcio.exceptions import ArchiveLoadFailed  # noqa: PLC0415  (optional extra (gptlab[data]): WARC/WET reading)
    path = Path(shard.path)
    want = "conversion" if shard.kind == "wet" else "response"
    n = 0
    with open(path, "rb") as f:
        try:
            for record in _quiet_records(ArchiveIterator(f), path):
                if record.rec_type != want:
                    continue  # warcinfo / request / metadata records are not documents
                n += 1
                rid = record.rec_headers.get_header("WARC-Record-ID") or f"{shard.source}:{n}"
                url = record.rec_headers.get_header("WARC-Target-URI") or ""
                where = f"{path}: record {n} {url}"
                payload = record.content_stream().read()
                if getattr(record.raw_stream, "limit", 0) > 0:
                    # warcio ends a cut-off record quietly; bytes still owed mean truncation.
                    yield Quarantined(shard.source, "truncated-warc", where)
                    return
                if shard.kind == "wet":
                    try:
                        text = payload.decode("utf-8")
                    except UnicodeDecodeError:
                        yield Quarantined(shard.source, "invalid-utf8", where, _snippet(payload))
                        continue
                else:
                    ctype = (record.http_headers.get_header("Content-Type") or "") if record.http_headers else ""
                    if "html" not in ctype.lower():
                        yield Quarantined(shard.source, "not-html", where, ctype)
                        continue
                    text = _html_text(payload)
                reason = _check_text(text, max_bytes)
                if reason:
                    yield Quarantined(shard.source, reason, where, _snippet(text))
                    continue
                meta = {"url": url, "date": record.rec_headers.get_header("WARC-Date") or ""}
                yield Document(id=rid.strip("<>"), text=text, source=shard.source, domain=shard.source, meta=meta)
        except (ArchiveLoadFailed, EOFError, OSError, zlib.error, ValueError, AttributeError) as e:
            # warcio fails in several ways on a cut-off or garbled archive (a header line cut
            # in half surfaces as AttributeError inside its record loader).
            yield Quarantined(shard.source, "truncated-warc", f"{path}: after record {n} ({type(e).__name__}: {e})")


def read_unsupported(shard: InputShard, max_bytes: int) -> Iterator[Document | Quarantined]:
    """A file in an input folder that no reader takes (.csv, .jsonl.bz2): one record, so it is
    counted and named rather than skipped."""
    yield Quarantined(shard.source, "unsupported-format", shard.path,
                      "readable inputs: JSONL (plain, .gz, .zst), Parquet, WARC, WET, text files")


READERS = {"unsupported": read_unsupported, "jsonl": read_jsonl, "parquet": read_parquet, "textdir": read_textdir, "warc": read_warc, "wet": read_warc}


def read_input(shard: InputShard, max_bytes: int) -> Iterator[Document | Quarantined]:
    return READERS[shard.kind](shard, max_bytes)


# ----------------------------------------------------------------------------- writers

def write_parquet(path: str | Path, docs: list[Document]) -> int:
    """Write documents as a Parquet shard (meta as a JSON string column), atomically."""

    table = pa.table({"id": [d.id for d in docs], "text": [d.text for d in docs],
                      "source": [d.source for d in docs], "domain": [d.domain for d in docs],
                      "meta": [json.dumps(d.meta, ensure_ascii=False, sort_keys=True) for d in docs]})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return len(docs)
