"""Exact, URL and fuzzy (MinHash LSH) deduplication with bounded memory.

Dedup is global, so it runs in two halves around a barrier:

1. *map*, per shard: each document gets bucket keys (one for exact and URL dedup; one per
   band for MinHash) which are written as per-shard, per-band files sorted by key, next to
   the shard's MinHash signatures;
2. *reduce*: for each band, the sorted files of all shards are merged as streams (a k-way
   heap merge, as datatrove does), so memory holds one block per shard, never the corpus.
   Documents sharing a bucket are candidate pairs; MinHash candidates are confirmed by the
   full signature's Jaccard estimate, then clustered by union-find. Union-find only ever
   holds documents that have a duplicate.

Each cluster keeps its member with the smallest global index (the first in input order),
so the choice is deterministic and the same under every executor.

Disk cost per document for MinHash: num_perm x 4 bytes of signature (448 B at 112) plus
bands x 16 bytes of bucket entries (224 B at 14 bands): 672 B/doc with the defaults.
"""
from __future__ import annotations

import heapq
import itertools
import re
import string
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import xxhash

from gptlab.data.documents import Document
from gptlab.data.steps import StepParams
from gptlab.manifest import atomic_path
from gptlab.schema import bounded

BUCKET_DTYPE = np.dtype([("key", "<u8"), ("gidx", "<u8")])
# One byte-level pass: ASCII letters to lower case, ASCII punctuation to spaces.
_FOLD = bytes.maketrans(string.ascii_uppercase.encode() + string.punctuation.encode(),
                        string.ascii_lowercase.encode() + b" " * len(string.punctuation))


def gidx_of(shard: int, pos: int) -> int:
    """A document's global index: its shard, then its position. Orders documents as the input does."""
    return (shard << 32) | pos


# ----------------------------------------------------------------------------- params

@dataclass
class ExactDedupParams(StepParams):
    pass


@dataclass
class UrlDedupParams(StepParams):
    pass


@dataclass
class MinHashParams(StepParams):
    ngram: int = bounded(1, 64, default=5)
    num_perm: int = bounded(2, 4096, default=112)
    bands: int = bounded(1, 1024, default=14)
    rows: int = bounded(1, 256, default=8)
    # Candidate pairs are confirmed if the signatures agree on this share of permutations
    # (an unbiased Jaccard estimate); 14 x 8 bands put the LSH threshold near 0.72.
    min_similarity: float = bounded(0.0, 1.0, default=0.7)
    seed: int = bounded(0, 2**31 - 1, default=1)
    samples: int = bounded(0, 100, default=5)

    def check(self) -> None:
        if self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands x rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")


# ----------------------------------------------------------------------------- keys

def exact_key(text: str) -> int:
    """Exact-duplicate key: the hash of the lowercased, whitespace-collapsed text."""
    return xxhash.xxh3_64_intdigest(" ".join(text.lower().split()).encode("utf-8", "surrogatepass"))


def url_key(url: str) -> int | None:
    """URL key: scheme, 'www.', fragment and trailing slash do not make a page different."""
    u = url.strip().lower()
    if not u:
        return None
    u = re.sub(r"^[a-z]+://", "", u).split("#", 1)[0].rstrip("/")
    u = u[4:] if u.startswith("www.") else u
    return xxhash.xxh3_64_intdigest(u.encode("utf-8", "surrogatepass"))


class MinHasher:
    """MinHash signatures over word n-gram shingles, vectorised in numpy.

    Words are hashed once each (xxh3, called from C through ``map``); an n-gram's hash is a
    fixed odd-multiplier mix of its words' hashes, and permutation j is
    ``(a_j * x + b_j) mod 2^32``, all in numpy."""

    def __init__(self, ngram: int = 5, num_perm: int = 112, bands: int = 14, rows: int = 8, seed: int = 1):
        self.ngram, self.num_perm, self.bands, self.rows = ngram, num_perm, bands, rows
        g = np.random.default_rng(seed)
        self.a = (g.integers(0, 2**31, num_perm, dtype=np.uint32) << np.uint32(1)) | np.uint32(1)
        self.b = g.integers(0, 2**32, num_perm, dtype=np.uint32)
        self.mix = (g.integers(0, 2**63, ngram, dtype=np.uint64) << np.uint64(1)) | np.uint64(1)
        self.band_mix = (g.integers(0, 2**63, rows, dtype=np.uint64) << np.uint64(1)) | np.uint64(1)

    def shingles(self, text: str) -> np.ndarray:
        """Distinct n-gram hashes (uint32). Words are the lowercased text split at whitespace
        and ASCII punctuation, done on UTF-8 bytes in C: tokenization is the cost of MinHash."""
        words = text.encode("utf-8", "surrogatepass").translate(_FOLD).split()
        if not words:
            return np.zeros(0, dtype=np.uint32)
        h = np.fromiter(map(xxhash.xxh3_64_intdigest, words), dtype=np.uint64, count=len(words))
        n = min(self.ngram, len(h))  # short documents become one shingle
        m = len(h) - n + 1
        with np.errstate(over="ignore"):
            s = h[:m] * self.mix[0]
            for k in range(1, n):
                s += h[k:k + m] * self.mix[k]  # an order-sensitive mix of the n word hashes
        return np.unique((s >> np.uint64(32)).astype(np.uint32))

    def signature(self, text: str) -> np.ndarray:
        """uint32[num_perm]: per permutation j, min over shingles x of (a_j * x + b_j) mod 2^32.
        32-bit lanes are twice as many per SIMD op as 64-bit ones; tests hold the Jaccard
        estimate to the exact value. All-ones for a document without words."""
        s = self.shingles(text)
        sig = np.full(self.num_perm, 0xFFFFFFFF, dtype=np.uint32)
        block = 2048  # temporaries stay in cache
        buf = np.empty((min(block, len(s)), self.num_perm), dtype=np.uint32)
        with np.errstate(over="ignore"):
            for i in range(0, len(s), block):
                x = s[i:i + block, None]
                out = buf[:len(x)]
                np.multiply(x, self.a[None, :], out=out)
                np.add(out, self.b[None, :], out=out)
                np.minimum(sig, out.min(axis=0), out=sig)
        return sig

    def band_keys(self, sigs: np.ndarray) -> np.ndarray:
        """uint64[n_docs, bands]: one bucket key per band of ``rows`` signature values."""
        n = sigs.shape[0]
        keys = np.zeros((n, self.bands), dtype=np.uint64)
        with np.errstate(over="ignore"):
            for b in range(self.bands):
                part = sigs[:, b * self.rows:(b + 1) * self.rows].astype(np.uint64)
                k = (part * self.band_mix[None, :]).sum(axis=1, dtype=np.uint64)
                keys[:, b] = (k ^ (k >> np.uint64(31))) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(b)
        return keys


# ----------------------------------------------------------------------------- map side

def write_buckets(folder: Path, shard: int, keys: np.ndarray, positions: np.ndarray) -> None:
    """Per-band sorted (key, gidx) files for one shard. ``keys`` is [n_docs, n_bands]."""
    gidx = (np.uint64(shard) << np.uint64(32)) | positions.astype(np.uint64)
    for b in range(keys.shape[1]):
        rec = np.empty(len(gidx), dtype=BUCKET_DTYPE)
        rec["key"], rec["gidx"] = keys[:, b], gidx
        rec.sort(order=("key", "gidx"))
        with atomic_path(folder / f"band{b:03d}-{shard:05d}.npy") as tmp:
            with open(tmp, "wb") as f:
                np.save(f, rec)


def write_signatures(folder: Path, shard: int, sigs: np.ndarray, positions: np.ndarray) -> None:
    with atomic_path(folder / f"sig-{shard:05d}.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, sigs=sigs, positions=positions.astype(np.uint32))


# ----------------------------------------------------------------------------- reduce side

def _stream(path: Path, block: int = 1 << 16) -> Iterator[tuple[int, int]]:
    arr = np.load(path, mmap_mode="r", allow_pickle=False)
    for i in range(0, len(arr), block):
        chunk = np.asarray(arr[i:i + block])
        yield from zip(chunk["key"].tolist(), chunk["gidx"].tolist())


class UnionFind:
    """Disjoint sets over the documents that have a duplicate; the root is the smallest index."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        p = self.parent
        root = x
        while p.get(root, root) != root:
            root = p[root]
        while x != root:  # path compression
            p[x], x = root, p[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            lo, hi = min(ra, rb), max(ra, rb)
            self.parent[hi] = lo
            self.parent.setdefault(lo, lo)


class _Signatures:
    """Lazy per-shard signature lookup for candidate verification."""

    def __init__(self, folder: Path):
        self.folder, self.cache = folder, {}

    def get(self, gidx: int) -> np.ndarray:
        shard, pos = gidx >> 32, gidx & 0xFFFFFFFF
        if shard not in self.cache:
            with np.load(self.folder / f"sig-{shard:05d}.npz", allow_pickle=False) as z:
                sigs, positions = z["sigs"], z["positions"]
            self.cache[shard] = (sigs, {int(p): i for i, p in enumerate(positions)})
        sigs, where = self.cache[shard]
        return sigs[where[pos]]


def reduce_buckets(folder: Path, n_bands: int, n_shards: int, min_similarity: float | None) -> tuple[dict[int, int], dict]:
    """Merge sorted bucket files band by band; return {duplicate gidx: keeper gidx} and stats."""
    uf = UnionFind()
    sigs = _Signatures(folder) if min_similarity is not None else None
    candidates = confirmed = 0
    for b in range(n_bands):
        files = [folder / f"band{b:03d}-{s:05d}.npy" for s in range(n_shards)]
        merged = heapq.merge(*(_stream(f) for f in files if f.exists()))
        for _, group in itertools.groupby(merged, key=lambda r: r[0]):
            first = next(group)[1]
            for _, other in group:
                if sigs is not None:
                    if uf.find(first) == uf.find(other):
                        continue  # already joined through another band or pair
                    candidates += 1
                    if float(np.mean(sigs.get(first) == sigs.get(other))) < min_similarity:
                        continue
                    confirmed += 1
                uf.union(first, other)
    clusters: dict[int, list[int]] = {}
    for x in uf.parent:
        clusters.setdefault(uf.find(x), []).append(x)
    dup_of = {x: root for root, members in clusters.items() for x in members if x != root}
    sizes = Counter(len(m) for m in clusters.values())
    stats = {"clusters": len(clusters), "duplicates": len(dup_of),
             "cluster_sizes": {str(k): v for k, v in sorted(sizes.items())},
             "largest": [sorted(m)[:8] for _, m in sorted(clusters.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:5]]}
    if sigs is not None:
        stats.update({"candidate_pairs": candidates, "confirmed_pairs": confirmed})
    return dup_of, stats


def map_keys(kind: str, docs: list[Document], hasher: MinHasher | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(keys [n, bands], positions, signatures) for documents of one shard, by dedup kind."""
    if kind == "exact_dedup":
        keys = np.array([[exact_key(d.text)] for d in docs], dtype=np.uint64).reshape(-1, 1)
        return keys, np.arange(len(docs)), None
    if kind == "url_dedup":
        pairs = [(i, url_key(str(d.meta.get("url", "")))) for i, d in enumerate(docs)]
        pairs = [(i, k) for i, k in pairs if k is not None]  # documents without a URL cannot collide
        keys = np.array([[k] for _, k in pairs], dtype=np.uint64).reshape(-1, 1)
        return keys, np.array([i for i, _ in pairs], dtype=np.int64), None
    assert hasher is not None
    sigs = np.stack([hasher.signature(d.text) for d in docs]) if docs else np.zeros((0, hasher.num_perm), np.uint32)
    has_words = (sigs != 0xFFFFFFFF).any(axis=1) if len(docs) else np.zeros(0, bool)
    positions = np.flatnonzero(has_words)
    sigs = sigs[positions]
    return hasher.band_keys(sigs), positions, sigs
