"""Typed-field helpers shared by every section's config dataclass."""
from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Any


class ConfigError(ValueError):
    """A config problem, phrased as one line that names the offending key."""


def rng(lo: float | None = None, hi: float | None = None, *, choices: tuple | None = None,
        default: Any = dataclasses.MISSING, default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with validation metadata: inclusive bounds or allowed choices."""
    meta = {"lo": lo, "hi": hi, "choices": choices}
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)
