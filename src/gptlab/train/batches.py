"""A batch is a pure function of the step: batch(step) = f(seed, step, ramp, skip list).

The packed order is fixed at pack time. Step k consumes the next ``size(k)`` sequences of
it, where the batch-size ramp sets ``size``; a skip list (written by the stability guard)
moves the read position past a window of sequences from a given step on. Past the end of
an epoch the order is re-permuted with ``seed + epoch``, still deterministically. Resuming
at any step therefore needs only the step, the ramp config and the skip list.
"""
from __future__ import annotations

import numpy as np
import torch


class BatchSchedule:
    """Sequences per step: constant, a linear ramp by tokens (GPT-3), or steps (PaLM).

    A preset states its ramp as fractions (of the final batch, of the run's steps or token
    budget), so the same recipe runs at laptop scale: PaLM's 512 -> 1024 -> 2048 at steps
    50k and 115k of 255k becomes 4 -> 8 -> 16 at 20 % and 45 % of a batch-16 run."""

    def __init__(self, tcfg, seq_len: int, multiple_of: int = 1):
        self.tcfg, self.seq_len, self.multiple_of = tcfg, seq_len, multiple_of
        self._starts = [0]                               # _starts[k] = sequences consumed before step k
        self.start_batch, self.ramp_tokens, self.boundaries, self.sizes = resolve_ramp(tcfg, seq_len)

    def size(self, step: int) -> int:
        t = self.tcfg
        if t.ramp == "steps":
            i = int(np.searchsorted(np.asarray(self.boundaries), step, side="right"))
            b = self.sizes[i]
        elif t.ramp == "linear" and self.ramp_tokens > 0:
            tokens = self.start(step) * self.seq_len
            frac = min(1.0, tokens / self.ramp_tokens)
            b = int(self.start_batch + (t.batch_size - self.start_batch) * frac)
        else:
            b = t.batch_size
        m = self.multiple_of                             # every data-parallel rank gets a share
        return max(m, (b // m) * m)

    def start(self, step: int) -> int:
        while len(self._starts) <= step:
            k = len(self._starts) - 1
            self._starts.append(self._starts[k] + self.size(k))
        return self._starts[step]


class Batches:
    def __init__(self, data, schedule: BatchSchedule, seed: int, skips: list | None = None):
        self.data, self.schedule, self.seed = data, schedule, seed
        # [(from_step, n_sequences)]: from that step on, reading starts n sequences later.
        self.skips: list[tuple[int, int]] = [tuple(s) for s in (skips or [])]
        self._perm_cache: dict[int, np.ndarray] = {}

    def position(self, step: int) -> int:
        """Index in the global order of the first sequence read at ``step``."""
        return self.schedule.start(step) + sum(n for s, n in self.skips if step >= s)

    def size(self, step: int) -> int:
        return self.schedule.size(step)

    def _epoch_order(self, epoch: int) -> np.ndarray | None:
        if epoch == 0:
            return None  # epoch 0 is the packed order itself
        if epoch not in self._perm_cache:
            self._perm_cache = {epoch: np.random.default_rng(self.seed + epoch).permutation(len(self.data))}
        return self._perm_cache[epoch]

    def indices(self, step: int) -> np.ndarray:
        """Global sequence indices consumed at ``step``."""
        n = len(self.data)
        start = self.position(step)
        pos = np.arange(start, start + self.size(step), dtype=np.int64)
        epoch, within = pos // n, pos % n
        out = within.copy()
        for e in np.unique(epoch):
            order = self._epoch_order(int(e))
            if order is not None:
                sel = epoch == e
                out[sel] = order[within[sel]]
        return out

    def rows(self, indices: np.ndarray, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.from_numpy(self.data.sequences(indices))
        x, y = rows[:, :-1], rows[:, 1:]
        return x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    def get(self, step: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        return self.rows(self.indices(step), device)


def resolve_ramp(tcfg, seq_len: int) -> tuple[int, int, list[int], list[int]]:
    """The ramp in absolute units: (linear start batch, linear ramp tokens, step boundaries,
    batch sizes). A fraction key, where set, wins over its absolute twin."""
    b = tcfg.batch_size
    start = tcfg.ramp_start_batch
    if tcfg.ramp_start_fraction:
        start = max(1, round(tcfg.ramp_start_fraction * b))
    start = min(start, b)
    ramp_tokens = tcfg.ramp_tokens
    if tcfg.ramp_fraction:
        ramp_tokens = max(1, round(tcfg.ramp_fraction * tcfg.max_steps * b * seq_len))
    boundaries, sizes = list(tcfg.ramp_steps), list(tcfg.ramp_batches)
    if tcfg.ramp_step_fractions or tcfg.ramp_batch_fractions:
        boundaries = [max(1, round(f * tcfg.max_steps)) for f in tcfg.ramp_step_fractions]
        sizes = [max(1, round(f * b)) for f in tcfg.ramp_batch_fractions]
    return start, ramp_tokens, boundaries, sizes
