"""Read a packed folder: sequence i → (shard, offset), through memmap. Train and eval use it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gptlab.errors import InputError

INDEX = "index.json"


class PackedData:
    """Read-only view of a packed folder: sequence i → (shard, offset), via memmap."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        p = self.folder / INDEX
        if not p.exists():
            raise FileNotFoundError(f"{self.folder}: no {INDEX} (run `gptlab data pack`)")
        try:
            self.index = json.loads(p.read_text(encoding="utf-8"))
            self.seq_len = self.index["seq_len"]
            self.n_sequences = self.index["n_sequences"]
            self.vocab_size = self.index["vocab_size"]
            dtype = np.dtype(self.index["dtype"])
            shards = [(self.folder / s["file"], s["first_sequence"]) for s in self.index["shards"]]
        except (ValueError, KeyError, TypeError) as e:   # empty, garbage, or not the index's shape
            raise InputError(f"{p}: not a valid pack index ({type(e).__name__}: {' '.join(str(e).split())[:120]}); "
                             f"rebuild it with `gptlab data pack`") from None
        self._shards = [np.memmap(f, dtype=dtype, mode="r").reshape(-1, self.seq_len + 1) for f, _ in shards]
        self._starts = np.array([first for _, first in shards])

    def __len__(self) -> int:
        return self.n_sequences

    def sequences(self, indices: np.ndarray) -> np.ndarray:
        """Rows for global sequence indices, as int64 [len(indices), seq_len + 1]."""
        indices = np.asarray(indices, dtype=np.int64)
        shard = np.searchsorted(self._starts, indices, side="right") - 1
        out = np.empty((len(indices), self.seq_len + 1), dtype=np.int64)
        for s in np.unique(shard):
            sel = shard == s
            out[sel] = self._shards[s][indices[sel] - self._starts[s]]
        return out

    def unigram_counts(self) -> np.ndarray:
        path = self.folder / "unigram.npy"
        try:
            return np.load(path, allow_pickle=False)
        except (ValueError, OSError) as e:      # ValueError: not an array file, or object arrays (pickles)
            if isinstance(e, FileNotFoundError):
                raise
            raise InputError(f"{path}: not unigram counts gptlab wrote ({' '.join(str(e).split())}); "
                             "rerun `gptlab data pack`") from None
