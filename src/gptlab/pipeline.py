"""The whole chain into one run folder: harvest → curate → tokenizer → pack → train → eval → report.

Each stage owns a subfolder and a manifest, so rerunning skips what is complete and an
interrupted chain picks up at the stage (and, for training, the checkpoint) it reached.
The demo sizes ship as package data (``gptlab/demos/<size>.toml``).
"""
from __future__ import annotations

import tomllib
from dataclasses import fields
from importlib import resources
from pathlib import Path
from typing import Any

from gptlab.config import RunConfig, to_dict, to_toml
from gptlab.console import log
from gptlab.data.curate import run_curate
from gptlab.errors import ConfigError, UserError
from gptlab.eval.bpb import make_bpb_eval, run_eval
from gptlab.manifest import MARKER, RUN, atomic_write, owner_of, read_manifest, recording
from gptlab.pack.build import run_pack
from gptlab.report import write_report
from gptlab.sources.harvest import run_harvest
from gptlab.tokenizer import run_tokenizer
from gptlab.train.loop import EvalFn, OtherRunError, resolve_data_dir, run_train

DEMOS = resources.files("gptlab") / "demos"


def demo_sizes() -> list[str]:
    return sorted(f.name.removesuffix(".toml") for f in DEMOS.iterdir() if f.name.endswith(".toml"))


def demo_preset(size: str) -> dict[str, Any]:
    """Config fragments for `gptlab demo --size`: tiny is for tests, small for a first real run."""
    if size not in demo_sizes():
        raise ConfigError(f"--size: unknown size {size!r} (choose {' or '.join(demo_sizes())})")
    return tomllib.loads((DEMOS / f"{size}.toml").read_text(encoding="utf-8"))


def run_all(cfg: RunConfig, out_dir: str | Path, workers: int = 2, *, force: bool = False) -> Path:
    """Every stage of the chain into ``out_dir``; returns the report's path. A non-empty folder
    that is not a gptlab run is refused unless ``force`` (which is passed to every stage)."""
    with recording(to_dict(cfg)):
        return _run_all(cfg, Path(out_dir), workers, force)


def _is_run(run: Path) -> bool:
    """A gptlab run folder: marked as one, or (an older run) with a config.toml gptlab can read
    or a stage subfolder with a manifest. A stage's own folder is not a run."""
    owner = owner_of(run)
    if owner is not None:
        return owner == RUN
    if any(read_manifest(d) for d in run.iterdir() if d.is_dir()):
        return True
    try:
        sections = tomllib.loads((run / "config.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    return bool(sections) and set(sections) <= {f.name for f in fields(RunConfig)}


def _claim_run(run: Path, force: bool) -> None:
    """Refuse a non-empty folder that is not a gptlab run (unless ``force``); mark it as a run,
    so that no stage mistakes it for its own folder."""
    if run.exists() and not run.is_dir():
        raise UserError(f"{run}: exists and is not a folder; choose a folder for the run")
    if run.is_dir() and any(run.iterdir()) and not _is_run(run) and not force:
        what = f"holds the output of the {owner_of(run)} stage" if owner_of(run) else "was not made by gptlab"
        raise UserError(f"{run}: is not empty and is not a gptlab run ({what}); choose an empty or new "
                        f"folder (or pass --force to write into it)")
    run.mkdir(parents=True, exist_ok=True)
    if owner_of(run) != RUN:
        atomic_write(run / MARKER, RUN + "\n")


def periodic_eval(cfg: RunConfig, heldout: str | Path | None, data: str | Path,
                  tokenizer: str | Path | None = None) -> EvalFn | None:
    """The eval function of `gptlab train --heldout DIR`: held-out bits-per-byte every
    train.eval_every steps. Built here because train/ does not import eval/."""
    if heldout is None:
        if cfg.train.eval_every:
            log(f"[yellow]train.eval_every={cfg.train.eval_every}: no --heldout given, so no periodic eval")
        return None
    if not cfg.train.eval_every:
        raise UserError("--heldout: set train.eval_every=N as well (the steps between evaluations)")
    pack = resolve_data_dir(data)
    tok = Path(tokenizer) if tokenizer is not None else pack.parent / "tokenizer"
    if not (tok.is_file() or (tok / "tokenizer.json").is_file()):
        raise UserError(f"--heldout: no tokenizer at {tok}; pass --tokenizer DIR (the one the pack was made with)")
    return make_bpb_eval(heldout, tok, pack, cfg.eval)


def _run_all(cfg: RunConfig, run: Path, workers: int, force: bool) -> Path:
    _claim_run(run, force)
    atomic_write(run / "config.toml", to_toml(cfg))
    run_harvest(cfg.data, run / "harvest", workers=workers, force=force)
    run_curate(cfg.data, run / "harvest", run / "curate", workers=workers, force=force)
    run_tokenizer(cfg.tokenizer, run / "curate", run / "tokenizer", force=force)
    run_pack(cfg.pack, run / "curate", run / "tokenizer", run / "pack", force=force)
    # Periodic held-out bpb during training (train.eval_every), logged to metrics and TensorBoard.
    eval_fn = (make_bpb_eval(run / "curate" / "heldout", run / "tokenizer", run / "pack", cfg.eval)
               if cfg.train.eval_every else None)
    train = dict(tokenizer_file=run / "tokenizer" / "tokenizer.json", eval_fn=eval_fn, force=force)
    try:
        run_train(cfg.model, cfg.train, cfg.stability, run / "pack", run / "train", resume=True, **train)
    except OtherRunError:
        # The chain reruns a stage whose settings changed, as every data stage does; for training
        # that means starting over (only train's own outputs are removed), and it says so.
        log(f"[yellow]train: the model/train settings changed since {run / 'train'} was trained; "
            "training again from step 0")
        run_train(cfg.model, cfg.train, cfg.stability, run / "pack", run / "train", resume=False, **train)
    run_eval(cfg.eval, run / "curate" / "heldout", run / "train", run / "pack", run / "eval", force=force)
    report = write_report(run)
    log(f"report: {report}")
    return report
