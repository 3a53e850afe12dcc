"""Data-curation throughput per core, against peers measured in the same run.

    python bench/data_throughput.py                  # harvests a >= 100 MB corpus first
    python bench/data_throughput.py --corpus DIR     # a harvest folder you already have
    python bench/data_throughput.py --setup          # first create the baseline environment

Ours (single process, CPU time, so figures are per core): Gopher quality rules, GPT-3's
classifier step, MinHash signatures + LSH (bucket files, merge, union-find), and
tokenize+pack. Baselines: datatrove's GopherQualityFilter and MinHash signature stage (its
default spaCy tokenizer and its fastest, whitespace-split configuration), text-dedup's
MinHash ``embed_func``, and raw Hugging Face ``tokenizers`` ``encode_batch``.

datatrove and text-dedup are not gptlab dependencies: they live in a separate virtual
environment (``--bench-venv``, made by ``--setup``). If it is missing, their rows say so
and our figures are still printed. The slow baselines run on the first ``--baseline-mb``
of the same corpus: throughput, not totals, is compared.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gptlab.config import load_config
from gptlab.data.classifier import QualityClassifier, train_quality_model
from gptlab.data.dedup import MinHasher, map_keys, reduce_buckets, write_buckets, write_signatures
from gptlab.data.documents import Document, read_shards, shard_paths, write_shard
from gptlab.data.recipe import load_recipe
from gptlab.manifest import atomic_write_json, write_manifest
from gptlab.pack.build import run_pack
from gptlab.sources.harvest import run_harvest
from gptlab.tokenizer import TOKENIZER_FILE, load_tokenizer, train_tokenizer

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # tokenizers on one core: a per-core figure
os.environ.setdefault("GPTLAB_PROGRESS", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

BASELINE_PACKAGES = ["datatrove[io,processing]==0.10.1", "spacy", "text-dedup"]

BASELINE_SCRIPT = r'''
import json, sys, time
import numpy as np
path, limit_mb, which = sys.argv[1], float(sys.argv[2]), sys.argv[3]
texts, used = [], 0
for line in open(path, encoding="utf-8"):
    t = json.loads(line)["text"]; texts.append(t); used += len(t.encode())
    if used >= limit_mb * 1e6: break
mb = used / 1e6
def timed(fn):
    for t in texts[:100]: fn(t)          # warm-up (spaCy load, caches)
    t0 = time.process_time()
    for t in texts: fn(t)
    return time.process_time() - t0
out = {}
def row(name, fn):
    try:
        out[name] = {"mb": mb, "docs": len(texts), "seconds": timed(fn)}
    except Exception as e:  # report, do not hide, a baseline that fails
        out[name] = {"error": f"{type(e).__name__}: {e}"}
if which == "datatrove":
    from datatrove.data import Document
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature
    from datatrove.pipeline.filters import GopherQualityFilter
    from datatrove.utils.word_tokenizers import WordTokenizer
    class SplitTok(WordTokenizer):
        def word_tokenize(self, t): return t.split()
        def sent_tokenize(self, t): return [s for s in t.split("\n") if s.strip()]
        def span_tokenize(self, t): raise NotImplementedError
    g = GopherQualityFilter()
    row("datatrove Gopher (spaCy)", lambda t: g.filter(Document(text=t, id="x")))
    gw = GopherQualityFilter(language=SplitTok())  # datatrove accepts a WordTokenizer here
    row("datatrove Gopher (whitespace)", lambda t: gw.filter(Document(text=t, id="x")))
    sig = MinhashDedupSignature(output_folder=sys.argv[4], config=MinhashConfig())
    row("datatrove MinHash sig (spaCy)", lambda t: sig.get_signature(sig.get_shingles(t)))
    sig.word_tokenizer = SplitTok()
    row("datatrove MinHash sig (whitespace)", lambda t: sig.get_signature(sig.get_shingles(t)))
else:
    from text_dedup.minhash import embed_func
    from text_dedup.utils import xxh3_32hash
    rng = np.random.RandomState(42)
    prime, maxh = np.uint64((1 << 61) - 1), np.uint32((1 << 32) - 1)
    perms = (rng.randint(1, prime, size=(112,), dtype=np.uint64), rng.randint(0, prime, size=(112,), dtype=np.uint64))
    ranges = [(i * 8, (i + 1) * 8) for i in range(14)]
    row("text-dedup MinHash (112 perms, xxh3)", lambda t: embed_func(t, 0, num_perm=112, ngram_size=5, min_length=0,
        hashranges=ranges, permutations=perms, hash_func=xxh3_32hash, dtype=np.uint64, max_hash=maxh, modulo_prime=prime))
print(json.dumps(out))
'''


def _cpu(fn) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def build_corpus(args) -> Path:
    folder = Path(args.work) / "harvest"
    cfg = load_config(None, ["data.max_mb_per_source=40", "data.max_docs_per_source=200000",
                             "data.docs_per_shard=2000"])
    run_harvest(cfg.data, folder, workers=2)
    return folder


def ours(docs, work: Path) -> dict[str, dict]:
    mb = sum(d.nbytes for d in docs) / 1e6
    out: dict[str, dict] = {}

    def fresh():
        return [Document(d.id, d.text, d.source, d.domain, {}) for d in docs]

    gopher = load_recipe({"steps": [{"type": "gopher_quality"}]}).steps[0].build()
    batch = fresh()
    out["ours Gopher quality"] = {"mb": mb, "docs": len(docs), "seconds": _cpu(lambda: [gopher(d) for d in batch])}

    ref = {"bible", "stdlib-prose"}
    pos = [d.text for d in docs if d.domain in ref or d.source in ref][:1000]
    neg = [d.text for d in docs if not (d.domain in ref or d.source in ref)][:1000]
    spec = load_recipe({"steps": [{"type": "classifier"}]}).steps[0]
    clf = QualityClassifier(spec.name, spec.params)
    clf.model = train_quality_model(pos, neg)
    batch = fresh()
    out["ours GPT-3 classifier (score + Pareto)"] = {"mb": mb, "docs": len(docs),
                                                     "seconds": _cpu(lambda: [clf(d) for d in batch])}

    with tempfile.TemporaryDirectory(dir=work) as tmp:
        h = MinHasher()

        def minhash():
            keys, positions, sigs = map_keys("minhash", docs, h)
            write_buckets(Path(tmp), 0, keys, positions)
            write_signatures(Path(tmp), 0, sigs, positions)
            dup_of, stats = reduce_buckets(Path(tmp), h.bands, 1, 0.7)
            out["_minhash_stats"] = {"duplicates": len(dup_of), "clusters": stats["clusters"]}
        out["ours MinHash sig + LSH + clusters"] = {"mb": mb, "docs": len(docs), "seconds": _cpu(minhash)}
    return out


def tokenize_pack(docs, work: Path) -> dict[str, dict]:
    """Our pack stage end to end (read shards, encode, mix, shuffle, write) vs raw encode_batch."""
    mb = sum(d.nbytes for d in docs) / 1e6
    cur, tokdir, packdir = work / "curate", work / "tokenizer", work / "pack"
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
    run_pack(cfg.pack, cur, tokdir, packdir)
    ours_s = time.perf_counter() - t0
    atomic_write_json(work / "pack-timing.json", {"raw": raw, "ours": ours_s})
    return {"ours tokenize + pack (wall, 1 thread)": {"mb": mb, "docs": len(docs), "seconds": ours_s},
            "raw tokenizers encode_batch (wall, 1 thread)": {"mb": mb, "docs": len(docs), "seconds": raw}}


def baselines(corpus_jsonl: Path, venv: Path, limit_mb: float, work: Path) -> dict[str, dict]:
    py = venv / "bin" / "python"
    if not py.exists():
        msg = f"bench environment {venv} missing (run with --setup)"
        return {n: {"error": msg} for n in ("datatrove Gopher (spaCy)", "datatrove Gopher (whitespace)",
                                            "datatrove MinHash sig (spaCy)", "datatrove MinHash sig (whitespace)",
                                            "text-dedup MinHash (112 perms, xxh3)")}
    out: dict[str, dict] = {}
    script = work / "baseline_bench.py"
    script.write_text(BASELINE_SCRIPT)
    for which in ("datatrove", "text-dedup"):
        r = subprocess.run([str(py), str(script), str(corpus_jsonl), str(limit_mb), which, str(work / "dt-sigs")],
                           capture_output=True, text=True, env={**os.environ, "HF_DATASETS_OFFLINE": "1"})
        try:
            out.update(json.loads(r.stdout.strip().splitlines()[-1]))
        except (IndexError, json.JSONDecodeError):
            out[f"{which} (all)"] = {"error": f"could not run: {(r.stderr or r.stdout).strip().splitlines()[-1:]}"}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", help="a harvest folder (default: harvest one into --work)")
    ap.add_argument("--work", default="runs/bench-data")
    ap.add_argument("--min-mb", type=float, default=100.0)
    ap.add_argument("--baseline-mb", type=float, default=20.0, help="corpus prefix the baselines run on")
    ap.add_argument("--bench-venv", default=".bench-venv")
    ap.add_argument("--setup", action="store_true", help="create the baseline environment, then run")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    venv = Path(args.bench_venv)
    if args.setup and not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *BASELINE_PACKAGES], check=False)

    folder = Path(args.corpus) if args.corpus else build_corpus(args)
    docs = list(read_shards(shard_paths(folder / "shards" if (folder / "shards").is_dir() else folder)))
    total_mb = sum(d.nbytes for d in docs) / 1e6
    print(f"corpus: {len(docs):,} documents, {total_mb:.1f} MB ({folder})")
    if total_mb < args.min_mb:
        print(f"note: corpus is below {args.min_mb:.0f} MB on this machine; figures are per MB, so still comparable")
    corpus_jsonl = work / "corpus.jsonl"
    with open(corpus_jsonl, "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps({"text": d.text}) + "\n")

    rows = ours(docs, work)
    rows.update(tokenize_pack(docs, work))
    rows.update(baselines(corpus_jsonl, venv, args.baseline_mb, work))
    mh = rows.pop("_minhash_stats")

    print(f"\n{'step':46s} {'MB':>8s} {'MB/s/core':>10s} {'docs/s/core':>12s}")
    rate = {}
    for name, r in rows.items():
        if "error" in r:
            print(f"{name:46s} {'—':>8s} {r['error']}")
            continue
        rate[name] = r["mb"] / r["seconds"]
        print(f"{name:46s} {r['mb']:8.1f} {rate[name]:10.2f} {r['docs'] / r['seconds']:12.0f}")
    print(f"\nMinHash on the whole corpus: {mh['duplicates']:,} duplicates in {mh['clusters']:,} clusters")

    def ratio(label, a, b, target):
        if a in rate and b in rate:
            x = rate[a] / rate[b]
            print(f"{label:58s} {x:6.2f}x  (target >= {target}x: {'met' if x >= target else 'NOT met'})")
        else:
            print(f"{label:58s}   n/a  (baseline unavailable)")
    print()
    fastest_dt = max((n for n in rate if n.startswith("datatrove Gopher")), key=rate.get, default="datatrove Gopher (whitespace)")
    ratio(f"Gopher: ours / {fastest_dt}", "ours Gopher quality", fastest_dt, 2)
    ratio("MinHash: ours (sig+LSH) / text-dedup (sig)", "ours MinHash sig + LSH + clusters", "text-dedup MinHash (112 perms, xxh3)", 3)
    ratio("MinHash: ours (sig+LSH) / datatrove sig (whitespace)", "ours MinHash sig + LSH + clusters", "datatrove MinHash sig (whitespace)", 1)
    ratio("tokenize+pack: ours / raw encode_batch", "ours tokenize + pack (wall, 1 thread)", "raw tokenizers encode_batch (wall, 1 thread)", 0.8)
    return 0


if __name__ == "__main__":
    sys.exit(main())
