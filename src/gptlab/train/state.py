"""What the training loop and its hooks share: one mutable record, built once per run.

A module of its own so that the loop, the hooks and the stability guard can all name it
without importing each other.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from gptlab.train.batches import Batches
from gptlab.train.distributed import Dist


@dataclass
class TrainState:
    """Everything the loop and its hooks share. Hooks may roll ``step`` back, extend the
    skip list of ``batches``, scale this step's learning rate through ``lr_scale``, or set
    ``stop`` (with a reason) to end the run."""
    step: int                                   # optimizer steps taken so far
    model: torch.nn.Module                      # as wrapped for the run (DDP, FSDP or the bare model)
    optimizer: torch.optim.Optimizer
    batches: Batches                            # batch(step), a pure function of the step and skip list
    dist: Dist
    device: torch.device
    scaler: torch.amp.GradScaler                # enabled for fp16 only; a no-op otherwise
    autocast: contextlib.AbstractContextManager  # entered around every forward pass
    lr_at: Callable[[int], float]               # the schedule: step → learning rate
    seq_len: int
    precision: str = "fp32"
    flops_per_token: float = 0.0
    peak_flops: float | None = None
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None   # torch.compile(model), when compiling
    # The loop resets this to 1 before every step's on_step_start and multiplies the
    # scheduled lr by it, so a hook's change lasts exactly one step.
    lr_scale: float = 1.0
    stop: bool = False
    stop_reason: str = ""
    # Set by the stability guard when it stops the run after restoring the last good state
    # (so the state in memory may be checkpointed); False when it stops on a bad state.
    stop_restored: bool = False
    # The loss scaler's verdict on the last step (fp16): it skipped the step on inf/NaN
    # gradients and lowered the scale. Such a step is the scaler's business, not a spike.
    overflow_skipped: bool = False
    # What hooks ask the next checkpoint's state.json to carry, for an exact resume (the
    # stability guard's detector windows and counters, under "guard").
    checkpoint_extra: dict[str, Any] = field(default_factory=dict)
