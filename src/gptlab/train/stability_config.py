"""Config of the stability guard (detect a loss spike → roll back → skip batches → continue)."""
from __future__ import annotations

from dataclasses import dataclass

from gptlab.fields import rng


@dataclass
class StabilityConfig:
    enabled: bool = True
    # Detectors. Non-finite loss/gradient is always on while the guard is enabled.
    window: int = rng(5, 100_000, default=50)          # trailing steps for median/MAD
    loss_k: float = rng(0.0, 1e6, default=6.0)          # robust deviations above the median; 0 = off
    loss_min_delta: float = rng(0.0, 1e6, default=0.5)  # and at least this many nats above it
    grad_k: float = rng(0.0, 1e6, default=0.0)          # gradient-norm outliers; 0 = off
    grad_min_ratio: float = rng(1.0, 1e6, default=5.0)  # and at least this many times the median
    warmup: int = rng(0, 10**9, default=50)             # grace steps before the robust detectors arm
    cooldown: int = rng(0, 10**9, default=10)           # steps after a rollback before they re-arm
    # Policy (PaLM: restart ~100 steps before the spike, skip ~200-500 batches).
    rollback_steps: int = rng(1, 10**9, default=100)
    skip_batches: int = rng(0, 10**9, default=200)
    # How many batches before the onset the skipped window starts; -1 = at the rollback point.
    skip_lead: int = rng(-1, 10**9, default=-1)
    snapshot_every: int = rng(1, 10**9, default=25)      # in-memory ring of lightweight snapshots
    max_rollbacks: int = rng(1, 10**6, default=3)       # budget: this many rollbacks ...
    budget_window: int = rng(1, 10**9, default=1000)    # ... within this many steps, then stop
    # Fault injection for tests and demos: "nan@STEP", "poison@STEP", "lr_spike@STEP", comma-separated.
    inject: str = ""
    lr_spike_factor: float = rng(1.0, 1e9, default=1000.0)

    def check(self) -> None:
        parse_faults(self.inject)


def parse_faults(spec: str) -> list[tuple[str, int]]:
    """"poison@120,nan@300" → [("poison", 120), ("nan", 300)]; ValueError names a bad item."""
    out = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        kind, _, step = item.partition("@")
        if kind not in ("nan", "poison", "lr_spike") or not step.isdigit() or int(step) < 1:
            raise ValueError(f"inject: {item!r} is not nan@STEP, poison@STEP or lr_spike@STEP")
        out.append((kind, int(step)))
    return out
