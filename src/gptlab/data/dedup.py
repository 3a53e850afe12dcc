"""Exact, URL and fuzzy (MinHash LSH) deduplication with bounded memory.

Dedup is global, so it runs in two halves around a barrier:

1. *map*, per shard: each document gets bucket keys (one for exact and URL dedup; one per
   band for MinHash) which are written as per-shard, per-band files sorted by key, next to
   the shard's MinHash signatures;
2. *reduce*: for each band, the sorted files of all shards are read together one key range
   at a time (about ``block`` entries over all shards; keys are hashes, so ranges of the key
   space are even), so memory holds one block, never a shard and never the corpus.
   Documents sharing a bucket are candidate pairs; MinHash candidates are confirmed by the
   full signature's Jaccard estimate (their rows read from disk, then dropped), then
   clustered by union-find. Union-find only ever holds documents that have a duplicate.

Each cluster keeps its member with the smallest global index (the first in input order),
so the choice is deterministic and the same under every executor.

Disk cost per document for MinHash: num_perm x 4 bytes of signature (448 B at 112) plus
bands x 16 bytes of bucket entries (224 B at 14 bands): 672 B/doc with the defaults.
"""
from __future__ import annotations

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
    """One row per position of the shard (all-ones for documents without words, which have no
    buckets and are never looked up), so the reduce reads the rows it needs by position."""
    n = int(positions.max()) + 1 if len(positions) else 0
    rows = np.full((n, sigs.shape[1] if sigs.ndim == 2 else 0), 0xFFFFFFFF, dtype=np.uint32)
    rows[positions] = sigs
    with atomic_path(folder / f"sig-{shard:05d}.npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, rows)


# ----------------------------------------------------------------------------- reduce side
#
# The reduce never holds a shard, let alone the corpus. Bucket keys are hashes, so they spread
# evenly over the 64-bit key space: each band is cut into key ranges of about ``block`` entries
# in all, and a range is read from every shard's sorted file (a cursor per shard, plain reads,
# no mapping left resident), sorted, grouped and thrown away before the next. Candidate pairs
# are verified PAIR_BLOCK at a time, their signature rows read from the shards' files and
# dropped too. What stays is per shard a cursor and its chunk, and the union-find over the
# documents that have a duplicate (the answer). A bucket is never split across ranges, so one
# holding more than a block of documents (a very common exact duplicate) is held whole.

DEFAULT_BLOCK = 1 << 16  # bucket entries in memory at a time, over all shards (16 B each)
MIN_CHUNK = 256          # entries per read of one shard's file, at least (4 KB)
PAIR_BLOCK = 1024        # candidate pairs verified at a time (their signatures: <= 0.9 MB at 112 perms)


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


def _npy_header(path: Path) -> tuple[int, tuple[int, ...], np.dtype]:
    """(data offset, shape, dtype) of a .npy file, reading only its header."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(f)
        assert not fortran, path
        return f.tell(), shape, dtype


def _read_records(path: Path, offset: int, start: int, count: int) -> np.ndarray:
    """``count`` bucket entries of a band file from entry ``start``: a fresh array, no mapping."""
    return np.fromfile(path, dtype=BUCKET_DTYPE, count=count, offset=offset + start * BUCKET_DTYPE.itemsize)


class _BandCursor:
    """One shard's sorted file of one band, read forward in key order, a chunk at a time.

    The chunk read last is kept until it is used up, so each entry is read once; a chunk is
    at least MIN_CHUNK entries, so reads stay few however many shards share a range."""

    def __init__(self, path: Path):
        self.path = path
        self.offset, (self.n,), _ = _npy_header(path)  # the header only: entries are read per chunk
        self.pos = 0  # entries read from the file
        self.buf = np.empty(0, dtype=BUCKET_DTYPE)
        self.at = 0   # entries of buf already taken
        self.chunk = MIN_CHUNK  # _band_ranges sets about two ranges' worth

    def take_below(self, end: int | None) -> list[np.ndarray]:
        """The entries with key < ``end`` (all that are left for None), advancing the cursor."""
        pieces = []
        while True:
            if self.at == len(self.buf):
                if self.pos == self.n:
                    break
                count = min(self.chunk, self.n - self.pos)
                self.buf, self.at = _read_records(self.path, self.offset, self.pos, count), 0
                self.pos += count
            rest = self.buf[self.at:]
            k = len(rest) if end is None else int(np.searchsorted(rest["key"], np.uint64(end), side="left"))
            if k:
                pieces.append(rest[:k])
                self.at += k
            if self.at < len(self.buf):
                break  # the rest of this chunk belongs to a later range
        return pieces


def _band_ranges(files: list[Path], block: int) -> Iterator[np.ndarray]:
    """One band's entries of all shards, in (key, gidx) order, as arrays of about ``block``."""
    cursors = [_BandCursor(f) for f in files]
    n_ranges = max(1, -(-sum(c.n for c in cursors) // block))
    for c in cursors:
        c.chunk = max(MIN_CHUNK, 2 * -(-c.n // n_ranges))
    for i in range(n_ranges):
        end = ((i + 1) << 64) // n_ranges if i < n_ranges - 1 else None
        pieces = [p for c in cursors for p in c.take_below(end)]
        if pieces:
            rec = np.concatenate(pieces)
            del pieces
            rec.sort(order=("key", "gidx"))
            yield rec


def _candidate_pairs(rec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first, other) gidx pairs: every entry of a bucket against the bucket's first, in order."""
    keys, gidx = rec["key"], rec["gidx"]
    starts = np.ones(len(rec), dtype=bool)
    starts[1:] = keys[1:] != keys[:-1]
    group = np.cumsum(starts) - 1
    first = gidx[starts][group]
    later = ~starts
    return first[later], gidx[later]


class SignatureRows:
    """Reads the signature rows a range needs, shard by shard, and keeps none of them."""

    def __init__(self, folder: Path):
        self.folder = folder

    def read(self, shard: int, positions: np.ndarray) -> np.ndarray:
        path = self.folder / f"sig-{shard:05d}.npy"
        if not path.exists():  # written by an older version: one .npz per shard, positions inside
            with np.load(self.folder / f"sig-{shard:05d}.npz", allow_pickle=False) as z:
                sigs, where = z["sigs"], z["positions"]
            return sigs[np.searchsorted(where, positions.astype(where.dtype))]
        rows = np.load(path, mmap_mode="r", allow_pickle=False)
        out = np.array(rows[positions])  # a copy; the mapping is closed when ``rows`` goes
        del rows
        return out

    def similarity(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Share of agreeing permutations for each pair (a[i], b[i]) of gidx."""
        need = np.unique(np.concatenate([a, b]))
        shards = need >> np.uint64(32)
        sig = None
        for s in np.unique(shards).tolist():
            sel = shards == s
            rows = self.read(s, (need[sel] & np.uint64(0xFFFFFFFF)).astype(np.int64))
            if sig is None:
                sig = np.empty((len(need), rows.shape[1]), dtype=rows.dtype)
            sig[sel] = rows
        if sig is None:
            return np.zeros(0)
        ia, ib = np.searchsorted(need, a), np.searchsorted(need, b)
        agree = np.empty(len(a), dtype=np.int64)
        for i in range(0, len(a), 256):  # small temporaries
            agree[i:i + 256] = (sig[ia[i:i + 256]] == sig[ib[i:i + 256]]).sum(axis=1)
        return agree / sig.shape[1]


def reduce_buckets(folder: Path, n_bands: int, n_shards: int, min_similarity: float | None,
                   block: int = DEFAULT_BLOCK) -> tuple[dict[int, int], dict]:
    """Merge sorted bucket files band by band; return {duplicate gidx: keeper gidx} and stats.

    Memory: about ``block`` bucket entries, PAIR_BLOCK candidate pairs and their signatures
    at a time, a 4 KB chunk per shard, and the union-find over the documents that have a
    duplicate (the answer); nothing per document otherwise, never a whole shard."""
    uf = UnionFind()
    sigs = SignatureRows(folder) if min_similarity is not None else None
    candidates = confirmed = 0
    pending: list[tuple[np.ndarray, np.ndarray]] = []

    def walk() -> None:
        """Union the pending candidate pairs in order. Similarities do not depend on the
        union-find, so they are computed for all pending pairs at once (one read per shard);
        the walk makes the same decisions, in the same order, as a pair-at-a-time merge."""
        nonlocal candidates, confirmed
        first = np.concatenate([f for f, _ in pending])
        other = np.concatenate([o for _, o in pending])
        pending.clear()
        if sigs is None:
            for x, y in zip(first.tolist(), other.tolist()):
                uf.union(x, y)
            return
        for i in range(0, len(first), PAIR_BLOCK):
            f, o = first[i:i + PAIR_BLOCK], other[i:i + PAIR_BLOCK]
            for x, y, s in zip(f.tolist(), o.tolist(), sigs.similarity(f, o).tolist()):
                if uf.find(x) == uf.find(y):
                    continue  # already joined through another band or pair
                candidates += 1
                if s < min_similarity:
                    continue
                confirmed += 1
                uf.union(x, y)

    for b in range(n_bands):
        files = [f for s in range(n_shards) if (f := folder / f"band{b:03d}-{s:05d}.npy").exists()]
        n_pending = 0
        for rec in _band_ranges(files, block):
            first, other = _candidate_pairs(rec)
            del rec
            if len(first):
                pending.append((first, other))
                n_pending += len(first)
            if n_pending >= PAIR_BLOCK:  # pairs, too, are held a block at a time
                walk()
                n_pending = 0
        if pending:
            walk()
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
