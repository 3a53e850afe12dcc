"""The `gptlab` command line. It only wires arguments to library functions."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _config(args, fragments=()):
    from gptlab.config import load_config
    return load_config(getattr(args, "config", None), args.overrides, fragments=list(fragments))


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML config file (see configs/)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. train.lr=3e-4")


def cmd_demo(args) -> None:
    from gptlab.config import demo_preset
    from gptlab.pipeline import run_all
    cfg = _config(args, [demo_preset(args.size)])
    report = run_all(cfg, args.out, workers=args.workers)
    print(report)


def cmd_harvest(args) -> None:
    from gptlab.data.harvest import run_harvest
    run_harvest(_config(args), args.out, workers=args.workers)


def cmd_curate(args) -> None:
    from gptlab.data.curate import run_curate
    run_curate(_config(args), args.input, args.out, workers=args.workers, recipe=args.recipe,
               executor=args.executor)


def cmd_classifier_train(args) -> None:
    from gptlab.data.classifier import train_from_paths
    train_from_paths(args.positives, args.negatives, args.out, max_docs=args.max_docs, seed=args.seed)


def cmd_pack(args) -> None:
    from gptlab.data.pack import run_pack
    run_pack(_config(args), args.input, args.tokenizer, args.out)


def cmd_tokenizer_train(args) -> None:
    from gptlab.tokenizer import run_tokenizer
    run_tokenizer(_config(args), args.input, args.out)


def cmd_train(args) -> None:
    from gptlab.train.loop import run_train
    run_train(_config(args), args.data, args.out, resume=args.resume)


def cmd_eval(args) -> None:
    from gptlab.eval.bpb import run_eval
    run_eval(_config(args), args.heldout, args.checkpoint, args.pack, args.out)


def cmd_report(args) -> None:
    from gptlab.report import write_report
    print(write_report(args.run, args.out))


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="gptlab", description="Pretrain GPT-style models the way that worked.")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="run the whole chain on the embedded corpus")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--size", choices=("tiny", "small"), default="small")
    p.add_argument("--workers", type=int, default=2)
    _add_common(p)
    p.set_defaults(fn=cmd_demo)

    data = sub.add_parser("data", help="data stages").add_subparsers(dest="data_command", required=True)
    p = data.add_parser("harvest", help="harvest the embedded corpus from this machine")
    p.add_argument("--out", required=True)
    p.add_argument("--workers", type=int, default=2)
    _add_common(p)
    p.set_defaults(fn=cmd_harvest)
    p = data.add_parser("curate", help="run a curation recipe: filter, dedup and split documents")
    p.add_argument("--input", required=True, nargs="+",
                   help="harvest folders, JSONL(.gz/.zst), Parquet, WARC/WET files or folders of them")
    p.add_argument("--out", required=True)
    p.add_argument("--recipe", help="built-in recipe (default, dedup, embedded) or a recipe .toml "
                                    "(default: data.recipe)")
    p.add_argument("--executor", choices=("local", "ray"), help="local process pool or Ray (RAY_ADDRESS)")
    p.add_argument("--workers", type=int, default=2)
    _add_common(p)
    p.set_defaults(fn=cmd_curate)
    clf = data.add_parser("classifier", help="GPT-3's quality classifier").add_subparsers(
        dest="classifier_command", required=True)
    p = clf.add_parser("train", help="train on reference text vs raw documents; report precision/recall")
    p.add_argument("--positives", required=True, nargs="+", help="high-quality reference inputs")
    p.add_argument("--negatives", required=True, nargs="+", help="raw documents")
    p.add_argument("--out", required=True)
    p.add_argument("--max-docs", type=int, default=20000, help="per class")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=cmd_classifier_train)
    p = data.add_parser("pack", help="tokenize and pack the training split")
    p.add_argument("--input", required=True, help="a curate folder")
    p.add_argument("--tokenizer", required=True, help="a tokenizer folder")
    p.add_argument("--out", required=True)
    _add_common(p)
    p.set_defaults(fn=cmd_pack)

    tok = sub.add_parser("tokenizer", help="tokenizer stages").add_subparsers(dest="tok_command", required=True)
    p = tok.add_parser("train", help="train a byte-level BPE on the training split")
    p.add_argument("--input", required=True, help="a curate folder")
    p.add_argument("--out", required=True)
    _add_common(p)
    p.set_defaults(fn=cmd_tokenizer_train)

    p = sub.add_parser("train", help="train a model on packed data")
    p.add_argument("--data", required=True, help="a pack folder or a run folder")
    p.add_argument("--out", required=True)
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint that verifies")
    _add_common(p)
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser("eval", help="held-out bits-per-byte per domain")
    p.add_argument("--checkpoint", required=True, help="a checkpoint, training or run folder")
    p.add_argument("--heldout", required=True, help="a held-out shard or folder (e.g. RUN/curate)")
    p.add_argument("--pack", help="pack folder, for the unigram baseline")
    p.add_argument("--out", required=True)
    _add_common(p)
    p.set_defaults(fn=cmd_eval)

    p = sub.add_parser("report", help="write report.html for a run folder")
    p.add_argument("run")
    p.add_argument("--out")
    p.set_defaults(fn=cmd_report)
    return ap


def main(argv: list[str] | None = None) -> int:
    from gptlab.config import ConfigError
    args = build_parser().parse_args(argv)
    if not hasattr(args, "overrides"):
        args.overrides = []
    try:
        args.fn(args)
    except (ConfigError, FileNotFoundError) as e:
        print(f"gptlab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gptlab: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
