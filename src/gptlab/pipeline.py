"""The whole chain into one run folder: harvest → curate → tokenizer → pack → train → eval → report.

Each stage owns a subfolder and a manifest, so rerunning skips what is complete and an
interrupted chain picks up at the stage (and, for training, the checkpoint) it reached.
"""
from __future__ import annotations

from pathlib import Path

from gptlab.config import RunConfig


def run_all(cfg: RunConfig, out_dir: str | Path, workers: int = 2) -> Path:
    from gptlab.console import log
    from gptlab.data.curate import run_curate
    from gptlab.data.harvest import run_harvest
    from gptlab.data.pack import run_pack
    from gptlab.eval.bpb import make_bpb_eval, run_eval
    from gptlab.manifest import atomic_write
    from gptlab.config import to_toml
    from gptlab.report import write_report
    from gptlab.tokenizer import run_tokenizer
    from gptlab.train.loop import run_train

    run = Path(out_dir)
    run.mkdir(parents=True, exist_ok=True)
    atomic_write(run / "config.toml", to_toml(cfg))
    run_harvest(cfg, run / "harvest", workers=workers)
    run_curate(cfg, run / "harvest", run / "curate", workers=workers)
    run_tokenizer(cfg, run / "curate", run / "tokenizer")
    run_pack(cfg, run / "curate", run / "tokenizer", run / "pack")
    # Periodic held-out bpb during training (train.eval_every), logged to metrics and TensorBoard.
    eval_fn = (make_bpb_eval(run / "curate" / "heldout", run / "tokenizer", run / "pack", cfg)
               if cfg.train.eval_every else None)
    run_train(cfg, run / "pack", run / "train", resume=True, tokenizer_file=run / "tokenizer" / "tokenizer.json",
              eval_fn=eval_fn)
    run_eval(cfg, run / "curate" / "heldout", run / "train", run / "pack", run / "eval")
    report = write_report(run)
    log(f"report: {report}")
    return report
