"""The streaming MinHash/exact reduce: the same answer as the heap-merge reduce it replaced,
and memory that does not grow with the corpus (no block and no signature kept after use)."""
from __future__ import annotations

import gc
import heapq
import itertools
import json
import tracemalloc
import weakref
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from data_corpora import planted_corpus

from gptlab.data import dedup
from gptlab.data.dedup import MinHasher, UnionFind, map_keys, reduce_buckets, write_buckets, write_signatures
from gptlab.data.documents import Document


def _map(texts: list[str], folder: Path, n_shards: int, kind: str = "minhash") -> None:
    hasher = MinHasher() if kind == "minhash" else None
    per = -(-len(texts) // n_shards)
    for s in range(n_shards):
        docs = [Document(id=f"{s}-{i}", text=t, source="x", domain="x")
                for i, t in enumerate(texts[s * per:(s + 1) * per])]
        keys, positions, sigs = map_keys(kind, docs, hasher)
        write_buckets(folder, s, keys, positions)
        if sigs is not None:
            write_signatures(folder, s, sigs, positions)


def _heap_merge_reduce(folder: Path, n_bands: int, n_shards: int, min_similarity: float | None):
    """The reduce as it was: a k-way heap merge of whole streams, one candidate pair at a time,
    signatures looked up per document (and cached per shard)."""
    def stream(path):
        arr = np.load(path)
        yield from zip(arr["key"].tolist(), arr["gidx"].tolist())

    cache: dict[int, np.ndarray] = {}

    def sig(g):
        s = g >> 32
        if s not in cache:
            cache[s] = np.load(folder / f"sig-{s:05d}.npy")
        return cache[s][g & 0xFFFFFFFF]

    uf = UnionFind()
    candidates = confirmed = 0
    for b in range(n_bands):
        files = [folder / f"band{b:03d}-{s:05d}.npy" for s in range(n_shards)]
        merged = heapq.merge(*(stream(f) for f in files if f.exists()))
        for _, group in itertools.groupby(merged, key=lambda r: r[0]):
            first = next(group)[1]
            for _, other in group:
                if min_similarity is not None:
                    if uf.find(first) == uf.find(other):
                        continue
                    candidates += 1
                    if float(np.mean(sig(first) == sig(other))) < min_similarity:
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
    if min_similarity is not None:
        stats.update({"candidate_pairs": candidates, "confirmed_pairs": confirmed})
    return dup_of, stats


def _distinct_texts(n: int, seed: int) -> list[str]:
    """Random-word documents that share no 5-gram: no bucket holds two of them."""
    rng = np.random.default_rng(seed)
    return [" ".join(f"v{w}" for w in rng.integers(0, 1_000_000, 40)) for _ in range(n)]


def _as_bytes(dup_of, stats) -> bytes:
    return json.dumps([list(dup_of.items()), stats]).encode()


@pytest.mark.parametrize("block", [64, 1000, dedup.DEFAULT_BLOCK])
def test_streaming_minhash_reduce_gives_the_heap_merge_answer_byte_for_byte(tmp_path, block):
    # planted near-duplicates, plus exact copies across shards, plus a document without words
    texts = planted_corpus(seed=3, n_groups=40)
    texts += texts[:30] + ["  ...  "]
    _map(texts, tmp_path, n_shards=5)
    want = _heap_merge_reduce(tmp_path, 14, 5, 0.7)
    got = reduce_buckets(tmp_path, 14, 5, 0.7, block=block)
    assert want[1]["duplicates"] > 60 and want[1]["candidate_pairs"] > want[1]["confirmed_pairs"]
    assert _as_bytes(*got) == _as_bytes(*want)


def test_streaming_exact_reduce_gives_the_heap_merge_answer(tmp_path):
    texts = _distinct_texts(300, seed=4)
    texts = texts + texts[::3] + texts[::7]  # clusters of 2 and 3, across shards
    _map(texts, tmp_path, n_shards=4, kind="exact_dedup")
    want = _heap_merge_reduce(tmp_path, 1, 4, None)
    got = reduce_buckets(tmp_path, 1, 4, None, block=50)
    assert want[1]["duplicates"] == 100 + 43
    assert _as_bytes(*got) == _as_bytes(*want)


def test_reduce_frees_each_shards_block_after_use(tmp_path, monkeypatch):
    texts = planted_corpus(seed=5, n_groups=50)
    n_shards = 4
    _map(texts, tmp_path, n_shards)
    blocks: list[weakref.ref] = []
    rows: list[weakref.ref] = []
    alive_blocks: list[int] = []
    alive_rows: list[int] = []
    read_records, read_rows = dedup._read_records, dedup.SignatureRows.read

    # numpy arrays hold no cycles: reference counting frees them at once, no gc.collect needed
    def spy_records(*a):
        alive_blocks.append(sum(r() is not None for r in blocks))
        out = read_records(*a)
        blocks.append(weakref.ref(out))
        return out

    def spy_rows(self, *a):
        alive_rows.append(sum(r() is not None for r in rows))
        out = read_rows(self, *a)
        rows.append(weakref.ref(out))
        return out

    monkeypatch.setattr(dedup, "MIN_CHUNK", 16)  # many small reads per shard
    monkeypatch.setattr(dedup, "_read_records", spy_records)
    monkeypatch.setattr(dedup.SignatureRows, "read", spy_rows)
    reduce_buckets(tmp_path, 14, n_shards, 0.7, block=40)
    gc.collect()
    assert len(blocks) >= 2 * 14 * n_shards and len(rows) > 14  # several reads per shard and band
    # while a range is read, only that range's blocks (at most ~2 per shard) are alive
    assert max(alive_blocks) <= 2 * n_shards, max(alive_blocks)
    assert max(alive_rows) <= 1  # signature rows: the previous shard's rows are gone
    assert all(r() is None for r in blocks + rows)


def _traced_peak(folder: Path, n_shards: int) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        reduce_buckets(folder, 14, n_shards, 0.7, block=256)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_reduce_peak_memory_does_not_grow_with_the_corpus(tmp_path):
    small, large = tmp_path / "small", tmp_path / "large"
    small.mkdir()
    large.mkdir()
    _map(_distinct_texts(400, seed=6), small, n_shards=4)
    _map(_distinct_texts(3200, seed=7), large, n_shards=4)
    p_small, p_large = _traced_peak(small, 4), _traced_peak(large, 4)
    # 8x the documents; holding signatures (448 B/doc) alone would add ~1.4 MB
    assert p_large < 1.5 * p_small + 64_000, (p_small, p_large)


def test_reduce_reads_signatures_written_by_the_previous_format(tmp_path):
    """A run resumed across the upgrade: map outputs with sig-NNNNN.npz (signatures of the
    documents with words, and their positions) still reduce to the same answer."""
    texts = planted_corpus(seed=8, n_groups=20) + ["", "..."]
    _map(texts, tmp_path, n_shards=2)
    want = reduce_buckets(tmp_path, 14, 2, 0.7)
    for s in range(2):
        rows = np.load(tmp_path / f"sig-{s:05d}.npy")
        positions = np.flatnonzero((rows != 0xFFFFFFFF).any(axis=1)).astype(np.uint32)
        np.savez(tmp_path / f"sig-{s:05d}.npz", sigs=rows[positions], positions=positions)
        (tmp_path / f"sig-{s:05d}.npy").unlink()
    assert want[1]["confirmed_pairs"] > 0
    assert _as_bytes(*reduce_buckets(tmp_path, 14, 2, 0.7)) == _as_bytes(*want)
