"""`gptlab data curate`: run a recipe over input shards, with full funnel accounting.

The recipe is cut at its global (dedup) steps into segments. Segment k runs shard by
shard in parallel: it reads segment k-1's output for its shard, removes the duplicates the
previous dedup step found, runs its per-document steps, and writes the keys the next dedup
step needs. Between segments, the dedup step's reduce merges those keys across shards.

Every task writes its outputs atomically and a completion record last, so a killed run
resumes with the shards it had not finished. Every document is counted per step and per
source; every drop names its reason; unreadable input is quarantined with its reason and
kept for inspection. The totals reconcile: in = kept + dropped + quarantined.
"""
from __future__ import annotations

import json
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xxhash

from gptlab.console import log, progress_task
from gptlab.data.classifier import MODEL_JSON, fit_for_run
from gptlab.data.config import DataConfig
from gptlab.data.dedup import MinHasher, gidx_of, map_keys, reduce_buckets, write_buckets, write_signatures
from gptlab.data.documents import Document, read_shard, write_shard
from gptlab.data.executors import run_tasks
from gptlab.data.readers import InputShard, Quarantined, discover, read_input, write_parquet
from gptlab.data.recipe import load_recipe, segments
from gptlab.data.steps import Normalize, StepParams
from gptlab.errors import UserError
from gptlab.manifest import Stage, atomic_path, atomic_write, atomic_write_json, file_checksum, read_manifest, stage_key
from gptlab.schema import section_dict

# ----------------------------------------------------------------------------- accounting


def _step_record(name: str) -> dict[str, Any]:
    return {"name": name, "in_docs": 0, "in_bytes": 0, "out_docs": 0, "out_bytes": 0,
            "dropped": Counter(), "dropped_bytes": Counter(), "sources": defaultdict(Counter)}


@dataclass
class Funnel:
    """Documents and bytes in and out of each step, per source; drops by reason."""
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    quarantined: Counter = field(default_factory=Counter)

    def step(self, name: str) -> dict[str, Any]:
        if name not in self.steps:
            self.steps[name] = _step_record(name)
        return self.steps[name]

    def passed(self, name: str, src: str, nbytes_in: int, nbytes_out: int) -> None:
        s = self.step(name)
        s["in_docs"] += 1
        s["in_bytes"] += nbytes_in
        s["out_docs"] += 1
        s["out_bytes"] += nbytes_out
        c = s["sources"][src]
        c["in_docs"] += 1
        c["in_bytes"] += nbytes_in
        c["out_docs"] += 1
        c["out_bytes"] += nbytes_out

    def dropped(self, name: str, src: str, nbytes: int, reason: str) -> None:
        s = self.step(name)
        s["in_docs"] += 1
        s["in_bytes"] += nbytes
        s["dropped"][reason] += 1
        s["dropped_bytes"][reason] += nbytes
        c = s["sources"][src]
        c["in_docs"] += 1
        c["in_bytes"] += nbytes
        c["dropped"] += 1
        self.sources[src]["dropped"] += 1

    def quarantine(self, q: Quarantined) -> None:
        self.quarantined[q.reason] += 1
        self.sources[q.source]["in"] += 1
        self.sources[q.source]["quarantined"] += 1

    def merge(self, other: dict[str, Any]) -> None:
        """Add a serialised funnel (a task's result) into this one."""
        for s in other["steps"]:
            mine = self.step(s["name"])
            for k in ("in_docs", "in_bytes", "out_docs", "out_bytes"):
                mine[k] += s[k]
            mine["dropped"].update(s["dropped"])
            mine["dropped_bytes"].update(s["dropped_bytes"])
            for src, c in s["sources"].items():
                mine["sources"][src].update(c)
        for src, c in other["sources"].items():
            self.sources[src].update(c)
        self.quarantined.update(other["quarantined"])

    def to_dict(self, order: list[str] | None = None) -> dict[str, Any]:
        names = [n for n in (order or []) if n in self.steps] + [n for n in self.steps if n not in (order or [])]
        steps = []
        for n in names:
            s = self.steps[n]
            steps.append({**s, "dropped": dict(s["dropped"]), "dropped_bytes": dict(s["dropped_bytes"]),
                          "sources": {k: dict(v) for k, v in sorted(s["sources"].items())}})
        return {"steps": steps, "sources": {k: dict(v) for k, v in sorted(self.sources.items())},
                "quarantined": dict(self.quarantined)}


# ----------------------------------------------------------------------------- shard tasks

@dataclass
class SegmentTask:
    """Segment ``k`` of the recipe over one shard. Picklable, so any executor can run it."""
    k: int
    shard: int
    input: InputShard | None        # segment 0 reads the raw input ...
    prev_docs: str | None           # ... later segments read the previous segment's output
    drops: str | None               # [position, keeper gidx] rows from the previous dedup step
    drop_step: str | None
    steps: list[Any]                # StepSpecs of this segment
    global_step: Any                # the dedup StepSpec after this segment, or None
    out_docs: str
    keys_dir: str | None
    done: str
    model_dirs: dict[str, str]
    keep_dropped: bool
    max_doc_bytes: int
    want: list[int]                 # gidx of sample-cluster members to describe


_STEP_CACHE: dict[str, list] = {}


def _build_steps(specs: list, model_dirs: dict[str, str]) -> list:
    """Build (and cache per process) step objects; a process pool reuses loaded models."""
    key = json.dumps([[s.type, s.name, repr(s.params)] for s in specs] + [sorted(model_dirs.items())])
    if key not in _STEP_CACHE:
        built = []
        for s in specs:
            step = s.build()
            if s.name in model_dirs:
                step.bind(model_dirs[s.name])
            built.append(step)
        _STEP_CACHE.clear()
        _STEP_CACHE[key] = built
    return _STEP_CACHE[key]


def _apply(doc: Document, steps: list, funnel: Funnel) -> str | None:
    """Run one document through per-document steps; return 'step:reason' if dropped."""
    for step in steps:
        nbytes = doc.nbytes
        reason = step(doc)
        if reason is not None:
            funnel.dropped(step.name, doc.source, nbytes, reason)
            return f"{step.name}:{reason}"
        funnel.passed(step.name, doc.source, nbytes, doc.nbytes)
    return None


def _describe(doc: Document) -> dict[str, Any]:
    return {"id": doc.id, "source": doc.source, "chars": len(doc.text),
            "snippet": " ".join(doc.text[:300].split())[:160]}


def run_segment(task: SegmentTask) -> dict[str, Any]:
    """One shard through one segment. Returns (and records) its funnel and sample documents."""
    done = Path(task.done)
    if done.exists():
        return json.loads(done.read_text())
    funnel = Funnel()
    steps = _build_steps(task.steps, task.model_dirs)
    kept: list[Document] = []
    dropped: list[Document] = []
    quarantined: list[Quarantined] = []
    samples: dict[str, Any] = {}
    want = set(task.want)

    def process(doc: Document) -> None:
        reason = _apply(doc, steps, funnel)
        if reason is None:
            kept.append(doc)
        elif task.keep_dropped:
            doc.meta["drop_reason"] = reason
            dropped.append(doc)

    if task.k == 0:
        assert task.input is not None
        for rec in read_input(task.input, task.max_doc_bytes):
            if isinstance(rec, Quarantined):
                funnel.quarantine(rec)
                quarantined.append(rec)
                continue
            funnel.sources[rec.source]["in"] += 1
            process(rec)
    else:
        drops: dict[int, int] = {}
        if task.drops and Path(task.drops).exists():
            drops = {int(p): int(k) for p, k in np.load(task.drops, allow_pickle=False)}
        for pos, doc in enumerate(read_shard(task.prev_docs)):
            gidx = gidx_of(task.shard, pos)
            if gidx in want:
                samples[str(gidx)] = _describe(doc)
            if pos in drops:
                funnel.dropped(task.drop_step, doc.source, doc.nbytes, "duplicate")
                if task.keep_dropped:
                    doc.meta["drop_reason"] = f"{task.drop_step}:duplicate"
                    doc.meta["duplicate_of"] = drops[pos]
                    dropped.append(doc)
                continue
            funnel.passed(task.drop_step, doc.source, doc.nbytes, doc.nbytes)
            process(doc)

    write_shard(task.out_docs, kept)
    if task.global_step is not None:
        g = task.global_step
        hasher = None
        if g.type == "minhash":
            p = g.params
            hasher = MinHasher(p.ngram, p.num_perm, p.bands, p.rows, p.seed)
        keys, positions, sigs = map_keys(g.type, kept, hasher)
        write_buckets(Path(task.keys_dir), task.shard, keys, positions)
        if sigs is not None:
            write_signatures(Path(task.keys_dir), task.shard, sigs, positions)
    base = done.parent
    if dropped:
        write_shard(base / f"dropped-{task.shard:05d}.jsonl.zst", dropped)
    if quarantined:
        write_shard(base / f"quarantine-{task.shard:05d}.jsonl.zst",
                    [Document(id=q.where, text=q.sample, source=q.source, domain=q.source,
                              meta={"reason": q.reason, "where": q.where}) for q in quarantined])
    result = {"funnel": funnel.to_dict(), "n_docs": len(kept), "samples": samples}
    atomic_write_json(done, result)
    return result


# ----------------------------------------------------------------------------- held-out split

def split_heldout(docs: list[tuple[str, str, str]], dcfg) -> set[str]:
    """Per-domain held-out ids from (id, domain, group) rows. Documents sharing meta.group (one
    Bible chapter in several translations) fall on the same side, so near-duplicates do not
    leak across the split."""
    by_domain: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for doc_id, domain, group in docs:
        by_domain[domain][group].append(doc_id)
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
            held.update(groups[g])
            taken += len(groups[g])
    return held


# ----------------------------------------------------------------------------- the stage

def _input_fingerprint(inputs: list[str | Path], shards: list[InputShard]) -> tuple[list, list[Path]]:
    """Stage dirs with a manifest are identified by their outputs' checksums; other input files
    by their content, plus the kind and source name the reader takes from the file name (they
    become the documents' source and ids). Moving or touching a file does not redo the stage."""
    upstream = [Path(p) for p in inputs if (Path(p) / "manifest.json").exists()]
    files = []
    for s in shards:
        if any(Path(s.path).is_relative_to(u) for u in upstream):
            continue
        p = Path(s.path)
        content = ([[f.name, file_checksum(f)] for f in sorted(p.iterdir()) if f.is_file()] if p.is_dir()
                   else file_checksum(p))
        files.append([s.kind, s.source, content])
    return files, upstream


def _sample_docs(shards: list[InputShard], per_shard: int, max_bytes: int):
    """Normalised documents from the head of each shard: the classifier's training sample."""
    norm = Normalize("normalize", StepParams())
    for s in shards:
        n = 0
        for rec in read_input(s, max_bytes):
            if n >= per_shard:
                break
            if isinstance(rec, Document) and norm(rec) is None:
                n += 1
                yield rec


def _fit_classifiers(recipe, shards, out: Path, dcfg) -> tuple[dict[str, str], dict[str, Any]]:
    """Model folder per classifier step: a given model, or one trained now (once, resumably)."""
    dirs, infos = {}, {}
    for spec in recipe.steps:
        if spec.type != "classifier":
            continue
        p = spec.params
        if p.model:
            folder = Path(p.model)
            if not (folder / MODEL_JSON).is_file():
                raise UserError(f"recipe step {spec.name}: model {folder}: no {MODEL_JSON} there (train one with "
                                f"`gptlab data classifier train`, or leave the step's model empty to train one now)")
        else:
            folder = out / "classifier" / spec.name.replace("#", "-")
            if not (folder / MODEL_JSON).exists():
                per_shard = max(50, -(-p.max_train_docs // len(shards)))
                info = fit_for_run(p, _sample_docs(shards, per_shard, dcfg.max_doc_bytes), folder, dcfg.seed)
                if not info.get("skipped"):  # a skipped step was announced by fit_for_run
                    log(f"curate: classifier trained ({info['positives']} reference vs {info['negatives']} raw "
                        f"docs; held-out precision {info['precision']:.3f}, recall {info['recall']:.3f})")
        dirs[spec.name] = str(folder)
        infos[spec.name] = json.loads((folder / MODEL_JSON).read_text())
    return dirs, infos


def _reduce(spec, keys_dir: Path, n_shards: int, work: Path, k: int) -> dict[str, Any]:
    """A dedup step's reduce: clusters across shards → per-shard drop lists (resumable)."""
    done = work / f"reduce{k}.json"
    if done.exists():
        return json.loads(done.read_text())
    n_bands = spec.params.bands if spec.type == "minhash" else 1
    min_sim = spec.params.min_similarity if spec.type == "minhash" else None
    dup_of, stats = reduce_buckets(keys_dir, n_bands, n_shards, min_sim)
    per_shard: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for g, keeper in dup_of.items():
        per_shard[g >> 32].append((g & 0xFFFFFFFF, keeper))
    for shard in range(n_shards):
        rows = np.array(sorted(per_shard.get(shard, [])), dtype=np.int64).reshape(-1, 2)
        with atomic_path(work / f"drops{k}-{shard:05d}.npy") as tmp:
            with open(tmp, "wb") as f:
                np.save(f, rows)
    n_samples = spec.params.samples if spec.type == "minhash" else 3
    stats["largest"] = stats["largest"][:n_samples]
    atomic_write_json(done, stats)
    return stats


# Files curate writes at the top of its folder; a rerun removes a previous run's (a smaller
# rerun must not leave stale shards that the tokenizer would read with the new ones).
OWN_OUTPUTS = ("train/train-*.jsonl.zst", "train/train-*.parquet", "heldout/heldout.jsonl.zst",
               "dropped/seg*-dropped-*.jsonl.zst", "quarantine/seg*-quarantine-*.jsonl.zst")


def run_curate(dcfg: DataConfig, harvest_dir: str | Path | list, out_dir: str | Path, workers: int = 2,
               recipe: Any = None, executor: str | None = None, *, force: bool = False) -> dict:
    """Curate ``harvest_dir`` (a harvest folder, or any input paths) into ``out_dir``:
    ``train/*.jsonl.zst``, ``heldout/heldout.jsonl.zst``, ``quarantine/``, optionally
    ``dropped/``, and a manifest whose summary carries the funnel."""
    if workers < 1:
        raise UserError(f"--workers {workers}: must be >= 1")
    inputs = list(harvest_dir) if isinstance(harvest_dir, (list, tuple)) else [harvest_dir]
    recipe = load_recipe(recipe if recipe is not None else dcfg.recipe)
    executor = executor or dcfg.executor
    shards = discover(inputs)
    notices = _input_notices(shards)
    files, upstream = _input_fingerprint(inputs, shards)
    data_cfg = {k: v for k, v in section_dict(dcfg).items() if k != "executor"}  # the executor never changes results
    key = stage_key({"data": data_cfg, "recipe": recipe.to_dict(), "inputs": files}, upstream=upstream)
    with Stage(out_dir, "curate", key, force=force) as st:
        if st.complete:
            _remove_finished_work(st)
            return st.summary
        work = _prepare_work(st)
        log(f"curate: recipe {recipe.name!r} ({len(recipe.steps)} steps), {len(shards)} input shards, "
            f"executor {executor}")
        model_dirs, classifier_info = _fit_classifiers(recipe, shards, st.dir, dcfg)
        funnel = Funnel()
        for spec in recipe.steps:  # every step shows in the funnel, even one that saw no document
            funnel.step(spec.name)
        for name, info in classifier_info.items():  # a skipped classifier says why, in the funnel
            if info.get("skipped"):
                funnel.step(name)["notice"] = info["skipped"]
        final, dedup_stats = _run_segments(recipe, shards, work, model_dirs, dcfg, executor, workers, funnel)
        outputs, split = _write_splits(st, final, dcfg, funnel)
        outputs += _side_outputs(st.dir, work, bool(model_dirs))
        counts = _reconcile(funnel, split["kept_docs"])
        summary = _summarize(funnel, recipe, counts, split, upstream, executor, dedup_stats, classifier_info)
        if notices:
            summary["input_notices"] = notices
        st.done(outputs, summary, config={"data": section_dict(dcfg)})
    shutil.rmtree(work)
    log(f"curate: {counts['in_docs']} in → {counts['kept_docs']} kept, {counts['dropped_docs']} dropped, "
        f"{counts['quarantined_docs']} quarantined; {split['train_docs']} train / {split['heldout_docs']} "
        f"held out → {st.dir}")
    return summary


def _input_notices(shards: list[InputShard]) -> list[str]:
    """Inputs a user should hear about: files no reader takes (each is quarantined as
    unsupported-format) and empty files (nothing to read). Logged, and kept in the summary."""
    notices = []
    unsupported = [Path(s.path).name for s in shards if s.kind == "unsupported"]
    if unsupported:
        notices.append(f"{len(unsupported)} file(s) in an unsupported format, quarantined as unsupported-format: "
                       + ", ".join(unsupported[:10]) + (" ..." if len(unsupported) > 10 else ""))
    empty = [s.path for s in shards if s.kind != "textdir" and Path(s.path).stat().st_size == 0]
    if empty:
        notices.append(f"{len(empty)} empty input file(s), nothing read from: "
                       + ", ".join(empty[:10]) + (" ..." if len(empty) > 10 else ""))
    for n in notices:
        log(f"[yellow]curate: {n}")
    return notices


def _remove_finished_work(st: Stage) -> None:
    """A run killed after its manifest but before removing ``work/`` left it behind: the stage
    is complete, so the work folder (when it is this run's: its key matches) is removed now."""
    work = st.dir / "work"
    if st.owned and (work / "key").is_file() and (work / "key").read_text() == st.key:
        shutil.rmtree(work)


def _prepare_work(st: Stage) -> Path:
    """The resumable work folder: kept while the stage key matches; restarted, with any
    classifier trained for it, when the inputs or the recipe changed."""
    out, work = st.dir, st.dir / "work"
    if not st.owned:  # forced into a folder curate did not make: never delete what is there
        for d in (work, out / "classifier"):
            if d.exists():
                raise UserError(f"{d}: exists and curate did not write it; curate keeps its work there "
                                f"(move it away, or choose another --out)")
    if (work / "key").exists() and (work / "key").read_text() != st.key:
        shutil.rmtree(work)  # inputs or recipe changed: partial results are stale
    if (out / "classifier").exists() and not (work / "key").exists():
        shutil.rmtree(out / "classifier")
    work.mkdir(parents=True, exist_ok=True)
    atomic_write(work / "key", st.key)
    return work


def _segment_tasks(k: int, specs: tuple, prev_global, shards: list[InputShard], work: Path, want: list[int],
                   model_dirs: dict[str, str], dcfg: DataConfig) -> list[SegmentTask]:
    """Segment ``k`` over every shard: what each task reads, runs and writes."""
    doc_specs, global_spec = specs
    seg_dir, keys_dir = work / f"seg{k}", work / f"keys{k}"
    keys_dir.mkdir(parents=True, exist_ok=True)
    seg_dir.mkdir(parents=True, exist_ok=True)
    return [SegmentTask(
        k=k, shard=i, input=s if k == 0 else None,
        prev_docs=str(work / f"seg{k - 1}" / f"{i:05d}.jsonl.zst") if k else None,
        drops=str(work / f"drops{k - 1}-{i:05d}.npy") if k else None,
        drop_step=prev_global.name if prev_global else None,
        steps=doc_specs, global_step=global_spec, out_docs=str(seg_dir / f"{i:05d}.jsonl.zst"),
        keys_dir=str(keys_dir) if global_spec else None, done=str(seg_dir / f"{i:05d}.done.json"),
        model_dirs=model_dirs, keep_dropped=dcfg.keep_dropped, max_doc_bytes=dcfg.max_doc_bytes,
        want=[g for g in want if g >> 32 == i]) for i, s in enumerate(shards)]


def _run_segments(recipe, shards: list[InputShard], work: Path, model_dirs: dict[str, str], dcfg: DataConfig,
                  executor: str, workers: int, funnel: Funnel) -> tuple[list[Path], dict[str, Any]]:
    """Every segment over every shard, each dedup step's reduce between them. Returns the
    final documents' shard files and each dedup step's stats with its sample clusters."""
    segs = segments(recipe)
    prev_global, dedup_stats = None, {}
    samples: dict[str, dict] = defaultdict(dict)  # dedup step → gidx → description
    for k, (doc_specs, global_spec) in enumerate(segs):
        want = [g for cluster in dedup_stats.get(prev_global.name, {}).get("largest", [])
                for g in cluster] if prev_global else []
        tasks = _segment_tasks(k, (doc_specs, global_spec), prev_global, shards, work, want, model_dirs, dcfg)
        label = f"curate {k + 1}/{len(segs)}" + (f" → {global_spec.name}" if global_spec else "")
        results = []
        with progress_task(label, len(tasks)) as advance:
            for r in run_tasks(run_segment, tasks, executor, workers):
                results.append(r)
                advance()
        for r in results:
            funnel.merge(r["funnel"])
            if prev_global is not None:  # gidx are positions in the previous segment's output
                samples[prev_global.name].update(r["samples"])
        if global_spec is not None:
            stats = dedup_stats[global_spec.name] = _reduce(global_spec, work / f"keys{k}", len(shards), work, k)
            log(f"curate: {global_spec.name}: {stats['duplicates']} duplicates in {stats['clusters']} clusters")
        prev_global = global_spec
    # Sample clusters, described by the documents' ids and first words.
    for name, stats in dedup_stats.items():
        stats["samples"] = [[samples[name].get(str(g), {"gidx": g}) for g in cluster]
                            for cluster in stats.pop("largest", [])]
    last = len(segs) - 1
    return [work / f"seg{last}" / f"{i:05d}.jsonl.zst" for i in range(len(shards))], dedup_stats


def _write_splits(st: Stage, final: list[Path], dcfg: DataConfig, funnel: Funnel) -> tuple[list[str], dict]:
    """Final documents → held-out split and training shards, streamed. Returns the outputs
    written and the split's counts."""
    out = st.dir
    light = [(d.id, d.domain, str(d.meta.get("group", d.id))) for p in final for d in read_shard(p)]
    held = split_heldout(light, dcfg)
    if st.owned:
        for pattern in OWN_OUTPUTS:
            for stale in out.glob(pattern):
                stale.unlink()
    outputs: list[str] = []
    batch: list[Document] = []
    heldout_docs: list[Document] = []
    n = {"kept_docs": 0, "train_docs": 0, "train_bytes": 0}

    def flush() -> None:
        rel = f"train/train-{sum(1 for o in outputs if o.endswith('.jsonl.zst')):05d}"
        write_shard(out / f"{rel}.jsonl.zst", batch)
        outputs.append(f"{rel}.jsonl.zst")
        if dcfg.write_parquet:
            write_parquet(out / f"{rel}.parquet", batch)
            outputs.append(f"{rel}.parquet")
        batch.clear()

    for d in (d for p in final for d in read_shard(p)):
        n["kept_docs"] += 1
        funnel.sources[d.source]["kept"] += 1
        if d.id in held:
            if len(d.text) > dcfg.eval_max_chars_per_doc:
                d.text = d.text[:dcfg.eval_max_chars_per_doc]
                d.meta["eval_truncated"] = True
            heldout_docs.append(d)
            continue
        n["train_docs"] += 1
        n["train_bytes"] += d.nbytes
        batch.append(d)
        if len(batch) >= dcfg.docs_per_shard:
            flush()
    if batch or not outputs:
        flush()
    write_shard(out / "heldout/heldout.jsonl.zst", heldout_docs)
    outputs.append("heldout/heldout.jsonl.zst")
    n.update(heldout_docs=len(heldout_docs), heldout_bytes=sum(d.nbytes for d in heldout_docs),
             heldout_domains=dict(Counter(d.domain for d in heldout_docs)))
    return outputs, n


def _side_outputs(out: Path, work: Path, classifiers: bool) -> list[str]:
    """Dropped and quarantined documents (copied out of the work folder) and trained classifiers."""
    outputs = []
    for kind in ("dropped", "quarantine"):
        for p in sorted(work.glob(f"seg*/{kind}-*.jsonl.zst")):
            rel = f"{kind}/{p.parent.name}-{p.name}"
            (out / kind).mkdir(exist_ok=True)
            shutil.copyfile(p, out / rel)
            outputs.append(rel)
    if classifiers:
        outputs += [str(p.relative_to(out)) for p in sorted((out / "classifier").glob("*/*")) if p.is_file()]
    return outputs


def _reconcile(funnel: Funnel, kept_docs: int) -> dict[str, int]:
    """The funnel's totals; in = kept + dropped + quarantined, or curate has a bug."""
    in_docs = sum(c["in"] for c in funnel.sources.values())
    dropped = sum(c["dropped"] for c in funnel.sources.values())
    quarantined = sum(funnel.quarantined.values())
    if in_docs != kept_docs + dropped + quarantined:
        raise AssertionError(f"curate: funnel does not reconcile: {in_docs} in ≠ {kept_docs} kept + "
                             f"{dropped} dropped + {quarantined} quarantined")
    return {"in_docs": in_docs, "kept_docs": kept_docs, "dropped_docs": dropped, "quarantined_docs": quarantined}


def _summarize(funnel: Funnel, recipe, counts: dict[str, int], split: dict, upstream: list[Path], executor: str,
               dedup_stats: dict, classifier_info: dict) -> dict[str, Any]:
    """The manifest's summary: the funnel, the totals, the harvest's own summary, the split."""
    harvest = next((m["summary"] for m in map(read_manifest, upstream) if m and m.get("stage") == "harvest"), {})
    return {"funnel": funnel.to_dict([s.name for s in recipe.steps]), **counts, "harvest": harvest,
            "recipe": recipe.to_dict(), "executor": executor, "dedup": dedup_stats,
            "classifier": classifier_info,
            **{k: split[k] for k in ("train_docs", "heldout_docs", "train_bytes", "heldout_bytes", "heldout_domains")}}
