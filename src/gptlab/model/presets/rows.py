"""A recipe is a list of rows (section, key, value, source), so that every constant carries
its source, and the docs table (``gptlab.model.presets.table``) is printed from the same rows."""
from __future__ import annotations

from typing import Any

Row = tuple[str, str, Any, str]


def fragment(rows: list[Row]) -> dict[str, Any]:
    """{"model": {...}, "train": {...}} from rows; a later row for the same key wins."""
    out: dict[str, dict[str, Any]] = {"model": {}, "train": {}}
    for section, key, value, _ in rows:
        out[section][key] = list(value) if isinstance(value, list) else value
    return out


def override(rows: list[Row], changes: list[Row]) -> list[Row]:
    """``rows`` with ``changes`` replacing rows of the same key (appended when new)."""
    new = {(s, k): (s, k, v, src) for s, k, v, src in changes}
    out = [new.pop((s, k), (s, k, v, src)) for s, k, v, src in rows]
    return out + list(new.values())
