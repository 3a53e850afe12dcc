"""Progress bars and log lines, shared by every stage.

gptlab logs through the standard :mod:`logging` module, under the ``gptlab`` logger, so a
library user can silence it (``logging.getLogger("gptlab").setLevel(logging.WARNING)``) or
send it elsewhere. The CLI installs a rich handler on the same console as the progress bars,
so log lines print above a running bar instead of through it."""
from __future__ import annotations

import logging
import os
import re
import sys
from contextlib import contextmanager
from typing import Iterable, Iterator, TypeVar

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

T = TypeVar("T")
console = Console(stderr=True, highlight=False)


def _bars_enabled() -> bool:
    flag = os.environ.get("GPTLAB_PROGRESS")
    if flag is not None:
        return flag not in ("0", "", "false")
    return sys.stderr.isatty()


logger = logging.getLogger("gptlab")
_LEADING_STYLE = re.compile(r"^\[(yellow|red|green|bold|dim)\]")
_LEVELS = {"yellow": logging.WARNING, "red": logging.ERROR}


def log(msg: str, level: int | None = None) -> None:
    """One log line. A leading ``[yellow]`` or ``[red]`` marks a warning or an error."""
    m = _LEADING_STYLE.match(msg)
    if m:
        msg = msg[m.end():]
        level = level if level is not None else _LEVELS.get(m.group(1))
    if not logger.handlers:
        setup_logging(None)  # nobody configured the gptlab logger: show lines as the CLI does
    logger.log(level if level is not None else logging.INFO, msg)


def setup_logging(level: int | None = logging.INFO) -> None:
    """Show gptlab's log lines on stderr through rich, above any progress bar. The CLI calls
    this; ``log`` calls it on first use when the ``gptlab`` logger has no handler yet, so a
    library user who attaches their own handler first (or sets a level) keeps their choice.
    ``level=None`` keeps a level already set (INFO otherwise)."""
    if level is not None:
        logger.setLevel(level)
    elif logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    if not any(getattr(h, "_gptlab", False) for h in logger.handlers):
        handler = RichHandler(console=console, show_path=False, markup=False, rich_tracebacks=False,
                              log_time_format="%H:%M:%S")
        handler._gptlab = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False


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
