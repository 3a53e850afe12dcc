"""Data-curation throughput per core, every side timed on the same mixed sample of documents.

    python bench/data_throughput.py                  # harvests a corpus first, then samples it
    python bench/data_throughput.py --corpus DIR     # a harvest folder you already have
    python bench/data_throughput.py --setup          # first create the baseline environment
    python bench/data_throughput.py --json FILE      # where the per-step figures go (plan data reads them)

The sample: ``--sample-mb`` of documents balanced by bytes across the corpus's sources (each
source shuffled with a fixed seed; a source smaller than its share is taken whole), so no
source dominates by coming first; its per-source mix is printed. Every side below runs on exactly that sample.

Ours (one process, CPU time, so figures are per core): every recipe step type on its own
(the per-step figures ``gptlab plan data`` plans with), the dedup steps split into their map
(keys, signatures, bucket files) and their reduce (merge, verification, union-find), and
tokenize+pack. Peers, each in a subprocess: datasketch (``MinHash(num_perm=112)`` fed the same
word split and 5-gram shingles, and ``MinHashLSH`` with the same 14 bands x 8 rows, candidates
confirmed at Jaccard >= 0.7 and clustered), datatrove's GopherQualityFilter and MinHash
signature stage (spaCy, and a whitespace split), text-dedup's MinHash ``embed_func``, and raw
Hugging Face ``tokenizers`` ``encode_batch``. A peer that is not installed is reported as
"skipped: not installed". Each comparison names the work it compares: signatures alone on
every side, or signatures + LSH + clusters on every side.

Peers are looked for in ``--bench-venv`` (made by ``--setup``; never gptlab's dependencies),
then in this interpreter.
"""
from __future__ import annotations

import argparse
import datetime
import heapq
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from gptlab.config import load_config
from gptlab.data.classifier import QualityClassifier, train_quality_model
from gptlab.data.dedup import MinHasher, map_keys, reduce_buckets, write_buckets, write_signatures
from gptlab.data.documents import Document, read_shards, shard_paths, write_shard
from gptlab.data.recipe import DOC_STEPS, GLOBAL_STEPS, load_recipe
from gptlab.manifest import atomic_write_json, write_manifest
from gptlab.pack.build import run_pack
from gptlab.sources.harvest import run_harvest
from gptlab.tokenizer import TOKENIZER_FILE, load_tokenizer, train_tokenizer

BASELINE_PACKAGES = ["datatrove[io,processing]==0.10.1", "spacy", "text-dedup", "datasketch", "xxhash"]
PEERS = ("datasketch", "datatrove", "text-dedup")
SIG, FULL, FILTER = "signatures", "signatures + LSH + clusters", "filter"

PEER_SCRIPT = r'''
import json, string, sys, time
path, which = sys.argv[1], sys.argv[2]
texts = [json.loads(line)["text"] for line in open(path, encoding="utf-8")]
mb = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts) / 1e6
out = {}
def timed(fn, items):
    for t in items[:50]: fn(t)          # warm-up (model loads, caches)
    t0 = time.process_time()
    res = [fn(t) for t in items]
    return time.process_time() - t0, res
def missing(e):
    name = e.name or ("spacy" if "spacy" in str(e) else str(e))
    return f"not installed ({name})"
def row(name, work, fn):
    try:
        sec, _ = timed(fn, texts)
        out[name] = {"mb": mb, "docs": len(texts), "seconds": sec, "work": work}
    except ImportError as e:
        out[name] = {"skipped": missing(e), "work": work}
    except Exception as e:  # report, do not hide, a peer that fails
        out[name] = {"error": f"{type(e).__name__}: {e}", "work": work}
def skip_all(names, e):
    for n, w in names:
        out[n] = {"skipped": missing(e), "work": w}
# gptlab's word split: ASCII letters lower-cased, ASCII punctuation to spaces, split at whitespace
FOLD = bytes.maketrans(string.ascii_uppercase.encode() + string.punctuation.encode(),
                       string.ascii_lowercase.encode() + b" " * len(string.punctuation))
def shingles(t, n=5):
    w = t.encode("utf-8", "surrogatepass").translate(FOLD).split()
    if not w: return []
    n = min(n, len(w))
    return [b" ".join(w[i:i + n]) for i in range(len(w) - n + 1)]
if which == "datasketch":
    try:
        import numpy as np
        from datasketch import MinHash, MinHashLSH
    except ImportError as e:
        skip_all([("datasketch MinHash (112 perms)", "signatures"),
                  ("datasketch MinHash + MinHashLSH + clusters", "signatures + LSH + clusters")], e)
    else:
        try:
            import xxhash
            hashfunc, hname = (lambda b: xxhash.xxh32_intdigest(b)), "xxh32"
        except ImportError:
            hashfunc, hname = None, "sha1"
        kw = {"hashfunc": hashfunc} if hashfunc else {}
        template = MinHash(num_perm=112, seed=1, **kw)
        def sig(t):
            m = MinHash(num_perm=112, permutations=template.permutations, scheme=template.scheme, **kw)
            m.update_batch(shingles(t))
            return m
        row(f"datasketch MinHash (112 perms, {hname})", "signatures", sig)
        def full():
            ms = [sig(t) for t in texts]
            lsh = MinHashLSH(num_perm=112, params=(14, 8))
            for i, m in enumerate(ms):
                lsh.insert(i, m)
            parent = {}
            def find(x):
                while parent.get(x, x) != x:
                    x = parent[x]
                return x
            for i, m in enumerate(ms):
                for j in lsh.query(m):
                    if j < i and find(i) != find(j) and m.jaccard(ms[j]) >= 0.7:
                        a, b = sorted((find(i), find(j)))
                        parent[b] = a
            return sum(1 for x in parent if parent[x] != x)
        name = f"datasketch MinHash + MinHashLSH + clusters ({hname})"
        t0 = time.process_time()
        dups = full()
        out[name] = {"mb": mb, "docs": len(texts), "seconds": time.process_time() - t0,
                     "work": "signatures + LSH + clusters", "duplicates": dups}
elif which == "datatrove":
    names = [("datatrove Gopher (spaCy)", "filter"), ("datatrove Gopher (whitespace)", "filter"),
             ("datatrove MinHash sig (spaCy)", "signatures"), ("datatrove MinHash sig (whitespace)", "signatures")]
    try:
        from datatrove.data import Document
        from datatrove.pipeline.dedup import minhash as dtm
        from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature
        from datatrove.pipeline.filters import GopherQualityFilter
        from datatrove.pipeline.filters import gopher_quality_filter as gqf
        from datatrove.utils.word_tokenizers import WordTokenizer
    except ImportError as e:
        skip_all(names, e)
    else:
        class SplitTok(WordTokenizer):
            def word_tokenize(self, t): return t.split()
            def sent_tokenize(self, t): return [s for s in t.split("\n") if s.strip()]
            def span_tokenize(self, t): raise NotImplementedError
        g = GopherQualityFilter()
        row("datatrove Gopher (spaCy)", "filter", lambda t: g.filter(Document(text=t, id="x")))
        spacy_split = gqf.split_into_words
        gqf.split_into_words = lambda text, language: text.split()  # its fastest word split
        row("datatrove Gopher (whitespace)", "filter", lambda t: g.filter(Document(text=t, id="x")))
        gqf.split_into_words = spacy_split
        def dt_sig(sig, t):  # as its run() does: a document with no n-gram gets no signature
            sh = sig.get_shingles(t)
            return sig.get_signature(sh) if sh.size else None
        def str_hash(sig):  # newer xxhash builds hash bytes only; datatrove passes str
            h = sig._hash_func
            try:
                h("probe")
            except TypeError:
                sig._hash_func = lambda s: h(s.encode("utf-8", "surrogatepass"))
            return sig
        try:
            sig = str_hash(MinhashDedupSignature(output_folder=sys.argv[3], config=MinhashConfig()))
            row("datatrove MinHash sig (spaCy)", "signatures", lambda t: dt_sig(sig, t))
        except ImportError as e:  # its constructor loads spaCy
            skip_all(names[2:3], e)
        dtm.load_word_tokenizer = lambda language: SplitTok()  # its fastest word split, no spaCy
        sigw = str_hash(MinhashDedupSignature(output_folder=sys.argv[3], config=MinhashConfig()))
        row("datatrove MinHash sig (whitespace)", "signatures", lambda t: dt_sig(sigw, t))
else:
    try:
        import numpy as np
        from text_dedup.minhash import embed_func
        from text_dedup.utils import xxh3_32hash
    except ImportError as e:
        skip_all([("text-dedup MinHash (112 perms, xxh3)", "signatures")], e)
    else:
        rng = np.random.RandomState(42)
        prime, maxh = np.uint64((1 << 61) - 1), np.uint32((1 << 32) - 1)
        perms = (rng.randint(1, prime, size=(112,), dtype=np.uint64), rng.randint(0, prime, size=(112,), dtype=np.uint64))
        ranges = [(i * 8, (i + 1) * 8) for i in range(14)]
        row("text-dedup MinHash (112 perms, xxh3)", "signatures", lambda t: embed_func(t, 0, num_perm=112, ngram_size=5,
            min_length=0, hashranges=ranges, permutations=perms, hash_func=xxh3_32hash, dtype=np.uint64,
            max_hash=maxh, modulo_prime=prime))
print(json.dumps(out))
'''


def _cpu(fn) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


# ----------------------------------------------------------------------------- corpus and sample

def build_corpus(args) -> Path:
    folder = Path(args.work) / "harvest"
    cfg = load_config(None, [f"data.max_mb_per_source={args.mb_per_source}", "data.max_docs_per_source=200000",
                             "data.docs_per_shard=2000"])
    run_harvest(cfg.data, folder, workers=2)
    return folder


def mixed_sample(docs: list[Document], mb: float, seed: int = 0) -> list[Document]:
    """About ``mb`` of documents, balanced by bytes across sources: the next document always
    comes from the source with the fewest bytes taken so far (each source in a seeded shuffled
    order), so every source is represented and none dominates by coming first."""
    by_source: dict[str, list[Document]] = defaultdict(list)
    for d in docs:
        by_source[d.source].append(d)
    rng = random.Random(seed)
    heap = []
    for k, src in enumerate(sorted(by_source)):
        rng.shuffle(by_source[src])
        heap.append((0, k, src))
    heapq.heapify(heap)
    out, used = [], 0
    while used < mb * 1e6 and heap:
        taken, k, src = heapq.heappop(heap)
        d = by_source[src].pop()
        out.append(d)
        used += d.nbytes
        if by_source[src]:
            heapq.heappush(heap, (taken + d.nbytes, k, src))
    return out


def mix_table(sample: list[Document], corpus: list[Document]) -> dict[str, dict]:
    def tally(docs):
        t: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
        for d in docs:
            t[d.source][0] += 1
            t[d.source][1] += d.nbytes / 1e6
        return t
    s, c = tally(sample), tally(corpus)
    s_mb, c_mb = sum(v[1] for v in s.values()), sum(v[1] for v in c.values())
    return {src: {"docs": int(s[src][0]), "mb": round(s[src][1], 3), "share": round(s[src][1] / s_mb, 4),
                  "corpus_share": round(c[src][1] / c_mb, 4)} for src in sorted(c, key=lambda k: -c[k][1])}


# ----------------------------------------------------------------------------- ours

def _fresh(docs):
    return [Document(d.id, d.text, d.source, d.domain, dict(d.meta)) for d in docs]


def ours(docs: list[Document], work: Path) -> tuple[dict[str, dict], dict[str, dict]]:
    """(rows for the table, per-step figures for the plan). Every step type, one at a time."""
    mb, n = sum(d.nbytes for d in docs) / 1e6, len(docs)
    rows: dict[str, dict] = {}
    steps: dict[str, dict] = {}

    def record(step, phase, seconds, label, work_kind=FILTER):
        rows[label] = {"mb": mb, "docs": n, "seconds": seconds, "work": work_kind}
        steps.setdefault(step, {})[phase] = {"mb_per_core_s": mb / seconds, "docs_per_core_s": n / seconds,
                                             "seconds": seconds}

    for step_type in DOC_STEPS:
        spec = load_recipe({"steps": [{"type": step_type}]}).steps[0]
        if step_type == "classifier":
            ref = {"bible", "stdlib-prose"}
            pos = [d.text for d in docs if d.domain in ref or d.source in ref][:1000]
            neg = [d.text for d in docs if not (d.domain in ref or d.source in ref)][:1000]
            step = QualityClassifier(spec.name, spec.params)
            step.model = train_quality_model(pos, neg)
            label = "ours GPT-3 classifier (score + Pareto)"
        else:
            step = spec.build()
            label = f"ours {step_type}"
        batch = _fresh(docs)
        try:
            record(step_type, "map", _cpu(lambda: [step(d) for d in batch]), label)
        except ImportError as e:  # langid needs py3langid (gptlab[data])
            rows[label] = {"skipped": f"not installed ({e.name or e})", "work": FILTER}

    hasher = MinHasher()
    record("minhash", "signatures", _cpu(lambda: [hasher.signature(d.text) for d in docs]),
           "ours MinHash signatures", SIG)
    for step_type in GLOBAL_STEPS:
        with tempfile.TemporaryDirectory(dir=work) as tmp:
            folder = Path(tmp)
            h = hasher if step_type == "minhash" else None

            def map_side():
                keys, positions, sigs = map_keys(step_type, docs, h)
                write_buckets(folder, 0, keys, positions)
                if sigs is not None:
                    write_signatures(folder, 0, sigs, positions)
            t_map = _cpu(map_side)
            result = {}

            def reduce_side():
                dup_of, stats = reduce_buckets(folder, h.bands if h else 1, 1, 0.7 if h else None)
                result.update(duplicates=len(dup_of), clusters=stats["clusters"])
            t_reduce = _cpu(reduce_side)
        record(step_type, "map", t_map, f"ours {step_type} map", SIG if h else FILTER)
        record(step_type, "reduce", t_reduce, f"ours {step_type} reduce", FILTER)
        steps[step_type]["duplicates"] = result["duplicates"]
        if h:
            rows["ours MinHash signatures + LSH + clusters"] = {"mb": mb, "docs": n, "seconds": t_map + t_reduce,
                                                               "work": FULL, "duplicates": result["duplicates"]}
    return rows, steps


def tokenize_pack(docs, work: Path) -> dict[str, dict]:
    """Our pack stage end to end (read shards, encode, mix, shuffle, write) vs raw encode_batch."""
    mb = sum(d.nbytes for d in docs) / 1e6
    cur, tokdir, packdir = work / "curate", work / "tokenizer", work / "pack"
    for old in (cur / "train").glob("*") if (cur / "train").is_dir() else []:
        old.unlink()
    for i in range(0, len(docs), 5000):
        write_shard(cur / "train" / f"train-{i // 5000:05d}.jsonl.zst", docs[i:i + 5000])
    write_manifest(cur, stage="curate", key="bench", outputs=[str(p.relative_to(cur)) for p in sorted((cur / "train").glob("*"))])
    if not (tokdir / TOKENIZER_FILE).exists():
        tok = train_tokenizer((d.text for d in docs[: max(1, len(docs) // 20)]), 8192)
        tokdir.mkdir(parents=True, exist_ok=True)
        tok.save(str(tokdir / TOKENIZER_FILE))
        write_manifest(tokdir, stage="tokenizer", key="bench", outputs=[TOKENIZER_FILE])
    cfg = load_config(None, ["pack.seq_len=1024"])
    texts = [d.text for d in docs]
    tok = load_tokenizer(tokdir)
    t0 = time.perf_counter()
    for i in range(0, len(texts), 512):  # the batch size pack uses; results are dropped, as memory is not the point
        tok.encode_batch(texts[i:i + 512])
    raw = time.perf_counter() - t0
    if (packdir / "manifest.json").exists():
        (packdir / "manifest.json").unlink()
    t0 = time.perf_counter()
    run_pack(cfg.pack, cur, tokdir, packdir, force=True)
    ours_s = time.perf_counter() - t0
    return {"ours tokenize + pack (wall, 1 thread)": {"mb": mb, "docs": len(docs), "seconds": ours_s, "work": "tokenize"},
            "raw tokenizers encode_batch (wall, 1 thread)": {"mb": mb, "docs": len(docs), "seconds": raw, "work": "tokenize"}}


# ----------------------------------------------------------------------------- peers

def peers(sample_jsonl: Path, venv: Path, work: Path) -> dict[str, dict]:
    """Each peer in the first interpreter that has it: the bench venv, then this one."""
    script = work / "peer_bench.py"
    script.write_text(PEER_SCRIPT)
    pythons = [p for p in (venv / "bin" / "python", Path(sys.executable)) if p.exists()]
    out: dict[str, dict] = {}
    for which in PEERS:
        got: dict[str, dict] = {}
        for py in pythons:
            r = subprocess.run([str(py), str(script), str(sample_jsonl), which, str(work / "dt-sigs")],
                               capture_output=True, text=True, env={**os.environ, "HF_DATASETS_OFFLINE": "1"})
            try:
                got = json.loads(r.stdout.strip().splitlines()[-1])
            except (IndexError, json.JSONDecodeError):
                got = {f"{which} (all)": {"error": f"could not run: {(r.stderr or r.stdout).strip().splitlines()[-1:]}"}}
            if any("skipped" not in v for v in got.values()):
                break  # this interpreter has it
        out.update(got)
    return out


# ----------------------------------------------------------------------------- report

def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "system": platform.system(),
            "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None}


def compare(rate: dict[str, float], rows: dict[str, dict]) -> list[dict]:
    """Same work on both sides only: each line names it."""
    lines = []

    def pair(work, ours_name, peer_name):
        if ours_name not in rate:
            return
        entry = {"work": work, "ours": ours_name, "peer": peer_name}
        if peer_name in rate:
            entry["ratio"] = rate[ours_name] / rate[peer_name]
        else:
            r = rows.get(peer_name, {})
            entry["unavailable"] = r.get("skipped") or r.get("error") or "not run"
        lines.append(entry)

    def named(prefix):
        return [n for n in rows if n.startswith(prefix)]
    for n in named("datasketch MinHash (") + named("datatrove MinHash sig") + named("text-dedup MinHash"):
        pair(SIG, "ours MinHash signatures", n)
    for n in named("datasketch MinHash + MinHashLSH"):
        pair(FULL, "ours MinHash signatures + LSH + clusters", n)
    for n in named("datatrove Gopher"):
        pair("Gopher quality filter", "ours gopher_quality", n)
    pair("tokenize", "ours tokenize + pack (wall, 1 thread)", "raw tokenizers encode_batch (wall, 1 thread)")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", help="a harvest folder (default: harvest one into --work)")
    ap.add_argument("--work", default="runs/bench-data")
    ap.add_argument("--mb-per-source", type=float, default=6.0, help="harvest cap per source")
    ap.add_argument("--sample-mb", type=float, default=20.0, help="size of the mixed sample every side runs on")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bench-venv", default=".bench-venv")
    ap.add_argument("--setup", action="store_true", help="create the peer environment, then run")
    ap.add_argument("--no-pack", action="store_true", help="skip tokenize + pack (it trains a tokenizer)")
    ap.add_argument("--json", default="bench/results/data_throughput.json",
                    help="per-step figures for `gptlab plan data --throughput` (default: %(default)s)")
    args = ap.parse_args()
    os.environ.setdefault("RAYON_NUM_THREADS", "1")  # tokenizers on one core: a per-core figure (set before first use)
    os.environ.setdefault("GPTLAB_PROGRESS", "0")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    venv = Path(args.bench_venv)
    if args.setup and not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *BASELINE_PACKAGES], check=False)

    folder = Path(args.corpus) if args.corpus else build_corpus(args)
    corpus = list(read_shards(shard_paths(folder / "shards" if (folder / "shards").is_dir() else folder)))
    sample = mixed_sample(corpus, args.sample_mb, args.seed)
    mb = sum(d.nbytes for d in sample) / 1e6
    print(f"corpus: {len(corpus):,} documents, {sum(d.nbytes for d in corpus) / 1e6:.1f} MB ({folder})")
    print(f"sample (every side runs on it): {len(sample):,} documents, {mb:.1f} MB, balanced by bytes over sources\n")
    mix = mix_table(sample, corpus)
    print(f"{'source':16s} {'docs':>7s} {'MB':>7s} {'sample %':>9s} {'corpus %':>9s}")
    for src, m in mix.items():
        print(f"{src:16s} {m['docs']:7,d} {m['mb']:7.2f} {100 * m['share']:8.1f}% {100 * m['corpus_share']:8.1f}%")
    sample_jsonl = work / "sample.jsonl"
    with open(sample_jsonl, "w", encoding="utf-8") as f:
        for d in sample:
            f.write(json.dumps({"id": d.id, "text": d.text}) + "\n")

    rows, steps = ours(sample, work)
    if not args.no_pack:
        rows.update(tokenize_pack(sample, work))
    rows.update(peers(sample_jsonl, venv, work))

    print(f"\n{'step':52s} {'work':28s} {'MB/s/core':>10s} {'docs/s/core':>12s}")
    rate = {}
    for name, r in rows.items():
        if "seconds" not in r:
            why = f"skipped: {r['skipped']}" if "skipped" in r else f"failed: {r.get('error')}"
            print(f"{name:52s} {r.get('work', ''):28s} {why}")
            continue
        rate[name] = r["mb"] / r["seconds"]
        extra = f"  ({r['duplicates']:,} duplicates)" if "duplicates" in r else ""
        print(f"{name:52s} {r['work']:28s} {rate[name]:10.2f} {r['docs'] / r['seconds']:12.0f}{extra}")

    lines = compare(rate, rows)
    print("\nSame work on both sides (ratio = ours / peer, MB/s per core):")
    for c in lines:
        what = f"{c['ratio']:6.2f}x" if "ratio" in c else f"   n/a  ({c['unavailable']})"
        print(f"  [{c['work']}] {c['ours']} / {c['peer']}: {what}")

    result = {"schema": 1, "date": datetime.date.today().isoformat(), "machine": machine(),
              "units": "MB of document text per CPU-second (one core); reduce figures are for one process",
              "sample": {"docs": len(sample), "mb": round(mb, 3), "how": "balanced by bytes over sources", "mix": mix},
              "steps": steps, "rows": rows, "comparisons": lines}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(Path(args.json), result)
        print(f"\nper-step figures: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
