"""What `gptlab advise` and `gptlab advise bakeoff` do, kept out of cli.py so it stays wiring."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from gptlab.advise.answers import Answers, answers_from_dict, ask_interactive, load_answers, to_dict
from gptlab.advise.bakeoff import BakeoffSettings, render_markdown, run_bakeoff
from gptlab.advise.engine import advise, render
from gptlab.advise.flow import mermaid
from gptlab.errors import UserError
from gptlab.manifest import atomic_write_json


def collect_answers(answers_file: str | Path | None, flags: dict[str, Any],
                    interactive: bool | None = None) -> Answers:
    """YAML file ← flags (flags win). With neither, ask interactively when a person is at the terminal."""
    if interactive is None:
        interactive = answers_file is None and not flags and sys.stdin.isatty()
    if interactive:
        base = ask_interactive()
    elif answers_file is not None:
        base = load_answers(answers_file)
    else:
        base = Answers()
    data = {k: v for k, v in to_dict(base).items() if v is not None}
    data.update(flags)
    return answers_from_dict(data, source=str(answers_file) if answers_file else "flags")


def advise_command(answers_file: str | None, flags: dict[str, Any], interactive: bool | None,
                   as_json: bool, out: str | None = None, flow: bool = False) -> None:

    if flow:
        print(mermaid(), end="")
        return
    advice = advise(collect_answers(answers_file, flags, interactive))
    if out:
        atomic_write_json(out, advice.to_json())
    if as_json:
        print(json.dumps(advice.to_json(), indent=2))
    else:
        render(advice, Console())


PRICE_FLAGS = {"usd_per_hour": "--usd-per-hour", "usd_per_1k_tokens": "--usd-per-1k-tokens"}


def _check_prices(settings: dict[str, Any]) -> None:
    """A price is a finite number >= 0: nan or inf would print as invalid JSON and make every
    cost comparison false. The error names the flag."""
    for key, flag in PRICE_FLAGS.items():
        v = settings.get(key)
        if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise UserError(f"{flag} {v}: must be a finite number >= 0 (US dollars)")


def bakeoff_command(train: str, test: str, task: str, model: str | None, out: str | None, as_json: bool,
                    answers_file: str | None, flags: dict[str, Any], small_model: str | None = None,
                    force: bool = False, **settings: Any) -> None:

    _check_prices(settings)
    answers = collect_answers(answers_file, flags, interactive=False)
    report = run_bakeoff(train, test, BakeoffSettings(task=task, **settings), model_path=model, out_dir=out,
                         answers=answers, small_model_path=small_model, force=force)
    if as_json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(render_markdown(report))
