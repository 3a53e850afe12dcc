"""Data ablations: one held-out set drawn before curation for every arm, one chain per distinct
data setting (shared between arms and seeds, reused on a rerun), one shared tokenizer, and the
planted-repeat memorisation probe."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import builders
from gptlab.data.documents import read_shard, read_shards, shard_paths
from gptlab.lab.data import PROBE_DOCS, _text_key
from gptlab.lab.runner import run_ablation
from gptlab.lab.spec import load_ablation
from gptlab.pipeline import demo_preset

ABLATION = """
[ablation]
name = "data (test)"
baseline = "plain"
plant_repeats = 2
[common]
data.sources = ["bible", "stdlib-prose", "man"]
data.max_docs_per_source = 30
data.max_mb_per_source = 0.1
train.max_steps = 4
train.batch_size = 4
train.log_every = 2
train.checkpoint_every = 4
train.eval_every = 0
train.threads = 1
[arms.plain]
data.recipe = "plain.toml"
[arms.dedup]
data.recipe = "dedup.toml"
[arms.plain_relu]
data.recipe = "plain.toml"
model.mlp = "relu"
[arms.bible]
data.recipe = "plain.toml"
data.sources = ["bible"]
[[claims]]
id = "memo"
arm = "dedup"
metric = "memorisation"
direction = "lower"
min_effect = 0.0
"""
PLAIN = 'description = "normalise only"\n[[steps]]\ntype = "normalize"\n'
DEDUP = PLAIN + '[[steps]]\ntype = "exact_dedup"\n'


@pytest.fixture
def ablation(tmp_path, monkeypatch):
    monkeypatch.setenv("GPTLAB_TENSORBOARD", "0")
    (tmp_path / "plain.toml").write_text(PLAIN)
    (tmp_path / "dedup.toml").write_text(DEDUP)
    p = tmp_path / "data.toml"
    p.write_text(ABLATION)
    return load_ablation(p, demo_preset("tiny"))


def _manifest_times(root: Path) -> dict[str, int]:
    return {str(m): m.stat().st_mtime_ns for m in root.rglob("manifest.json")}


@pytest.mark.slow
def test_data_arms_share_one_heldout_and_reuse_their_chains(ablation, tmp_path):
    out = tmp_path / "ab"
    with builders.one_thread():
        doc = run_ablation(ablation, demo_preset("tiny"), out, seeds=1)
    runs = {r["arm"]: r for r in doc["runs"]}
    chains = sorted(p.name for p in (out / "data" / "chains").iterdir())
    assert len(chains) == 3                    # plain and plain_relu share one: same data settings
    assert runs["plain"]["pack"] == runs["plain_relu"]["pack"] != runs["dedup"]["pack"]
    cfgs = {a: (out / "runs" / a / "seed-1337" / "config.toml").read_text() for a in runs}
    assert "relu" in cfgs["plain_relu"]

    split = out / "data" / "split"
    held = list(read_shard(split / "heldout" / "heldout.jsonl.zst"))
    assert held and {d.source.split("-")[0] for d in held} >= {"bible", "man"}
    # drawn before curation: in no arm's training data, under any id or as an exact copy
    held_ids, held_texts = {d.id for d in held}, {_text_key(d.text) for d in held}
    for chain in chains:
        train = list(read_shards(shard_paths(out / "data" / "chains" / chain / "train" / "train")))
        assert train and not held_ids & {d.id for d in train}
        assert not held_texts & {_text_key(d.text) for d in train}
    # every arm was scored on that one set, bible-only too (its pack has no other source)
    for arm in runs:
        ev = json.loads((out / "runs" / arm / "seed-1337" / "eval" / "eval.json").read_text())
        assert ev["overall"]["docs"] == len(held)
    assert runs["bible"]["bpb_domain_mean"] > 0 and runs["bible"]["pack_tokens"] < runs["plain"]["pack_tokens"]
    # one tokenizer for every arm: the baseline chain's, in every checkpoint
    assert len(list((out / "data" / "chains").glob("*/tokenizer/tokenizer.json"))) == 1
    assert len({next((out / "runs" / a / "seed-1337" / "train").rglob("tokenizer.json")).read_bytes()
                for a in runs}) == 1

    # planted repeats: each probe document is in the pool 1 + 2 times; exact dedup keeps one copy
    probe = list(read_shard(split / "probe-repeated" / "heldout.jsonl.zst"))
    assert 0 < len(probe) <= PROBE_DOCS
    pool = list(read_shards(shard_paths(split / "pool")))
    first = probe[0].id
    copies = [d for d in pool if d.id == first or d.id.startswith(first + "#copy")]
    assert len(copies) == 3 and sum(d.text == copies[0].text for d in copies) == 2   # one exact, one near
    dedup_train = list(read_shards(shard_paths(Path(runs["dedup"]["pack"]).parent / "train" / "train")))
    assert sum(d.id.startswith(first) for d in dedup_train) == 2      # the exact copy went, the near one stays
    assert all(r["memorisation"] == pytest.approx(r["bpb_once"] - r["bpb_repeated"]) for r in runs.values())

    # a rerun with another seed reuses every chain: no data stage runs again
    before = _manifest_times(out / "data")
    with builders.one_thread():
        again = run_ablation(ablation, demo_preset("tiny"), out, seeds=2)
    assert _manifest_times(out / "data") == before
    assert len(again["runs"]) == 8 and again["claims"][0]["seeds"] == 2

