"""Progress bars and concise log lines, shared by every stage."""
from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from typing import Iterable, Iterator, TypeVar

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

T = TypeVar("T")
console = Console(stderr=True, highlight=False)


def _bars_enabled() -> bool:
    flag = os.environ.get("GPTLAB_PROGRESS")
    if flag is not None:
        return flag not in ("0", "", "false")
    return sys.stderr.isatty()


def log(msg: str) -> None:
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {msg}")


def make_progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=console, disable=not _bars_enabled(), transient=False)


@contextmanager
def progress_task(description: str, total: float | None) -> Iterator:
    """A single progress bar; yields ``advance(n=1, info="")``."""
    with make_progress() as prog:
        task = prog.add_task(description, total=total, info="")

        def advance(n: float = 1, info: str | None = None) -> None:
            if info is None:
                prog.advance(task, n)
            else:
                prog.update(task, advance=n, info=info)
        yield advance


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with progress_task(description, total) as advance:
        for x in items:
            yield x
            advance()
