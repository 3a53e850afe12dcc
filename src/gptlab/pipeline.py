"""The whole chain into one run folder: harvest → curate → tokenizer → pack → train → eval → report.

Each stage owns a subfolder and a manifest, so rerunning skips what is complete and an
interrupted chain picks up at the stage (and, for training, the checkpoint) it reached.
The demo sizes ship as package data (``gptlab/demos/<size>.toml``).
"""
from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from gptlab.config import RunConfig, to_dict, to_toml
from gptlab.console import log
from gptlab.data.curate import run_curate
from gptlab.errors import ConfigError
from gptlab.eval.bpb import make_bpb_eval, run_eval
from gptlab.manifest import atomic_write, recording
from gptlab.pack.build import run_pack
from gptlab.report import write_report
from gptlab.sources.harvest import run_harvest
from gptlab.tokenizer import run_tokenizer
from gptlab.train.loop import run_train

DEMOS = resources.files("gptlab") / "demos"


def demo_sizes() -> list[str]:
    return sorted(f.name.removesuffix(".toml") for f in DEMOS.iterdir() if f.name.endswith(".toml"))


def demo_preset(size: str) -> dict[str, Any]:
    """Config fragments for `gptlab demo --size`: tiny is for tests, small for a first real run."""
    if size not in demo_sizes():
        raise ConfigError(f"--size: unknown size {size!r} (choose {' or '.join(demo_sizes())})")
    return tomllib.loads((DEMOS / f"{size}.toml").read_text(encoding="utf-8"))


def run_all(cfg: RunConfig, out_dir: str | Path, workers: int = 2) -> Path:
    """Every stage of the chain into ``out_dir``; returns the report's path."""
    with recording(to_dict(cfg)):
        return _run_all(cfg, Path(out_dir), workers)


def _run_all(cfg: RunConfig, run: Path, workers: int) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    atomic_write(run / "config.toml", to_toml(cfg))
    run_harvest(cfg.data, run / "harvest", workers=workers)
    run_curate(cfg.data, run / "harvest", run / "curate", workers=workers)
    run_tokenizer(cfg.tokenizer, run / "curate", run / "tokenizer")
    run_pack(cfg.pack, run / "curate", run / "tokenizer", run / "pack")
    # Periodic held-out bpb during training (train.eval_every), logged to metrics and TensorBoard.
    eval_fn = (make_bpb_eval(run / "curate" / "heldout", run / "tokenizer", run / "pack", cfg.eval)
               if cfg.train.eval_every else None)
    run_train(cfg.model, cfg.train, cfg.stability, run / "pack", run / "train", resume=True,
              tokenizer_file=run / "tokenizer" / "tokenizer.json", eval_fn=eval_fn)
    run_eval(cfg.eval, run / "curate" / "heldout", run / "train", run / "pack", run / "eval")
    report = write_report(run)
    log(f"report: {report}")
    return report
