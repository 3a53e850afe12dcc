"""The stability guard: detect a loss spike, roll back, skip the offending batches, go on.

PaLM's recipe, automated. When a detector confirms a spike whose onset is step s, the
guard restores the newest snapshot taken at least ``rollback_steps`` before s, adds a
window of ``skip_batches`` batches to the skip list (so those sequences of the fixed
global order are never read again), and continues with the hyperparameters unchanged —
never OPT's mid-flight edits. Snapshots live in an in-memory ring (cheap, frequent);
after a restart the on-disk checkpoints serve for targets older than the restart. Rollbacks
have a budget: past ``max_rollbacks`` within ``budget_window`` steps the run stops with a
report instead of looping. Every event goes to ``events.jsonl`` and TensorBoard.

Each checkpoint carries the guard's detector windows, rollback budget and arming, so a
resumed run judges every step as the uninterrupted run would. One difference remains: a
spike within ``rollback_steps`` of the restart wants a snapshot older than the restart,
which only the uninterrupted run still holds in memory; the resumed run then rolls back to
the newest checkpoint before it (an older point, the same recovery).

Faults to test it with are injected by :mod:`gptlab.train.faults`.
"""
from __future__ import annotations

import copy
import json
import math
import statistics
from collections import deque
from pathlib import Path
from typing import Any

import torch

from gptlab.checkpoint import PREFIX, _unflatten_optimizer, list_checkpoints, load_tensors, load_weights
from gptlab.faultpoint import kill_point
from gptlab.manifest import verify
from gptlab.train.distributed import full_state, load_full_state
from gptlab.train.hooks import ORDER_GUARD, CheckpointHook, EvalHook, Hook
from gptlab.train.state import TrainState

# ----------------------------------------------------------------------------- detectors

class RobustSpike:
    """value > median + k·1.4826·MAD (over a trailing window) and beyond an absolute margin."""

    def __init__(self, name: str, key: str, k: float, window: int, min_delta: float = 0.0,
                 min_ratio: float = 1.0):
        self.name, self.key, self.k = name, key, k
        self.min_delta, self.min_ratio = min_delta, min_ratio
        self.values: deque[float] = deque(maxlen=window)

    def check(self, m: dict[str, Any]) -> dict | None:
        v = m.get(self.key)
        if v is None or not math.isfinite(v) or len(self.values) < max(5, self.values.maxlen // 2):
            return None
        med = statistics.median(self.values)
        mad = statistics.median(abs(x - med) for x in self.values) * 1.4826
        threshold = max(med + self.k * mad, med + self.min_delta, med * self.min_ratio)
        if v > threshold:
            return {"detector": self.name, "value": v, "threshold": threshold, "median": med}
        return None

    def accept(self, m: dict[str, Any]) -> None:
        v = m.get(self.key)
        if v is not None and math.isfinite(v):
            self.values.append(v)


def nonfinite(m: dict[str, Any]) -> dict | None:
    for key in ("loss", "grad_norm"):
        if not math.isfinite(m.get(key, 0.0)):
            return {"detector": f"nonfinite-{key}", "value": str(m[key])}
    return None


# ----------------------------------------------------------------------------- the guard

class EventLog:
    def __init__(self, path: Path | None, writer_source=None):
        self.path, self.writer_source = path, writer_source

    def write(self, event: dict[str, Any]) -> None:
        if self.path is None:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(event) + "\n")
        writer = getattr(self.writer_source, "writer", None) if self.writer_source else None
        if writer is not None and "step" in event:
            writer.add_text("stability/events", json.dumps(event), event["step"])
            if event["event"] == "rollback":
                writer.add_scalar("stability/rollback_to", event["to_step"], event["step"])


class StabilityGuard(Hook):
    """Judges each step's finished metrics (so it runs after the hooks that add to them) and
    may roll the step back (so before the checkpoint, which must not save such a step)."""
    order = ORDER_GUARD
    runs_after = (EvalHook,)
    runs_before = (CheckpointHook,)

    def __init__(self, scfg, events: EventLog, checkpoint_dir: Path | None = None, log=print):
        self.cfg, self.events, self.checkpoint_dir, self.log = scfg, events, checkpoint_dir, log
        self.detectors = []
        if scfg.loss_k:
            self.detectors.append(RobustSpike("loss-spike", "loss", scfg.loss_k, scfg.window, scfg.loss_min_delta))
        if scfg.grad_k:
            self.detectors.append(RobustSpike("grad-spike", "grad_norm", scfg.grad_k, scfg.window,
                                              min_ratio=scfg.grad_min_ratio))
        self.ring: deque[dict[str, Any]] = deque()
        self.rollbacks: list[int] = []
        self.armed_at = scfg.warmup
        self.pending: int | None = None          # a spike step we have not yet passed again

    # -- snapshots
    def _snapshot(self, state: TrainState) -> None:
        model_sd, optim_sd = full_state(state.model, state.optimizer, state.dist)
        snap = {"step": state.step, "model": copy.deepcopy(model_sd), "optim": copy.deepcopy(optim_sd),
                "rng": torch.get_rng_state(), "scaler": copy.deepcopy(state.scaler.state_dict()),
                "windows": [list(d.values) for d in self.detectors]}
        self.ring.append(snap)
        keep = self.cfg.rollback_steps // self.cfg.snapshot_every + 2
        while len(self.ring) > keep:
            self.ring.popleft()

    # -- what a checkpoint carries, so that a resumed run judges every step as the uninterrupted one
    def _checkpoint_state(self) -> dict[str, Any]:
        return {"windows": [list(d.values) for d in self.detectors], "rollbacks": list(self.rollbacks),
                "armed_at": self.armed_at, "pending": self.pending}

    def _resumed_state(self, step: int) -> dict[str, Any] | None:
        """The guard state saved in the checkpoint this run resumed from (the loop verified it)."""
        if not step or self.checkpoint_dir is None:
            return None
        path = self.checkpoint_dir / f"{PREFIX}{step:08d}" / "state.json"
        try:
            return json.loads(path.read_text()).get("guard")
        except (OSError, ValueError) as e:
            self.log(f"[yellow]stability: no guard state in {path} ({e}); the detector windows refill")
            return None

    def on_train_start(self, state: TrainState) -> None:
        saved = self._resumed_state(state.step)
        if saved is not None:
            # Detector windows, rollback budget, arming and the pending spike as they were at the
            # checkpoint: without them a resumed run would not judge a spike soon after the
            # restart (its windows too short to arm), and would diverge from the uninterrupted run.
            for d, vals in zip(self.detectors, saved["windows"]):
                d.values.clear()
                d.values.extend(vals)
            self.rollbacks, self.armed_at, self.pending = list(saved["rollbacks"]), saved["armed_at"], saved["pending"]
        else:
            # An older checkpoint without guard state: the windows refill, so hold off a little.
            self.armed_at = max(self.armed_at, state.step + min(self.cfg.warmup, self.cfg.cooldown))
        self._snapshot(state)
        state.checkpoint_extra["guard"] = self._checkpoint_state()

    def on_step_end(self, state: TrainState, m: dict[str, Any]) -> None:
        self._judge(state, m)
        # The checkpoint hook runs after the guard: it saves the state this step left.
        state.checkpoint_extra["guard"] = self._checkpoint_state()

    def _judge(self, state: TrainState, m: dict[str, Any]) -> None:
        if state.overflow_skipped:
            # fp16: the gradients overflowed, the loss scaler skipped the step (the weights are
            # the previous step's) and lowered its scale. That is the scaler's business: rolling
            # back would restore the old, too-high scale and replay the same overflow. The step
            # feeds no detector window (its grad norm is inf); once the scale is at its floor
            # the loop stops calling it the scaler's, and the guard judges it as usual.
            if state.step % self.cfg.snapshot_every == 0:
                self._snapshot(state)
            return
        if self.pending is not None and state.step > self.pending and nonfinite(m) is None:
            self.events.write({"event": "recovered", "step": state.step, "loss": m["loss"],
                               "spike_step": self.pending})
            self.pending = None
        hit = nonfinite(m)
        if hit is None and state.step > self.armed_at:
            hit = next((h for h in (d.check(m) for d in self.detectors) if h), None)
        if hit is None:
            for d in self.detectors:
                d.accept(m)
            if state.step % self.cfg.snapshot_every == 0:
                self._snapshot(state)
            return
        self._recover(state, state.step, hit)

    # -- the policy
    def _target(self, onset: int) -> dict[str, Any] | None:
        """The newest snapshot at least rollback_steps before the onset; failing that a disk
        checkpoint; failing that (a short run) the oldest snapshot before the onset."""
        wanted = onset - self.cfg.rollback_steps
        fits = [s for s in self.ring if s["step"] <= wanted]
        if fits:
            return fits[-1]
        disk = self._from_disk(wanted)
        if disk is not None:
            return disk
        older = [s for s in self.ring if s["step"] < onset]
        return older[0] if older else None

    def _from_disk(self, wanted: int) -> dict[str, Any] | None:
        for ck in reversed(list_checkpoints(self.checkpoint_dir) if self.checkpoint_dir else []):
            st = json.loads((ck / "state.json").read_text())
            if st["step"] <= wanted and verify(ck)[0]:
                rng = load_tensors(ck / "rng.safetensors")["torch"]
                return {"step": st["step"], "model": load_weights(ck / "model.safetensors"),
                        "optim": _unflatten_optimizer(load_tensors(ck / "optimizer.safetensors"), st["optimizer"]),
                        "rng": rng, "scaler": st.get("scaler"), "windows": st.get("guard", {}).get("windows"),
                        "source": ck.name}
        return None

    def _restore(self, state: TrainState, target: dict[str, Any]) -> None:
        """Weights, optimizer, RNG, loss scale and detector windows as they were at the target."""
        # A copy of the optimizer state: loading it aliases its tensors (same dtype and device),
        # and the next steps would update the snapshot in place, so that a second rollback to
        # the same snapshot restored a state the spike had already written into.
        load_full_state(state.model, state.optimizer, target["model"], copy.deepcopy(target["optim"]))
        torch.set_rng_state(target["rng"])
        if target.get("scaler") and state.scaler.is_enabled():
            state.scaler.load_state_dict(target["scaler"])
        if target.get("windows") is not None:
            for d, vals in zip(self.detectors, target["windows"]):
                d.values.clear()
                d.values.extend(vals)

    def _recover(self, state: TrainState, step: int, hit: dict[str, Any]) -> None:
        c = self.cfg
        self.events.write({"event": "detect", "step": step, **hit})
        self.rollbacks = [s for s in self.rollbacks if s > step - c.budget_window] + [step]
        target = self._target(step)
        if len(self.rollbacks) > c.max_rollbacks:
            state.stop = True
            state.stop_reason = (f"{len(self.rollbacks)} spikes within {c.budget_window} steps "
                                 f"(budget {c.max_rollbacks}); last: {hit['detector']} at step {step}")
            # Stop on the last good state, not the spiked one, so that the run can checkpoint it.
            if target is not None:
                self._restore(state, target)
                state.step, state.stop_restored = target["step"], True
            # The checkpoint saved at the stop carries an empty budget: a rerun of a stopped run
            # (after looking at it) starts with a fresh one.
            self.rollbacks = []
            self.events.write({"event": "budget-exhausted", "step": step, "reason": state.stop_reason,
                               **({"restored_to": target["step"]} if target is not None else {})})
            return
        if target is None:
            state.stop = True
            state.stop_reason = f"spike at step {step} and no snapshot or checkpoint to roll back to"
            self.events.write({"event": "no-rollback-target", "step": step})
            return
        self._restore(state, target)
        kill_point("rollback")
        to_step = target["step"]
        # The skipped window: skip_batches batches starting skip_lead batches before the onset
        # (by default right at the rollback point, as PaLM did).
        start = to_step if c.skip_lead < 0 else max(to_step, step - 1 - c.skip_lead)
        # The window always reaches through the batch of the detecting step, so the batches
        # seen during the spike are never replayed, however small skip_batches is.
        n_batches = max(c.skip_batches, step - start)
        b = state.batches
        first = b.position(start)
        n_seq = b.schedule.start(start + n_batches) - b.schedule.start(start)
        b.skips.append((start, n_seq))
        state.step = to_step
        self.ring = deque(s for s in self.ring if s["step"] <= to_step)
        self.armed_at = to_step + c.cooldown
        self.pending = step
        self.events.write({"event": "rollback", "step": step, "to_step": to_step,
                           "source": target.get("source", "memory"), "detector": hit["detector"]})
        self.events.write({"event": "skip", "step": step, "from_step": start, "batches": n_batches,
                           "sequences": [first, first + n_seq],
                           "why": f"batches read from step {start + 1} on were seen before or during the spike"})
        self.log(f"[yellow]stability: {hit['detector']} at step {step}; rolled back to step {to_step}, "
                 f"skipping {n_batches} batches (sequences {first}..{first + n_seq - 1})")
