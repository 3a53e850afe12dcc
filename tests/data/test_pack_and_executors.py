"""Packing is byte-identical across runs and executors; the mixture samples sources as configured."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from data_corpora import planted_corpus, write_jsonl

from gptlab.config import load_config
from gptlab.data.curate import run_curate
from gptlab.data.executors import init_ray
from gptlab.manifest import file_checksum, read_manifest
from gptlab.pack.build import run_pack
from gptlab.pack.packed import PackedData
from gptlab.tokenizer import run_tokenizer


def _corpus(tmp: Path, prose: list[str]) -> Path:
    near = planted_corpus(seed=4, n_groups=6)
    for k in range(3):
        rows = [{"text": t, "id": f"p{k}-{i}", "source": "prose", "domain": "prose"} for i, t in enumerate(prose[k * 8:(k + 1) * 8])]
        rows += [{"text": t, "id": f"n{k}-{i}", "source": "noise", "domain": "noise"} for i, t in enumerate(near[k * 8:(k + 1) * 8])]
        write_jsonl(tmp / "in" / f"part{k}.jsonl", rows)
    return tmp / "in"


def _tokenizer(curate_dir: Path, out: Path) -> Path:
    run_tokenizer(load_config(None, ["tokenizer.vocab_size=300"]).tokenizer, curate_dir, out)
    return out


def _checksums(folder: Path) -> dict[str, str]:
    return {p.name: file_checksum(p) for p in sorted(folder.rglob("*.jsonl.zst")) + sorted(folder.glob("*.bin"))}


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    init_ray(workers=2)  # a local Ray: num_cpus=2, no dashboard; started once for the module
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_local_and_ray_executors_give_identical_curation_and_packing(tmp_path, prose, ray_local):
    inp = _corpus(tmp_path, prose)
    cfg = load_config(None, ["data.docs_per_shard=10", "pack.seq_len=32", "pack.tokens_per_shard=2048"])
    recipe = {"steps": [{"type": "normalize"}, {"type": "gopher_repetition", "only_sources": ["prose"]},
                        {"type": "exact_dedup"}, {"type": "minhash"}, {"type": "basic", "min_chars": 10}]}
    a = run_curate(cfg.data, [inp], tmp_path / "local", workers=2, recipe=recipe, executor="local")
    b = run_curate(cfg.data, [inp], tmp_path / "ray", workers=2, recipe=recipe, executor="ray")
    assert a["funnel"] == b["funnel"] and a["in_docs"] == b["in_docs"] == 48
    assert a["dedup"]["minhash"]["duplicates"] >= 8  # planted near copies in the noise source
    assert _checksums(tmp_path / "local") == _checksums(tmp_path / "ray")
    tok = _tokenizer(tmp_path / "local", tmp_path / "tok")
    run_pack(cfg.pack, tmp_path / "local", tok, tmp_path / "pack-local")
    run_pack(cfg.pack, tmp_path / "ray", tok, tmp_path / "pack-ray")
    assert _checksums(tmp_path / "pack-local") == _checksums(tmp_path / "pack-ray")
    assert len(_checksums(tmp_path / "pack-local")) >= 2  # several token shards


def test_packing_is_byte_identical_and_mixture_follows_epochs(tmp_path, prose):
    inp = _corpus(tmp_path, prose)
    cfg = load_config(None, ["pack.seq_len=32"])
    run_curate(cfg.data, [inp], tmp_path / "cur", workers=1, recipe="dedup")
    tok = _tokenizer(tmp_path / "cur", tmp_path / "tok")
    run_pack(cfg.pack, tmp_path / "cur", tok, tmp_path / "p1")
    run_pack(cfg.pack, tmp_path / "cur", tok, tmp_path / "p2")
    assert _checksums(tmp_path / "p1") == _checksums(tmp_path / "p2")
    index = read_manifest(tmp_path / "p1")
    assert all(info["checksum"] for info in index["outputs"].values())

    mixed = load_config(None, ["pack.seq_len=32", 'pack.epochs=["prose=2.5", "noise=0.5"]'])
    s = run_pack(mixed.pack, tmp_path / "cur", tok, tmp_path / "p3")
    m = s["mixture"]
    assert m["prose"]["packed_docs"] == round(2.5 * m["prose"]["docs"])
    assert m["noise"]["packed_docs"] == round(0.5 * m["noise"]["docs"])
    weighted = load_config(None, ["pack.seq_len=32", 'pack.weights=["prose=0.75", "noise=0.25"]'])
    w = run_pack(weighted.pack, tmp_path / "cur", tok, tmp_path / "p4")["mixture"]
    share = w["prose"]["epochs"] * w["prose"]["tokens"] / (w["prose"]["epochs"] * w["prose"]["tokens"] + w["noise"]["epochs"] * w["noise"]["tokens"])
    assert share == pytest.approx(0.75, abs=0.005)  # epochs are rounded to 4 places in the summary

    data = PackedData(tmp_path / "p1")
    rows = data.sequences(np.arange(len(data)))
    assert rows.shape == (data.n_sequences, 33) and rows.dtype == np.int64
    stream = np.concatenate([np.fromfile(tmp_path / "p1" / sh["file"], dtype=data.index["dtype"])
                             for sh in data.index["shards"]])
    assert np.array_equal(rows.reshape(-1), stream.astype(np.int64))
    assert data.unigram_counts().sum() >= rows.size
