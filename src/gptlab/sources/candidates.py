"""What every harvester yields: a file to read, in a deterministic, spread-out order."""
from __future__ import annotations

import gzip
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import xxhash

# ----------------------------------------------------------------------------- helpers


@dataclass
class HarvestStats:
    docs: int = 0
    bytes: int = 0
    quarantined: Counter = field(default_factory=Counter)
    truncated: int = 0


def _order(paths: list[Path], root: Path) -> list[Path]:
    """A deterministic, spread-out order: sort by a hash of the path relative to root."""
    def key(p: Path) -> tuple[int, str]:
        rel = str(p.relative_to(root)) if p.is_relative_to(root) else str(p)
        return xxhash.xxh64_intdigest(rel.encode()), rel
    return sorted(set(paths), key=key)


def _decode(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _looks_binary(raw: bytes) -> bool:
    return b"\x00" in raw[:8192]


class Candidate:
    """One file to read: ``load()`` returns (text | None, quarantine reason | None)."""

    def __init__(self, path: Path, doc_id: str, domain: str, source: str, meta: dict | None = None,
                 transform: Callable[[str], str] | None = None):
        self.path, self.id, self.domain, self.source = path, doc_id, domain, source
        self.meta = meta or {}
        self.transform = transform

    def load(self) -> tuple[str | None, str | None]:
        try:
            raw = self.path.read_bytes()
            if self.path.suffix == ".gz":
                raw = gzip.decompress(raw)
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            return None, f"unreadable:{type(e).__name__}"
        if _looks_binary(raw):
            return None, "binary"
        text = _decode(raw)
        if text is None:
            return None, "invalid-utf8"
        if self.transform is not None:
            text = self.transform(text)
        return text, None


