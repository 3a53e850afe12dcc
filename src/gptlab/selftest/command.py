"""`gptlab selftest faults [--quick] [--only SECTION ...] --out DIR`: one table of fault figures.

Sections, in the order they run:
  kills        SIGKILL train (incl. during checkpoint writes and guard rollbacks), curate and pack
               (local and Ray), resume; bitwise identity with an uninterrupted run, docs lost/duplicated
  checkpoints  truncation, bit flips, missing files, garbage manifests, for train/generate/export/eval
  inputs       hypothesis fuzzing of every reader and step; crashes and in = kept + dropped + quarantined
  cli          fuzzed TOML, overrides and flags for every subcommand; tracebacks and exit codes
  files        every --out command at a foreign folder, ".", another stage's folder, its own input
  security     pickles named as weights never run; config paths cannot write outside the run
"""
from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from gptlab.console import log
from gptlab.errors import UserError
from gptlab.manifest import Stage, stage_key
from gptlab.selftest import checkpoints, cli, files, inputs, kills, security
from gptlab.selftest.table import Context, Row, render, write_json

SECTIONS = {"kills": kills, "checkpoints": checkpoints, "inputs": inputs, "cli": cli, "files": files,
            "security": security}


def add_selftest_parser(sub) -> argparse.ArgumentParser:
    """Mount `selftest` on a subparsers object (``cli.py``: ``add_selftest_parser(sub)``)."""
    p = sub.add_parser("selftest", help="attack gptlab itself: kills, corruption, fuzzing; one table of figures")
    s = p.add_subparsers(dest="selftest_command", required=True)
    f = s.add_parser("faults", help="the fault grid behind `make faults`", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    f.add_argument("--out", default="runs/faults", help="scratch folder for the runs it kills (default runs/faults)")
    f.add_argument("--quick", action="store_true", help="a few cases per check (what `make test` runs)")
    f.add_argument("--only", nargs="+", metavar="SECTION", help=f"run only these ({', '.join(SECTIONS)})")
    f.add_argument("--seed", type=int, default=0, help="seed of the random kill moments and fuzz cases")
    f.add_argument("--force", action="store_true", help="use a non-empty --out gptlab did not make")
    f.set_defaults(fn=selftest_faults_command)
    return p


def run_faults(out: Path, *, quick: bool, only: list[str] | None = None, seed: int = 0,
               force: bool = False) -> list[Row]:
    """Run the chosen sections in a scratch stage folder; return their rows (also written as faults.json)."""
    names = only or list(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        raise UserError(f"--only: unknown section {unknown[0]!r} (choose from {', '.join(SECTIONS)})")
    rows: list[Row] = []
    # A fresh key each time: a selftest is never "complete, skipping".
    with Stage(out, "selftest", stage_key({"t": time.time_ns()}, [], []), force=force) as st:
        for name in names:
            work = st.dir / name
            if st.owned and work.exists():
                shutil.rmtree(work)   # our own scratch from an earlier selftest
            work.mkdir(parents=True, exist_ok=True)
            log(f"selftest: {name} ...")
            rows += SECTIONS[name].run(Context(work=work, quick=quick, seed=seed))
        write_json(rows, st.dir / "faults.json")
        st.done(["faults.json"], {"rows": len(rows), "bad": sum(r.bad for r in rows)})
    return rows


def selftest_faults_command(args) -> int:
    rows = run_faults(Path(args.out), quick=args.quick, only=args.only, seed=args.seed, force=args.force)
    render(rows)
    return 1 if any(r.bad for r in rows) else 0
