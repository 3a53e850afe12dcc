"""Config of the pack stage: sequence length, shard size and the mixture."""
from __future__ import annotations

from dataclasses import dataclass, field

from gptlab.schema import bounded


@dataclass
class PackConfig:
    seq_len: int = bounded(8, 1_048_576, default=256)
    tokens_per_shard: int = bounded(1024, 10**10, default=8_000_000)
    seed: int = bounded(0, 2**31 - 1, default=1234)
    # The mixture, as in GPT-3's table: per-source epochs ("bible=2.5", "pkg-readme=0.5"; unlisted
    # sources take 1) or per-source weights, i.e. shares of the packed tokens ("web=0.6", ...;
    # every source listed). A source may be named by its source or its domain.
    epochs: list[str] = field(default_factory=list)
    weights: list[str] = field(default_factory=list)
    # With weights: the packed stream's size in tokens (0: as many as the corpus has).
    total_tokens: int = bounded(0, 10**15, default=0)

    def check(self) -> None:
        if self.epochs and self.weights:
            raise ValueError("epochs, weights: set one of the two, not both")
        for key in ("epochs", "weights"):
            for i, item in enumerate(getattr(self, key)):
                name, sep, value = item.partition("=")
                try:
                    ok = bool(sep and name.strip()) and float(value) >= 0
                except ValueError:
                    ok = False
                if not ok:
                    raise ValueError(f"{key}[{i}]: {item!r} should look like source=number (number >= 0)")
