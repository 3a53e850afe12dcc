"""Config of the data stages (harvest, curate, pack)."""
from __future__ import annotations

from dataclasses import dataclass, field

from gptlab.fields import rng


@dataclass
class DataConfig:
    # Which harvesters run, in this order. Missing sources on a machine are skipped, not fatal.
    sources: list[str] = field(default_factory=lambda: [
        "stdlib-code", "stdlib-prose", "pkg-readme", "pkg-license", "debian-copyright",
        "debian-changelog", "debian-readme", "man", "bible"])
    max_mb_per_source: float = rng(0.01, 10_000, default=6.0)
    max_docs_per_source: int = rng(1, 10_000_000, default=4000)
    max_doc_chars: int = rng(1000, 100_000_000, default=200_000)
    docs_per_shard: int = rng(1, 10_000_000, default=1000)
    # Curation: a built-in recipe name (default, dedup, embedded) or a recipe .toml file.
    recipe: str = "default"
    executor: str = rng(choices=("local", "ray"), default="local")
    # Input records larger than this are quarantined as oversized, not read into a worker.
    max_doc_bytes: int = rng(1000, 10**10, default=20_000_000)
    write_parquet: bool = False
    # Held-out evaluation split, per domain.
    eval_fraction: float = rng(0.0, 0.5, default=0.05)
    eval_max_docs_per_domain: int = rng(1, 1_000_000, default=40)
    eval_max_chars_per_doc: int = rng(100, 10_000_000, default=6000)
    keep_dropped: bool = False
    seed: int = rng(0, 2**31 - 1, default=1234)


@dataclass
class PackConfig:
    seq_len: int = rng(8, 1_048_576, default=256)
    tokens_per_shard: int = rng(1024, 10**10, default=8_000_000)
    seed: int = rng(0, 2**31 - 1, default=1234)
    # The mixture, as in GPT-3's table: per-source epochs ("bible=2.5", "pkg-readme=0.5"; unlisted
    # sources take 1) or per-source weights, i.e. shares of the packed tokens ("web=0.6", ...;
    # every source listed). A source may be named by its source or its domain.
    epochs: list[str] = field(default_factory=list)
    weights: list[str] = field(default_factory=list)
    # With weights: the packed stream's size in tokens (0: as many as the corpus has).
    total_tokens: int = rng(0, 10**15, default=0)

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
