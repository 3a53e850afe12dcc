"""Fault section 'security' (being written)."""
from __future__ import annotations

from gptlab.selftest.table import Context, Row


def run(ctx: Context) -> list[Row]:
    return []
