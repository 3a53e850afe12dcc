"""Fault injection lives in its hook: the loop offers neutral hook points (lr_scale, on_batch,
on_loss) and knows nothing of faults. The end-to-end behaviour is in test_stability.py."""
import dataclasses
import inspect
import json
import math
from types import SimpleNamespace

import torch

from gptlab.config import load_config
from gptlab.pack.packed import PackedData
from gptlab.train.batches import Batches, BatchSchedule
from gptlab.train.distributed import Dist
from gptlab.train.faults import FaultInjector, poison
from gptlab.train.hooks import Hook
from gptlab.train.loop import build_state, train_loop
from gptlab.train.stability import EventLog
from gptlab.train.state import TrainState

SMALL = ["model.n_layer=1", "model.n_embd=32", "model.n_head=2", "train.batch_size=4", "train.threads=1",
         "train.log_every=1000", "train.warmup_steps=0", "train.schedule=constant", "train.max_steps=4"]


def _injector(tmp_path, spec="poison@3,nan@5,lr_spike@7"):
    cfg = load_config(None, SMALL)
    batches = Batches(None, BatchSchedule(cfg.train, seq_len=8), seed=0)   # positions need no data
    state = SimpleNamespace(step=0, batches=batches, lr_scale=1.0)
    inj = FaultInjector(spec, EventLog(tmp_path / "events.jsonl"), vocab_size=50, lr_spike_factor=1000.0)
    inj.on_train_start(state)
    return inj, state


def _step(inj, state, step):
    state.step, state.lr_scale = step, 1.0
    inj.on_step_start(state)
    x, y = torch.arange(8).view(1, 8), torch.arange(1, 9).view(1, 8)
    bx, by = inj.on_batch(state, x, y)
    ce, z = inj.on_loss(state, torch.tensor(2.0), torch.tensor(0.5))
    return {"poisoned": not (bx is x and by is y), "nan": math.isnan(ce) and math.isnan(z),
            "lr_scale": state.lr_scale, "batch": (bx, by)}


def test_each_fault_acts_through_its_hook_point_at_its_step(tmp_path):
    inj, state = _injector(tmp_path)
    clean = {"poisoned": False, "nan": False, "lr_scale": 1.0}
    for step in (0, 1, 3, 5, 7):
        r = _step(inj, state, step)
        assert {k: r[k] for k in clean} == clean, step
    r = _step(inj, state, 2)                                  # poison@3: the batch step 3 reads
    assert r["poisoned"] and not r["nan"] and r["lr_scale"] == 1.0
    assert all(torch.equal(a, b) for a, b in zip(r["batch"], poison(*_step(inj, state, 0)["batch"], 2, 50)))
    r = _step(inj, state, 4)
    assert r["nan"] and not r["poisoned"] and r["lr_scale"] == 1.0
    r = _step(inj, state, 6)
    assert r["lr_scale"] == 1000.0 and not r["poisoned"] and not r["nan"]
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [(e["fault"], e["step"], e["position"]) for e in events] == [("poison", 3, 8), ("nan", 5, 16),
                                                                        ("lr_spike", 7, 24)]


def test_a_fault_is_tied_to_its_batch_not_its_step(tmp_path):
    inj, state = _injector(tmp_path, "poison@3")
    state.batches.skips.append((1, 4))          # from step 1 on, read one batch later
    assert not _step(inj, state, 2)["poisoned"]   # step 3 now reads another batch ...
    assert _step(inj, state, 1)["poisoned"]       # ... and step 2 reads the faulty one


def test_the_loop_knows_nothing_of_faults():
    fields = {f.name for f in dataclasses.fields(TrainState)}
    assert "fault" not in fields and "lr_spike_factor" not in fields
    source = inspect.getsource(train_loop)
    assert not any(word in source for word in ("fault", "poison", "spike"))


def _run(tiny_run, tmp_path, hooks):
    cfg = load_config(None, SMALL)
    data = PackedData(tiny_run / "pack")
    cfg.model.vocab_size, cfg.model.block_size = data.vocab_size, data.seq_len
    state, _ = build_state(cfg.model, cfg.train, data, Dist(), tmp_path / "checkpoints", "key", resume=False)
    rows = []

    class Rows(Hook):
        def on_step_end(self, s, m):
            rows.append(dict(m))
    train_loop(state, cfg.train, [*hooks, Rows()])
    return state, rows


class Probe(Hook):
    """Scales the lr of step 2 to zero, swaps step 3's batch, zeroes step 4's loss."""

    def on_train_start(self, state):
        self.seen, self.given = [], []
        state.model.register_forward_pre_hook(lambda module, args: self.seen.append(args[0]))

    def on_step_start(self, state):
        self.before = {k: v.clone() for k, v in state.model.state_dict().items()}
        if state.step == 1:
            state.lr_scale *= 0.0

    def on_batch(self, state, x, y):
        if state.step == 2:
            x, y = torch.zeros_like(x), torch.zeros_like(y)
        self.given.append(x)
        return x, y

    def on_loss(self, state, ce, z):
        return (ce * 0.0, z * 0.0) if state.step == 3 else (ce, z)

    def on_step_end(self, state, metrics):
        if state.step == 2:
            self.unchanged = all(torch.equal(v, self.before[k]) for k, v in state.model.state_dict().items())


def test_the_loop_applies_lr_scale_batch_and_loss_from_hooks(tiny_run, tmp_path):
    probe = Probe()
    state, rows = _run(tiny_run, tmp_path, [probe])
    lrs = [r["lr"] for r in rows]
    assert lrs[1] == 0.0 and lrs[0] == lrs[2] == lrs[3] > 0     # one step only: the loop resets lr_scale
    assert probe.unchanged                                       # lr 0: AdamW leaves the weights alone
    assert all(s is g for s, g in zip(probe.seen, probe.given))  # the model sees what on_batch returned
    assert probe.seen[2].count_nonzero() == 0
    assert rows[3]["loss"] == 0.0 and rows[3]["grad_norm"] == 0.0 and rows[2]["loss"] > 0
