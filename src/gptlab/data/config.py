"""Config of the data stages (harvest and curate)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from gptlab.schema import bounded


@dataclass
class DataConfig:
    # Which harvesters run, in this order. Missing sources on a machine are skipped, not fatal.
    sources: list[str] = field(default_factory=lambda: [
        "stdlib-code", "stdlib-prose", "pkg-readme", "pkg-license", "debian-copyright",
        "debian-changelog", "debian-readme", "man", "bible"])
    max_mb_per_source: float = bounded(0.01, 10_000, default=6.0)
    max_docs_per_source: int = bounded(1, 10_000_000, default=4000)
    max_doc_chars: int = bounded(1000, 100_000_000, default=200_000)
    docs_per_shard: int = bounded(1, 10_000_000, default=1000)
    # Curation: a built-in recipe name (default, dedup, embedded) or a recipe .toml file.
    recipe: str = "default"
    executor: Literal["local", "ray"] = "local"
    # Input records larger than this are quarantined as oversized, not read into a worker.
    max_doc_bytes: int = bounded(1000, 10**10, default=20_000_000)
    write_parquet: bool = False
    # Held-out evaluation split, per domain.
    eval_fraction: float = bounded(0.0, 0.5, default=0.05)
    eval_max_docs_per_domain: int = bounded(1, 1_000_000, default=40)
    eval_max_chars_per_doc: int = bounded(100, 10_000_000, default=6000)
    keep_dropped: bool = False
    seed: int = bounded(0, 2**31 - 1, default=1234)
