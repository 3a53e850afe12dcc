"""Peak memory of the MinHash reduce at 1x, 10x and 100x the documents: it must stay flat.

    python bench/minhash_memory.py                       # 2,000 base documents: 2k, 20k, 200k
    python bench/minhash_memory.py --sizes 1,10 --base-docs 500

The corpus grows by repeating the base shards; every copy renames its documents' ids and
every word (``w123`` becomes ``w123c7`` in copy 7), so copies are distinct documents that
share no shingle, and the duplicates planted inside the base (1 in 100, exact copies of an
earlier document) repeat in every copy. The map half (signatures, bucket files) runs once,
here; each size's reduce runs in a fresh subprocess over the first ``size x`` shards, which
reports its peak resident memory (``VmHWM``, reset first through ``/proc/self/clear_refs``
where the kernel allows, else ``ru_maxrss``) above what it held before the reduce.

Bytes per document is that growth divided by the documents: a reduce that held anything per
document (as the old one did: signatures and a position dict, ~616 B/doc) shows it here.
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from gptlab.data.dedup import DEFAULT_BLOCK, MinHasher, map_keys, reduce_buckets, write_buckets, write_signatures  # noqa: E402
from gptlab.data.documents import Document  # noqa: E402

DUP_EVERY = 100  # one planted duplicate per this many base documents


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def child(folder: str, n_shards: int, block: int) -> None:
    """Runs one reduce and prints {"before", "peak", "seconds", ...} (bytes)."""
    before = (_status_kb("VmRSS") or 0) * 1024
    reset = False
    try:  # "5" resets the peak RSS to the current RSS (Linux >= 4.0)
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:
        pass
    t0 = time.perf_counter()
    dup_of, stats = reduce_buckets(Path(folder), 14, n_shards, 0.7, block=block)
    seconds = time.perf_counter() - t0
    hwm = _status_kb("VmHWM")
    if hwm is None or not reset:  # ru_maxrss (KiB on Linux) counts the imports too: an upper bound
        hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"before": before, "peak": hwm * 1024, "seconds": seconds, "duplicates": len(dup_of),
                      "clusters": stats["clusters"], "peak_source": "VmHWM (reset)" if reset else "ru_maxrss"}))


def base_words(n_docs: int, words: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    docs = [rng.integers(0, 1_000_000, words) for _ in range(n_docs)]
    for i in range(DUP_EVERY - 1, n_docs, DUP_EVERY):
        docs[i] = docs[i - 37]  # an exact copy of an earlier document, under another id
    return docs


def build(folder: Path, base: list[np.ndarray], copies: int, per_shard: int) -> int:
    """Map ``copies`` renamed copies of the base; returns the number of shards written."""
    hasher = MinHasher()
    shard = 0
    for c in range(copies):
        for lo in range(0, len(base), per_shard):
            docs = [Document(id=f"c{c}-d{i}", text=" ".join(f"w{w}c{c}" for w in base[i].tolist()),
                             source="bench", domain="bench") for i in range(lo, min(lo + per_shard, len(base)))]
            keys, positions, sigs = map_keys("minhash", docs, hasher)
            write_buckets(folder, shard, keys, positions)
            write_signatures(folder, shard, sigs, positions)
            shard += 1
    return shard


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1,10,100", help="multiples of the base corpus")
    ap.add_argument("--base-docs", type=int, default=2000)
    ap.add_argument("--docs-per-shard", type=int, default=1000)
    ap.add_argument("--words", type=int, default=30, help="words per document (small: the reduce is measured)")
    ap.add_argument("--block", type=int, default=4096,
                    help=f"bucket entries the reduce holds at a time (default 4,096: below the 1x corpus, so "
                         f"every size runs full blocks; the library's default is {DEFAULT_BLOCK:,})")
    ap.add_argument("--work", help="folder for the map outputs (default: a temporary one, removed)")
    ap.add_argument("--json", help="also write the rows to this JSON file")
    ap.add_argument("--child", nargs=3, metavar=("FOLDER", "SHARDS", "BLOCK"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), int(args.child[2]))
        return 0
    sizes = sorted({int(s) for s in args.sizes.split(",")})
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="minhash-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        base = base_words(args.base_docs, args.words, seed=0)
        shards_per_copy = -(-args.base_docs // args.docs_per_shard)
        build(work, base, max(sizes), args.docs_per_shard)
        print(f"map: {max(sizes) * args.base_docs:,} documents in {max(sizes) * shards_per_copy} shards, "
              f"{time.perf_counter() - t0:.0f} s")
        rows = []
        for k in sizes:
            r = subprocess.run([sys.executable, __file__, "--child", str(work), str(k * shards_per_copy), str(args.block)],
                               capture_output=True, text=True, check=True)
            m = json.loads(r.stdout.strip().splitlines()[-1])
            m.update({"copies": k, "docs": k * args.base_docs, "shards": k * shards_per_copy,
                      "growth": m["peak"] - m["before"]})
            rows.append(m)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\nMinHash reduce, block = {args.block:,} entries; peak from {rows[0]['peak_source']}")
    print(f"{'copies':>6s} {'docs':>9s} {'shards':>6s} {'dups':>6s} {'RSS before':>11s} {'peak RSS':>9s} "
          f"{'growth':>8s} {'B/doc':>7s} {'s':>6s}")
    for m in rows:
        print(f"{m['copies']:>5d}x {m['docs']:>9,d} {m['shards']:>6d} {m['duplicates']:>6,d} "
              f"{m['before'] / 1e6:>8.1f} MB {m['peak'] / 1e6:>6.1f} MB {m['growth'] / 1e6:>5.1f} MB "
              f"{m['growth'] / m['docs']:>7.1f} {m['seconds']:>6.1f}")
    first, last = rows[0], rows[-1]
    flat = last["growth"] <= 1.25 * first["growth"] + 4e6
    print(f"\npeak growth {first['growth'] / 1e6:.1f} MB at {first['copies']}x, {last['growth'] / 1e6:.1f} MB at "
          f"{last['copies']}x: {'flat' if flat else 'NOT flat'} (flat: at most 1.25x + 4 MB)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())
