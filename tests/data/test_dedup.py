from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
from data_corpora import jaccard, planted_corpus, shingles

from gptlab.data.dedup import (
    MinHasher,
    UnionFind,
    exact_key,
    map_keys,
    reduce_buckets,
    url_key,
    write_buckets,
    write_signatures,
)
from gptlab.data.documents import Document


def _minhash_clusters(texts: list[str], tmp: Path, n_shards: int = 3) -> dict[int, int]:
    """Run the map (per shard) and reduce halves; return {doc index: cluster root index}."""
    hasher = MinHasher(ngram=5, num_perm=112, bands=14, rows=8, seed=1)
    per = -(-len(texts) // n_shards)
    where = {}
    for s in range(n_shards):
        docs = [Document(id=str(i), text=t, source="x", domain="x") for i, t in enumerate(texts[s * per:(s + 1) * per], s * per)]
        keys, positions, sigs = map_keys("minhash", docs, hasher)
        write_buckets(tmp, s, keys, positions)
        write_signatures(tmp, s, sigs, positions)
        for p, d in enumerate(docs):
            where[(s << 32) | p] = int(d.id)
    dup_of, stats = reduce_buckets(tmp, 14, n_shards, min_similarity=0.7)
    root = {i: i for i in range(len(texts))}
    for g, keeper in dup_of.items():
        root[where[g]] = where[keeper]
    assert stats["duplicates"] == len(dup_of)
    return root


def test_minhash_finds_planted_near_duplicates_and_merges_no_dissimilar_pair(tmp_path):
    texts = planted_corpus(seed=0, n_groups=60)
    sh = [shingles(t) for t in texts]
    root = _minhash_clusters(texts, tmp_path)
    high = merged_high = 0
    for i, j in itertools.combinations(range(len(texts)), 2):
        if i // 4 != j // 4:
            continue  # documents of different groups share no 5-gram
        jac = jaccard(sh[i], sh[j])
        same = root[i] == root[j]
        if jac >= 0.85:
            high += 1
            merged_high += same
        if same:
            assert jac >= 0.5, (i, j, jac)
    assert high >= 60
    assert merged_high / high >= 0.9, (merged_high, high)
    # the keeper of every cluster is its first document in input order
    assert all(root[i] <= i for i in root)


def test_minhash_estimate_tracks_jaccard():
    texts = planted_corpus(seed=1, n_groups=10)
    h = MinHasher()
    for i in range(0, 40, 4):
        for j in range(i + 1, i + 4):
            est = float(np.mean(h.signature(texts[i]) == h.signature(texts[j])))
            assert abs(est - jaccard(shingles(texts[i]), shingles(texts[j]))) < 0.2


def test_bucket_files_are_sorted_and_sized_as_documented(tmp_path):
    texts = planted_corpus(seed=2, n_groups=5)
    h = MinHasher()
    docs = [Document(id=str(i), text=t, source="x", domain="x") for i, t in enumerate(texts)]
    keys, positions, sigs = map_keys("minhash", docs, h)
    write_buckets(tmp_path, 0, keys, positions)
    write_signatures(tmp_path, 0, sigs, positions)
    for b in range(14):
        rec = np.load(tmp_path / f"band{b:03d}-00000.npy")
        assert (np.diff(rec["key"].astype(np.float64)) >= 0).all()
    assert sigs.dtype == np.uint32 and sigs.shape == (len(texts), 112)  # 448 B/doc of signature
    assert np.load(tmp_path / "band000-00000.npy").itemsize == 16  # + 14 x 16 B/doc of buckets


def test_exact_and_url_keys_normalise():
    assert exact_key("Hello   World\n") == exact_key("hello world")
    assert exact_key("hello world") != exact_key("hello world!")
    assert url_key("https://www.Example.org/a/#top") == url_key("http://example.org/a")
    assert url_key("") is None


def test_union_find_roots_at_smallest():
    uf = UnionFind()
    uf.union(5, 9)
    uf.union(9, 2)
    uf.union(7, 8)
    assert uf.find(5) == uf.find(9) == 2 and uf.find(8) == 7 and uf.find(100) == 100
    assert 100 not in uf.parent  # looking up a singleton stores nothing
