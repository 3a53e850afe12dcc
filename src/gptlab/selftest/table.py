"""The figures a fault section reports, and the one table they are printed as."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table


@dataclass
class Row:
    """One check: ``cases`` attempts, of which ``bad`` went wrong (must be 0).

    ``bad_what`` names what ``bad`` counts ("docs lost", "tracebacks", "files destroyed");
    ``ok_what`` and ``ok`` optionally give the positive figure ("bitwise identical", 20)."""
    section: str
    check: str
    cases: int
    bad: int
    bad_what: str
    ok: int | None = None
    ok_what: str = ""
    note: str = ""
    failures: list[str] = field(default_factory=list)   # the first few failing cases, for the log


@dataclass
class Context:
    """What every section gets: a scratch folder it owns, the size of the grid, a seed."""
    work: Path
    quick: bool
    seed: int = 0


def render(rows: list[Row], console: Console | None = None) -> None:
    t = Table(title="gptlab selftest faults")
    for col, right in (("section", False), ("check", False), ("cases", True), ("good", True),
                       ("bad", True), ("note", False)):
        t.add_column(col, justify="right" if right else "left")
    for r in rows:
        good = f"{r.ok} {r.ok_what}".strip() if r.ok is not None else ""
        bad = f"[{'red' if r.bad else 'green'}]{r.bad}[/] {r.bad_what}"
        t.add_row(r.section, r.check, str(r.cases), good, bad, r.note)
    (console or Console()).print(t)
    for r in rows:
        for f in r.failures[:5]:
            (console or Console()).print(f"[red]{r.section} / {r.check}:[/] {f}")


def write_json(rows: list[Row], path: Path) -> None:
    path.write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n")
