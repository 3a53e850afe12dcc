"""A batch is a pure function of the step: batch(step) = f(seed, step, batch size).

The packed order is fixed at pack time; here step k takes the next ``batch_size``
sequences of it. Past the end of an epoch the order is re-permuted with ``seed + epoch``,
still deterministically, so resuming at any step needs only the step number.
"""
from __future__ import annotations

import numpy as np
import torch

from gptlab.data.pack import PackedData


class Batches:
    def __init__(self, data: PackedData, batch_size: int, seed: int):
        self.data, self.batch_size, self.seed = data, batch_size, seed
        self._perm_cache: dict[int, np.ndarray] = {}

    def _epoch_order(self, epoch: int) -> np.ndarray | None:
        if epoch == 0:
            return None  # epoch 0 is the packed order itself
        if epoch not in self._perm_cache:
            self._perm_cache = {epoch: np.random.default_rng(self.seed + epoch).permutation(len(self.data))}
        return self._perm_cache[epoch]

    def indices(self, step: int) -> np.ndarray:
        """Global sequence indices consumed at ``step``."""
        n = len(self.data)
        pos = np.arange(step * self.batch_size, (step + 1) * self.batch_size, dtype=np.int64)
        epoch, within = pos // n, pos % n
        out = within.copy()
        for e in np.unique(epoch):
            order = self._epoch_order(int(e))
            if order is not None:
                sel = epoch == e
                out[sel] = order[within[sel]]
        return out

    def get(self, step: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.from_numpy(self.data.sequences(self.indices(step)))
        x, y = rows[:, :-1], rows[:, 1:]
        return x.to(device, non_blocking=True), y.to(device, non_blocking=True)
