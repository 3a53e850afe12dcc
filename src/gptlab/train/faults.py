"""Fault injection for tests and demos: ``stability.inject=poison@120,lr_spike@300,nan@400``.

A fault is tied to the *batch* the step reads in the original order, as a bad batch would
be: once the stability guard skips that batch, the fault cannot come back. The injector
works only through the loop's ordinary hook points, so the loop knows nothing of faults:

    lr_spike   on_step_start   this step's learning rate × ``lr_spike_factor`` (state.lr_scale)
    poison     on_batch        the batch replaced by uniformly random tokens
    nan        on_loss         the loss terms made NaN, so the gradients and weights follow
"""
from __future__ import annotations

import torch

from gptlab.train.config import parse_faults
from gptlab.train.hooks import ORDER_FAULTS, Hook
from gptlab.train.stability import EventLog
from gptlab.train.state import TrainState


class FaultInjector(Hook):
    """Arms a fault when the step reads the batch that the original run read at STEP.
    It runs before every other hook, so that they all see the faulty step as a real one."""
    order = ORDER_FAULTS
    runs_before = (Hook,)

    def __init__(self, spec: str, events: EventLog, vocab_size: int, lr_spike_factor: float):
        self.faults = parse_faults(spec)
        self.events, self.vocab_size, self.lr_spike_factor = events, vocab_size, lr_spike_factor
        self.targets: dict[int, str] = {}
        self.armed: str | None = None            # the fault of the current step, if any

    def on_train_start(self, state: TrainState) -> None:
        # Positions in the global order, fixed by the schedule alone (no skips). One fault
        # per position: of two at the same step, the later in the spec wins.
        self.targets = {state.batches.schedule.start(step - 1): kind for kind, step in self.faults}

    def on_step_start(self, state: TrainState) -> None:
        self.armed = self.targets.get(state.batches.position(state.step))
        if self.armed:
            self.events.write({"event": "inject", "fault": self.armed, "step": state.step + 1,
                               "position": state.batches.position(state.step)})
        if self.armed == "lr_spike":
            state.lr_scale *= self.lr_spike_factor

    def on_batch(self, state: TrainState, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.armed == "poison":
            return poison(x, y, state.step, self.vocab_size)
        return x, y

    def on_loss(self, state: TrainState, ce: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.armed == "nan":
            return ce * float("nan"), z * float("nan")
        return ce, z


def poison(x: torch.Tensor, y: torch.Tensor, step: int, vocab: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A garbage batch: uniformly random tokens, seeded by the step (so replays match)."""
    g = torch.Generator().manual_seed(step)
    return (torch.randint(0, vocab, x.shape, generator=g).to(x.device),
            torch.randint(0, vocab, y.shape, generator=g).to(y.device))
