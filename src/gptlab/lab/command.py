"""`gptlab ablate`: the command line of the lab (parser and command, for cli.py to mount).

    gptlab ablate --config configs/ablate/z_loss.toml --seeds 3 --size tiny --out runs/ablate-zloss
    gptlab ablate --config configs/ablate/recipes.toml --size small --workers 2 --out runs/recipes

Every arm × seed trains on the same packed data (the demo size's chain, built once into
OUT/data), for the same steps and batch, and is evaluated on the same held-out set. Rerunning
the same command skips finished runs and resumes interrupted ones. The report
(OUT/report.html) is written at the end; ``ablation_report_command`` rewrites it from OUT.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from gptlab.console import log
from gptlab.errors import UserError
from gptlab.lab.report import write_ablation_report
from gptlab.lab.runner import run_ablation
from gptlab.lab.spec import load_ablation
from gptlab.pipeline import demo_preset, demo_sizes


def _positive(flag: str, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        n = int(value)
    except ValueError:
        raise UserError(f"{flag}: {value!r} is not a whole number") from None
    if n < 1:
        raise UserError(f"{flag}: must be at least 1, got {n}")
    return n


def ablate_command(args) -> Path:
    seeds = _positive("--seeds", args.seeds)
    workers = _positive("--workers", args.workers) or 1
    ab = load_ablation(args.config)
    size = args.size or ab.size
    preset = demo_preset(size)
    ab = load_ablation(args.config, preset)         # resolve every arm now: a typo fails before training
    out = Path(args.out)
    if out.is_dir() and any(out.iterdir()) and not (out / "ablation.toml").exists():
        raise UserError(f"{out}: is not empty and is not an ablation folder; choose an empty or new folder")
    doc = run_ablation(ab, preset, out, seeds=seeds, workers=workers)
    report = write_ablation_report(out)
    for c in doc["claims"]:
        log(f"{c['id']}: {c['arm']} vs {c['baseline']} on {c['metric']}: effect {c['effect']:+.4f} "
            f"[{c['low']:+.4f}, {c['high']:+.4f}] → {c['verdict']} ({c['seeds']} seeds)")
    log(f"report: {report}")
    return report


def ablation_report_command(ablation_dir: str | Path) -> Path:
    """For `gptlab report --ablation DIR`."""
    report = write_ablation_report(ablation_dir)
    log(f"report: {report}")
    return report


def add_ablate_parser(sub) -> argparse.ArgumentParser:
    """Mount `ablate` on a subparsers object (``cli.py``: ``add_ablate_parser(sub)``)."""
    p = sub.add_parser("ablate", help="test a claim: arms × paired seeds on equal data and budget, with verdicts",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="ablation file (see configs/ablate/)")
    p.add_argument("--seeds", help="paired seeds per arm (default: the file's ablation.seeds)")
    p.add_argument("--size", choices=demo_sizes(), help="demo size whose data and model every arm starts from "
                                                        "(default: the file's ablation.size)")
    p.add_argument("--workers", help="runs in parallel, one process each (default 1)")
    p.add_argument("--out", required=True, help="ablation folder (rerun to resume)")
    p.set_defaults(fn=ablate_command)
    return p
