import json

import numpy as np
import pytest
import torch

from gptlab.checkpoint import latest_valid
from gptlab.config import ConfigError, load_config, to_dict
from gptlab.model import GPT
from gptlab.train.batches import Batches, BatchSchedule
from gptlab.train.checkpoint import load_checkpoint, save_training_checkpoint
from gptlab.train.optim import build_optimizer


class Fake:
    seq_len = 4

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def sequences(self, idx):
        return np.repeat(np.asarray(idx)[:, None], 5, axis=1)


def sched(batch_size=4, **kw):
    t = load_config(None, [f"train.batch_size={batch_size}"]).train
    for k, v in kw.items():
        setattr(t, k, v)
    return BatchSchedule(t, seq_len=4)


def test_batch_is_a_pure_function_of_step():
    b1, b2 = Batches(Fake(10), sched(), seed=0), Batches(Fake(10), sched(), seed=0)
    assert list(b1.indices(0)) == [0, 1, 2, 3]
    # Wrapping into epoch 1 re-permutes deterministically, and order of calls does not matter.
    later = b1.indices(7)
    b2.indices(0)
    assert list(b2.indices(7)) == list(later)
    epoch1 = np.concatenate([b1.indices(s) for s in range(10, 15)])[:10]  # positions 40..49
    assert sorted(epoch1 % 10) == list(range(10))
    x, y = b1.get(0)
    assert torch.equal(x[:, 1:], y[:, :-1])


def test_checkpoint_roundtrip_and_corruption_is_skipped(tmp_path):
    cfg = load_config(None, ["model.n_layer=1", "model.n_embd=16", "model.n_head=2",
                             "model.vocab_size=50", "model.block_size=8"])
    torch.manual_seed(0)
    model = GPT(cfg.model)
    opt = build_optimizer(model, cfg.train)
    model(torch.randint(0, 50, (2, 8))).sum().backward()
    opt.step()
    for step in (1, 2, 3):
        save_training_checkpoint(tmp_path, step, model, opt, to_dict(cfg), keep=2)
    names = [p.name for p in sorted(tmp_path.iterdir())]
    assert names == ["step-00000002", "step-00000003"]
    # Truncate the newest: it must be reported and skipped.
    f = tmp_path / "step-00000003" / "model.safetensors"
    f.write_bytes(f.read_bytes()[:100])
    seen = []
    assert latest_valid(tmp_path, log=seen.append).name == "step-00000002"
    assert "step-00000003" in seen[0] and "unusable" in seen[0]
    m2 = GPT(cfg.model)
    o2 = build_optimizer(m2, cfg.train)
    state = load_checkpoint(tmp_path / "step-00000002", m2, o2)
    assert state["step"] == 2
    for a, b in zip(model.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    assert m2.lm_head.weight is m2.embed_tokens.weight          # tying survives the round trip
    s1, s2 = opt.state_dict()["state"], o2.state_dict()["state"]
    assert s1.keys() == s2.keys()
    assert all(torch.equal(s1[k]["exp_avg"], s2[k]["exp_avg"]) for k in s1)


def test_training_loss_falls_in_the_tiny_run(trained_run):
    rows = [json.loads(l) for l in (trained_run / "train" / "metrics.jsonl").read_text().splitlines()]
    first = sum(r["loss"] for r in rows[:5]) / 5
    last = sum(r["loss"] for r in rows[-5:]) / 5
    assert first - last > 0.5, (first, last)
    assert {"step", "loss", "lr", "grad_norm", "tokens_per_s"} <= set(rows[-1])
    assert [r["step"] for r in rows] == list(range(1, len(rows) + 1))


def test_linear_ramp_by_tokens_and_step_ramp():
    s = sched(batch_size=16, ramp="linear", ramp_start_batch=2, ramp_tokens=400)
    sizes = [s.size(k) for k in range(40)]
    assert sizes[0] == 2 and sizes[-1] == 16
    assert sizes == sorted(sizes)                       # grows monotonically with tokens seen
    assert s.start(5) == sum(sizes[:5])
    p = sched(batch_size=8, ramp="steps", ramp_steps=[3, 5], ramp_batches=[2, 4, 8])
    assert [p.size(k) for k in range(7)] == [2, 2, 2, 4, 4, 8, 8]
    # Ranks: sizes stay multiples of the data-parallel world.
    assert BatchSchedule(p.tcfg, 4, multiple_of=3).size(0) == 3


def test_ramp_changes_only_how_many_sequences_a_step_takes():
    """The global order never changes: concatenated batches read the same sequences."""
    flat = Batches(Fake(1000), sched(batch_size=8), seed=0)
    ramp = Batches(Fake(1000), sched(batch_size=8, ramp="steps", ramp_steps=[4], ramp_batches=[2, 8]), seed=0)
    a = np.concatenate([flat.indices(k) for k in range(3)])
    b = np.concatenate([ramp.indices(k) for k in range(7)])
    assert list(b[:24]) == list(a[:24])


def test_skip_list_moves_the_read_position():
    b = Batches(Fake(100), sched(batch_size=4), seed=0, skips=[(3, 10)])
    assert list(b.indices(2)) == [8, 9, 10, 11]
    assert list(b.indices(3)) == [22, 23, 24, 25]       # sequences 12..21 are never read


def test_bad_ramp_config_is_named():
    with pytest.raises(ConfigError, match="train.ramp_batches: needs one more entry"):
        load_config(None, ["train.ramp=steps", "train.ramp_steps=[10]", "train.ramp_batches=[4]"])
