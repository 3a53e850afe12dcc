"""Foundation curation: normalise, tag, filter, exact-dedup, and hold out an eval split.

A recipe is a readable list of steps. Tagging steps write scores into ``doc.meta``;
filter steps decide from those scores and name a reason for every drop, so changing a
threshold never recomputes features. Every step counts documents and bytes in and out,
per source, and the totals reconcile: in = kept + dropped + quarantined.
"""
from __future__ import annotations

import unicodedata
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xxhash

from gptlab.data.documents import Document, read_shard, shard_paths, write_shard


# ----------------------------------------------------------------------------- steps

class Step:
    """A per-document step: returns None to keep the document, or a drop reason."""
    name = "step"

    def __call__(self, doc: Document) -> str | None:  # pragma: no cover - interface
        raise NotImplementedError


class Normalize(Step):
    """Unicode NFC, unified newlines, no trailing spaces. Never changes meaning."""
    name = "normalize"

    def __call__(self, doc: Document) -> str | None:
        text = unicodedata.normalize("NFC", doc.text.replace("\r\n", "\n").replace("\r", "\n"))
        text = "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")
        doc.text = text
        return "empty" if not text.strip() else None


class TagStats(Step):
    """Scores used by the filters below: length, symbol ratio, alphabetic ratio."""
    name = "tag-stats"

    def __call__(self, doc: Document) -> str | None:
        text = doc.text
        n = max(1, len(text))
        non_space = sum(1 for c in text if not c.isspace())
        alpha = sum(1 for c in text if c.isalpha())
        symbols = non_space - alpha - sum(1 for c in text if c.isdigit())
        doc.meta["chars"] = len(text)
        doc.meta["alpha_ratio"] = round(alpha / n, 4)
        doc.meta["symbol_ratio"] = round(symbols / max(1, non_space), 4)
        return None


@dataclass
class MinLength(Step):
    min_chars: int
    name: str = "min-length"

    def __call__(self, doc: Document) -> str | None:
        return "too-short" if doc.meta["chars"] < self.min_chars else None


@dataclass
class MaxSymbolRatio(Step):
    max_ratio: float
    name: str = "symbol-ratio"

    def __call__(self, doc: Document) -> str | None:
        return "too-many-symbols" if doc.meta["symbol_ratio"] > self.max_ratio else None


@dataclass
class MinAlphaRatio(Step):
    min_ratio: float
    name: str = "alpha-ratio"

    def __call__(self, doc: Document) -> str | None:
        return "too-few-letters" if doc.meta["alpha_ratio"] < self.min_ratio else None


def dedup_key(text: str) -> int:
    """Exact-duplicate key: the hash of the lowercased, whitespace-collapsed text."""
    return xxhash.xxh3_64_intdigest(" ".join(text.lower().split()).encode("utf-8", "surrogatepass"))


def foundation_recipe(dcfg) -> list[Step]:
    return [Normalize(), TagStats(), MinLength(dcfg.min_chars), MaxSymbolRatio(dcfg.max_symbol_ratio),
            MinAlphaRatio(dcfg.min_alpha_ratio)]


# ----------------------------------------------------------------------------- accounting

@dataclass
class Funnel:
    """Documents and bytes through each step, drops by reason, per source."""
    steps: list[dict[str, Any]] = field(default_factory=list)
    sources: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    quarantined: Counter = field(default_factory=Counter)

    def step(self, name: str) -> dict[str, Any]:
        for s in self.steps:
            if s["name"] == name:
                return s
        s = {"name": name, "in_docs": 0, "in_bytes": 0, "out_docs": 0, "out_bytes": 0,
             "dropped": Counter(), "dropped_bytes": Counter()}
        self.steps.append(s)
        return s

    def merge(self, other: "Funnel") -> None:
        for s in other.steps:
            mine = self.step(s["name"])
            for k in ("in_docs", "in_bytes", "out_docs", "out_bytes"):
                mine[k] += s[k]
            mine["dropped"].update(s["dropped"])
            mine["dropped_bytes"].update(s["dropped_bytes"])
        for src, c in other.sources.items():
            self.sources[src].update(c)
        self.quarantined.update(other.quarantined)

    def to_dict(self) -> dict[str, Any]:
        return {"steps": [{**s, "dropped": dict(s["dropped"]), "dropped_bytes": dict(s["dropped_bytes"])}
                          for s in self.steps],
                "sources": {k: dict(v) for k, v in sorted(self.sources.items())},
                "quarantined": dict(self.quarantined)}


def apply_steps(docs, steps: list[Step], funnel: Funnel, dropped: list[Document] | None = None):
    """Run documents through per-document steps, counting everything."""
    for doc in docs:
        funnel.sources[doc.source]["in"] += 1
        for step in steps:
            s = funnel.step(step.name)
            nbytes = doc.nbytes
            s["in_docs"] += 1
            s["in_bytes"] += nbytes
            reason = step(doc)
            if reason is not None:
                s["dropped"][reason] += 1
                s["dropped_bytes"][reason] += nbytes
                funnel.sources[doc.source]["dropped"] += 1
                if dropped is not None:
                    doc.meta["drop_reason"] = f"{step.name}:{reason}"
                    dropped.append(doc)
                break
            s["out_docs"] += 1
            s["out_bytes"] += doc.nbytes
        else:
            yield doc


# ----------------------------------------------------------------------------- the stage

def _filter_shard(path: str, tmp_out: str, dcfg) -> dict:
    """Unit of work: one input shard through the per-document steps into one temp shard."""
    funnel = Funnel()
    kept: list[Document] = []
    dropped: list[Document] | None = [] if dcfg.keep_dropped else None
    docs = list(read_shard(path, quarantine=funnel.quarantined))
    for doc in apply_steps(docs, foundation_recipe(dcfg), funnel, dropped):
        kept.append(doc)
    write_shard(tmp_out, kept)
    if dropped:
        write_shard(str(tmp_out).replace(".kept.", ".dropped."), dropped)
    return {"funnel": funnel, "keys": [(d.id, dedup_key(d.text), d.nbytes, d.source) for d in kept]}


def _split_heldout(docs: list[Document], dcfg) -> set[str]:
    """Per-domain held-out ids. Documents sharing meta.group (one Bible chapter in several
    translations) fall on the same side, so near-duplicates do not leak across the split."""
    by_domain: dict[str, dict[str, list[Document]]] = defaultdict(lambda: defaultdict(list))
    for d in docs:
        by_domain[d.domain][d.meta.get("group", d.id)].append(d)
    held: set[str] = set()
    for domain, groups in sorted(by_domain.items()):
        n_docs = sum(len(g) for g in groups.values())
        target = min(dcfg.eval_max_docs_per_domain, max(1, round(dcfg.eval_fraction * n_docs)))
        if n_docs < 4:
            continue  # too small to spare any
        order = sorted(groups, key=lambda g: (xxhash.xxh64_intdigest(f"{dcfg.seed}:{g}".encode()), g))
        taken = 0
        for g in order:
            if taken >= target:
                break
            for d in groups[g]:
                held.add(d.id)
                taken += 1
    return held


def run_curate(cfg, harvest_dir: str | Path, out_dir: str | Path, workers: int = 2) -> dict:
    """`gptlab data curate`: filter, exact-dedup and split harvested shards."""
    from gptlab.config import to_dict
    from gptlab.console import log, progress_task
    from gptlab.manifest import is_complete, read_manifest, stage_key, write_manifest

    out = Path(out_dir)
    dcfg = cfg.data
    inputs = shard_paths(Path(harvest_dir) / "shards")
    if not inputs:
        raise FileNotFoundError(f"{harvest_dir}: no harvested shards (run `gptlab data harvest` first)")
    key = stage_key({"data": to_dict(dcfg)}, upstream=[harvest_dir])
    if is_complete(out, key):
        log(f"curate: complete, skipping ({out})")
        return read_manifest(out)["summary"]
    tmp_dir = out / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    funnel = Funnel()
    keys: list[tuple[str, int, int, str]] = []
    tmp_paths = [tmp_dir / f"{p.name.removesuffix('.jsonl.zst')}.kept.jsonl.zst" for p in inputs]
    with progress_task("curate", len(inputs)) as advance:
        jobs = [(str(p), str(t), dcfg) for p, t in zip(inputs, tmp_paths)]
        if workers > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                results = []
                for r in pool.map(_filter_shard, *zip(*jobs)):
                    results.append(r)
                    advance()
        else:
            results = []
            for j in jobs:
                results.append(_filter_shard(*j))
                advance()
    for r in results:
        funnel.merge(r["funnel"])
        keys.extend(r["keys"])

    # Exact dedup: the first occurrence in shard order wins, so the choice is deterministic.
    seen: set[int] = set()
    survivors: set[str] = set()
    dd = funnel.step("exact-dedup")
    for doc_id, h, nbytes, source in keys:
        dd["in_docs"] += 1
        dd["in_bytes"] += nbytes
        if h in seen:
            dd["dropped"]["exact-duplicate"] += 1
            dd["dropped_bytes"]["exact-duplicate"] += nbytes
            funnel.sources[source]["dropped"] += 1
            continue
        seen.add(h)
        survivors.add(doc_id)
        dd["out_docs"] += 1
        dd["out_bytes"] += nbytes

    kept_docs = [d for d in (doc for t in tmp_paths for doc in read_shard(t)) if d.id in survivors]
    for d in kept_docs:
        funnel.sources[d.source]["kept"] += 1
    held = _split_heldout(kept_docs, dcfg)
    train_docs = [d for d in kept_docs if d.id not in held]
    heldout_docs = []
    for d in kept_docs:
        if d.id in held:
            if len(d.text) > dcfg.eval_max_chars_per_doc:
                d.text = d.text[:dcfg.eval_max_chars_per_doc]
                d.meta["eval_truncated"] = True
            heldout_docs.append(d)
    outputs = []
    for i in range(0, max(1, len(train_docs)), dcfg.docs_per_shard):
        rel = f"train/train-{i // dcfg.docs_per_shard:05d}.jsonl.zst"
        write_shard(out / rel, train_docs[i:i + dcfg.docs_per_shard])
        outputs.append(rel)
    write_shard(out / "heldout/heldout.jsonl.zst", heldout_docs)
    outputs.append("heldout/heldout.jsonl.zst")
    if dcfg.keep_dropped:
        for p in sorted(tmp_dir.glob("*.dropped.jsonl.zst")):
            rel = f"dropped/{p.name}"
            (out / "dropped").mkdir(exist_ok=True)
            p.replace(out / rel)
            outputs.append(rel)
    for t in tmp_paths:
        t.unlink(missing_ok=True)

    in_docs = sum(c["in"] for c in funnel.sources.values())
    dropped = sum(c["dropped"] for c in funnel.sources.values())
    quarantined = sum(funnel.quarantined.values())
    summary = {"funnel": funnel.to_dict(), "in_docs": in_docs, "kept_docs": len(kept_docs),
               "dropped_docs": dropped, "quarantined_docs": quarantined,
               "harvest": read_manifest(harvest_dir)["summary"],
               "train_docs": len(train_docs), "heldout_docs": len(heldout_docs),
               "train_bytes": sum(d.nbytes for d in train_docs),
               "heldout_bytes": sum(d.nbytes for d in heldout_docs),
               "heldout_domains": dict(Counter(d.domain for d in heldout_docs))}
    if in_docs != len(kept_docs) + dropped:
        raise AssertionError(f"curate: funnel does not reconcile: {in_docs} in, "
                             f"{len(kept_docs)} kept + {dropped} dropped")
    write_manifest(out, stage="curate", key=key, outputs=outputs, config=to_dict(cfg), summary=summary)
    log(f"curate: {in_docs} in → {len(kept_docs)} kept ({dropped} dropped); "
        f"{len(train_docs)} train / {len(heldout_docs)} held out → {out}")
    return summary
