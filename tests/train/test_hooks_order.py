"""Hook order: train_loop runs hooks by their ``order``, whatever the list's order, and refuses
an order that breaks a declared dependency."""
import random

import pytest

from gptlab.config import load_config
from gptlab.pack.packed import PackedData
from gptlab.train.distributed import Dist
from gptlab.train.faults import FaultInjector
from gptlab.train.hooks import (
    ORDER_CHECKPOINT,
    ORDER_EVAL,
    ORDER_EXTRA,
    ORDER_GUARD,
    ORDER_METRICS,
    CheckpointHook,
    EvalHook,
    Hook,
    HookOrderError,
    MetricsHook,
    ProgressHook,
    sort_hooks,
)
from gptlab.train.loop import build_hooks, build_state, train_loop
from gptlab.train.stability import EventLog, StabilityGuard

SMALL = ["model.n_layer=1", "model.n_embd=32", "model.n_head=2", "train.batch_size=4", "train.threads=1",
         "train.log_every=1000", "train.warmup_steps=0", "train.max_steps=2",
         "stability.inject=nan@5"]


def _cfg(extra=()):
    return load_config(None, SMALL + list(extra))


def _state(pack, tmp_path, cfg):
    data = PackedData(pack)
    cfg.model.vocab_size, cfg.model.block_size = data.vocab_size, data.seq_len
    state, _ = build_state(cfg.model, cfg.train, data, Dist(), tmp_path / "checkpoints", "key", resume=False)
    return state


class Recorder(Hook):
    def __init__(self, name, order, calls):
        self.name, self.order, self.calls = name, order, calls

    def on_train_start(self, state):
        self.calls.append(("train_start", self.name))

    def on_step_start(self, state):
        self.calls.append(("step_start", self.name))

    def on_batch(self, state, x, y):
        self.calls.append(("batch", self.name))
        return x, y

    def on_loss(self, state, ce, z):
        self.calls.append(("loss", self.name))
        return ce, z

    def on_step_end(self, state, metrics):
        self.calls.append(("step_end", self.name))

    def on_train_end(self, state):
        self.calls.append(("train_end", self.name))


def test_shuffled_hooks_are_called_in_the_same_order(tiny_run, tmp_path):
    orders = {"late": 900, "guard": ORDER_GUARD, "metrics": ORDER_METRICS, "extra": ORDER_EXTRA,
              "eval": ORDER_EVAL, "first": -5}
    sequences = []
    for seed in range(3):
        calls = []
        hooks = [Recorder(name, order, calls) for name, order in orders.items()]
        random.Random(seed).shuffle(hooks)
        train_loop(_state(tiny_run / "pack", tmp_path / str(seed), _cfg()), _cfg().train, hooks)
        sequences.append(calls)
    assert sequences[0] == sequences[1] == sequences[2]
    expected = ["first", "eval", "extra", "metrics", "guard", "late"]
    step_end = [name for event, name in sequences[0] if event == "step_end"]
    assert step_end == expected * 2                       # two steps
    for event in ("train_start", "step_start", "batch", "loss", "train_end"):
        assert [n for e, n in sequences[0] if e == event][:6] == expected, event


def test_equal_orders_keep_the_given_order():
    a, b = Recorder("a", ORDER_EXTRA, []), Recorder("b", ORDER_EXTRA, [])
    assert sort_hooks([a, b]) == [a, b] and sort_hooks([b, a]) == [b, a]


def test_run_hooks_sort_into_the_documented_table(tiny_run, tmp_path):
    cfg = _cfg(["train.eval_every=1"])
    state = _state(tiny_run / "pack", tmp_path, cfg)
    extra = Recorder("mine", ORDER_EXTRA, [])
    hooks = build_hooks(cfg.train, cfg.stability, tmp_path, state, {}, "key", None,
                        lambda model: {}, [extra], cfg.model.vocab_size)
    random.Random(0).shuffle(hooks)
    kinds = [type(h) for h in sort_hooks(hooks)]
    assert kinds == [FaultInjector, EvalHook, Recorder, MetricsHook, ProgressHook, StabilityGuard, CheckpointHook]


def _guard():
    return StabilityGuard(load_config(None, []).stability, EventLog(None))


def _checkpoint(cls=CheckpointHook):
    return cls(None, 1, 1, 1, {}, None)


def test_a_checkpoint_ordered_before_the_guard_is_refused(tiny_run, tmp_path):
    class EarlyCheckpoint(CheckpointHook):
        order = ORDER_GUARD - 1

    with pytest.raises(HookOrderError, match=r"EarlyCheckpoint \(order 399\) must run after StabilityGuard "
                                             r"\(order 400\)"):
        sort_hooks([_checkpoint(EarlyCheckpoint), _guard()])
    # train_loop checks before anything runs.
    calls = []
    with pytest.raises(HookOrderError):
        train_loop(_state(tiny_run / "pack", tmp_path, _cfg()), _cfg().train,
                   [Recorder("r", 0, calls), _guard(), _checkpoint(EarlyCheckpoint)])
    assert calls == []
    # A dependency binds only when both sides are there; the right order passes.
    assert sort_hooks([_checkpoint(EarlyCheckpoint)])
    assert [type(h) for h in sort_hooks([_checkpoint(), _guard()])] == [StabilityGuard, CheckpointHook]
    assert ORDER_GUARD < ORDER_CHECKPOINT


def test_other_broken_dependencies_are_refused(tmp_path):
    class LateEval(EvalHook):
        order = ORDER_METRICS + 1

    class AfterGuardEval(EvalHook):
        order = ORDER_GUARD + 1
        runs_before = ()

    metrics = MetricsHook(tmp_path)
    with pytest.raises(HookOrderError, match="MetricsHook .* must run after LateEval"):
        sort_hooks([metrics, LateEval(1, None, metrics)])
    with pytest.raises(HookOrderError, match="StabilityGuard .* must run after AfterGuardEval"):
        sort_hooks([_guard(), AfterGuardEval(1, None, None)])
    injector = FaultInjector("nan@3", EventLog(None), 16, 10.0)
    with pytest.raises(HookOrderError, match="Recorder \\(order -1\\) must run after FaultInjector"):
        sort_hooks([injector, Recorder("too-early", -1, [])])
    with pytest.raises(TypeError, match="integer `order`"):
        sort_hooks([Recorder("x", 1.5, [])])
