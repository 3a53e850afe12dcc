"""The `gptlab` command line. It only wires arguments to library functions.

It is also the one error boundary: a user's mistake (:class:`gptlab.errors.UserError`, a
missing or unreadable file) becomes one line naming the file, key or flag, with exit code 2;
``--debug`` shows the traceback; anything else is reported as a bug in gptlab."""
from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import sys
import traceback

from gptlab.advise.answers import MEASURED, add_answer_arguments, answers_from_args
from gptlab.advise.command import advise_command, bakeoff_command
from gptlab.config import load_config, to_dict
from gptlab.console import setup_logging
from gptlab.data.classifier import train_from_paths
from gptlab.data.curate import run_curate
from gptlab.device import resolve_device
from gptlab.errors import UserError
from gptlab.eval.bpb import run_eval
from gptlab.eval.generate import run_generate
from gptlab.eval.tasks import run_tasks
from gptlab.finetune.command import add_finetune_parser
from gptlab.interop import export_hf, import_hf
from gptlab.lab.command import ablation_report_command, add_ablate_parser
from gptlab.manifest import recording
from gptlab.pack.build import run_pack
from gptlab.pipeline import demo_preset, demo_sizes, periodic_eval, run_all
from gptlab.plan.command import add_plan_parser
from gptlab.report import write_report
from gptlab.selftest.command import add_selftest_parser
from gptlab.sources.harvest import run_harvest
from gptlab.tokenizer import run_tokenizer
from gptlab.train.loop import run_train


def _config(args, fragments=()):
    """The resolved config; every manifest written by this command records it."""
    cfg = load_config(getattr(args, "config", None), args.overrides, fragments=list(fragments))
    args._recording.enter_context(recording(to_dict(cfg)))
    return cfg


FORCE_HELP = "write into a non-empty folder gptlab did not make, or replace another stage's output"


def _add_force(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true", help=FORCE_HELP)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML config file (see configs/)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. train.lr=3e-4")


def cmd_demo(args) -> None:
    cfg = _config(args, [demo_preset(args.size)])
    report = run_all(cfg, args.out, workers=args.workers, force=args.force)
    print(report)


def cmd_harvest(args) -> None:
    run_harvest(_config(args).data, args.out, workers=args.workers, force=args.force)


def cmd_curate(args) -> None:
    run_curate(_config(args).data, args.input, args.out, workers=args.workers, recipe=args.recipe,
               executor=args.executor, force=args.force)


def cmd_classifier_train(args) -> None:
    train_from_paths(args.positives, args.negatives, args.out, max_docs=args.max_docs, seed=args.seed,
                     force=args.force)


def cmd_pack(args) -> None:
    run_pack(_config(args).pack, args.input, args.tokenizer, args.out, force=args.force)


def cmd_tokenizer_train(args) -> None:
    run_tokenizer(_config(args).tokenizer, args.input, args.out, force=args.force)


EXIT_STOPPED = 3   # `gptlab train`: the stability guard stopped the run (its last good checkpoint is kept)


def cmd_train(args) -> int:
    cfg = _config(args)
    eval_fn = periodic_eval(cfg, args.heldout, args.data, args.tokenizer)
    summary = run_train(cfg.model, cfg.train, cfg.stability, args.data, args.out, resume=not args.restart,
                        eval_fn=eval_fn, force=args.force)
    if summary.get("stopped"):
        print(f"gptlab: train stopped by the stability guard: {summary['stopped']} (last good checkpoint: "
              f"{summary.get('checkpoint') or 'none'}; see {args.out}/events.jsonl)", file=sys.stderr)
        return EXIT_STOPPED
    return 0


def cmd_eval(args) -> None:
    cfg = _config(args)
    if args.device is not None:
        cfg.eval.device = args.device
    device = str(resolve_device(cfg.eval.device, key="--device"))
    e = cfg.eval
    if not (args.heldout or args.tasks or args.harness):
        raise UserError("gptlab eval needs --heldout (bits-per-byte), --tasks FILE... or --harness TASKS")
    if args.heldout:
        run_eval(e, args.heldout, args.checkpoint, args.pack, args.out, force=args.force)
    if args.tasks:
        run_tasks(args.checkpoint, args.tasks.split(","), args.out, e.num_fewshot, e.fewshot_seed, args.fewshot_pool,
                  e.batch_size, e.max_new_tokens, device=device, force=args.force, ecfg=e)
    # The harness writes OUT/harness/ last: bpb and tasks first claim OUT and OUT/tasks as stages.
    if args.harness:
        from gptlab.eval.harness import run_harness  # noqa: PLC0415  (optional extra lm-eval, seconds to import)
        run_harness(args.harness.split(","), args.checkpoint, args.out, args.include_path,
                    e.num_fewshot or None, args.limit, e.batch_size, device, log_samples=args.log_samples)


def cmd_report(args) -> None:
    if args.ablation:
        print(ablation_report_command(args.ablation))
    elif args.run:
        print(write_report(args.run, args.out))
    else:
        raise UserError("gptlab report needs a run folder, or --ablation DIR")


def cmd_export(args) -> None:
    print(export_hf(args.checkpoint, args.out, arch=args.arch, force=args.force))


def cmd_import(args) -> None:
    print(import_hf(args.input, args.out, block_size=args.block_size, force=args.force))


def _add_interop(sub) -> None:
    p = sub.add_parser("export", help="write a checkpoint as a Hugging Face model folder")
    p.add_argument("--format", choices=("hf",), default="hf")
    p.add_argument("--checkpoint", required=True, help="a checkpoint, training or run folder")
    p.add_argument("--out", required=True)
    p.add_argument("--arch", help="force a target: gpt2, opt, bloom, llama or cohere (default: the exact match)")
    _add_force(p)
    p.set_defaults(fn=cmd_export)
    p = sub.add_parser("import", help="read a local Hugging Face model folder into a gptlab checkpoint")
    p.add_argument("--format", choices=("hf",), default="hf")
    p.add_argument("--input", required=True, help="a folder with config.json and model.safetensors")
    p.add_argument("--out", required=True)
    p.add_argument("--block-size", type=int, help="context length, for architectures that store none (BLOOM)")
    _add_force(p)
    p.set_defaults(fn=cmd_import)
def cmd_advise(args) -> None:
    if args.advise_command == "bakeoff":
        bakeoff_command(args.train, args.test, args.task, args.model, args.out, args.json, args.answers,
                        answers_from_args(args), small_model=args.small_model, shots=args.shots, max_chars=args.max_chars, seed=args.seed,
                        usd_per_hour=args.usd_per_hour, usd_per_1k_tokens=args.usd_per_1k_tokens,
                        finetune_steps=args.finetune_steps, device=args.device, hybrid=args.hybrid,
                        force=args.force)
    else:
        if args.out and args.answers and os.path.exists(args.out) and os.path.samefile(args.out, args.answers):
            raise UserError(f"--out {args.out}: is the --answers file; name another file for the advice")
        advise_command(args.answers, answers_from_args(args), args.interactive, args.json, args.out, args.flow)


def _add_advise(sub) -> None:
    p = sub.add_parser("advise", help="prompt a large LLM or fine-tune a smaller model? (rules + bake-off)")
    p.add_argument("--answers", help="YAML file of answers (see docs/advise.md)")
    p.add_argument("--interactive", action=argparse.BooleanOptionalAction, default=None,
                   help="ask the questions (default: when no answers are given and stdin is a terminal)")
    p.add_argument("--json", action="store_true", help="print the advice as JSON")
    p.add_argument("--out", help="also write the advice as JSON to this file")
    p.add_argument("--flow", action="store_true", help="print the rule table as a mermaid decision flow")
    add_answer_arguments(p)
    p.set_defaults(fn=cmd_advise, advise_command=None)
    b = p.add_subparsers(dest="advise_command").add_parser(
        "bakeoff", help="measure k-shot prompting vs fine-tuned probes on your labelled JSONL")
    b.add_argument("--train", required=True, help="JSONL: {text, label} or {input, target}")
    b.add_argument("--test", required=True)
    b.add_argument("--task", choices=("classification", "generation"), default="classification")
    b.add_argument("--model", help="a gptlab checkpoint/run folder or a local Hugging Face model folder")
    b.add_argument("--small-model", help="the model the fine-tuned arms start from (default: --model)")
    b.add_argument("--out", help="folder for bakeoff.json, report.md, predictions.jsonl")
    b.add_argument("--shots", type=int, default=4)
    b.add_argument("--max-chars", type=int, default=400, help="characters of each text shown to the models")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--usd-per-hour", type=float, default=0.10, help="serving machine price (cost model)")
    b.add_argument("--usd-per-1k-tokens", type=float, default=0.0, help="API price per 1k prompt tokens")
    b.add_argument("--finetune-steps", type=int, default=100, help="steps of `gptlab finetune` for the fine-tuned (and hybrid) arm")
    b.add_argument("--hybrid", action="store_true",
                   help="also measure the hybrid road: the prompted LM labels the training set, the small model is fine-tuned on it")
    b.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu", help="where the LM arms run")
    b.add_argument("--answers", help="YAML file of answers about constraints (latency, budget...)")
    b.add_argument("--json", action="store_true", help="print the whole report as JSON")
    _add_force(b)
    # The bake-off measures these itself; the task kind can still come from --answers.
    add_answer_arguments(b, exclude=("task", "labels") + MEASURED)


def _check_sampling(args) -> None:
    """Refuse sampling flags that have no meaning, naming the flag (one line, exit 2)."""
    if not (math.isfinite(args.temperature) and args.temperature >= 0):
        raise UserError(f"--temperature {args.temperature}: must be a finite number >= 0 (0 = greedy)")
    if args.top_p is not None and not (0 < args.top_p <= 1):
        raise UserError(f"--top-p {args.top_p}: must be in (0, 1], e.g. 0.95")
    if args.top_k < 0:
        raise UserError(f"--top-k {args.top_k}: must be >= 0 (0 = off)")
    if args.num_samples < 1:
        raise UserError(f"--num-samples {args.num_samples}: must be >= 1")
    if args.max_new_tokens < 1:
        raise UserError(f"--max-new-tokens {args.max_new_tokens}: must be >= 1")


def cmd_generate(args) -> None:
    _check_sampling(args)
    texts = run_generate(args.checkpoint, args.prompt, args.max_new_tokens, args.temperature, args.top_k or None,
                         args.top_p, args.seed, args.num_samples, use_cache=not args.no_cache, device=args.device)
    for i, text in enumerate(texts):
        if i:
            print("-" * 40)
        print(args.prompt + text)


def _add_generate(sub) -> None:
    p = sub.add_parser("generate", help="sample text from a checkpoint")
    p.add_argument("--checkpoint", required=True, help="a checkpoint, training or run folder")
    p.add_argument("--prompt", required=True)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    p.add_argument("--top-k", type=int, default=50, help="0 = off")
    p.add_argument("--top-p", type=float, help="nucleus sampling, e.g. 0.95")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-samples", type=int, default=1)
    p.add_argument("--no-cache", action="store_true", help="recompute the whole context at every step")
    p.add_argument("--device", default="cpu")
    p.set_defaults(fn=cmd_generate)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="gptlab", description="Pretrain GPT-style models the way that worked.")
    ap.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="run the whole chain on the embedded corpus")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--size", choices=demo_sizes(), default="small")
    p.add_argument("--workers", type=int, default=2)
    _add_common(p)
    _add_force(p)
    p.set_defaults(fn=cmd_demo)

    data = sub.add_parser("data", help="data stages").add_subparsers(dest="data_command", required=True)
    p = data.add_parser("harvest", help="harvest the embedded corpus from this machine")
    p.add_argument("--out", required=True)
    p.add_argument("--workers", type=int, default=2)
    _add_common(p)
    _add_force(p)
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
    _add_force(p)
    p.set_defaults(fn=cmd_curate)
    clf = data.add_parser("classifier", help="GPT-3's quality classifier").add_subparsers(
        dest="classifier_command", required=True)
    p = clf.add_parser("train", help="train on reference text vs raw documents; report precision/recall")
    p.add_argument("--positives", required=True, nargs="+", help="high-quality reference inputs")
    p.add_argument("--negatives", required=True, nargs="+", help="raw documents")
    p.add_argument("--out", required=True)
    p.add_argument("--max-docs", type=int, default=20000, help="per class")
    p.add_argument("--seed", type=int, default=0)
    _add_force(p)
    p.set_defaults(fn=cmd_classifier_train)
    p = data.add_parser("pack", help="tokenize and pack the training split")
    p.add_argument("--input", required=True, help="a curate folder")
    p.add_argument("--tokenizer", required=True, help="a tokenizer folder")
    p.add_argument("--out", required=True)
    _add_common(p)
    _add_force(p)
    p.set_defaults(fn=cmd_pack)

    tok = sub.add_parser("tokenizer", help="tokenizer stages").add_subparsers(dest="tok_command", required=True)
    p = tok.add_parser("train", help="train a byte-level BPE on the training split")
    p.add_argument("--input", required=True, help="a curate folder")
    p.add_argument("--out", required=True)
    _add_common(p)
    _add_force(p)
    p.set_defaults(fn=cmd_tokenizer_train)

    p = sub.add_parser("train", help="train a model on packed data")
    p.add_argument("--data", required=True, help="a pack folder or a run folder")
    p.add_argument("--out", required=True)
    p.add_argument("--resume", action="store_true",
                   help="accepted for compatibility: a run folder of the same config always resumes from "
                        "its newest checkpoint that verifies")
    p.add_argument("--restart", "--no-resume", dest="restart", action="store_true",
                   help="start over: remove this run's checkpoints, metrics and events first")
    p.add_argument("--heldout", help="held-out shard or folder (e.g. RUN/curate): bits-per-byte every "
                                     "train.eval_every steps, in metrics.jsonl and the report")
    p.add_argument("--tokenizer", help="tokenizer folder for --heldout (default: tokenizer/ beside the pack)")
    _add_common(p)
    _add_force(p)
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser("eval", help="held-out bits-per-byte per domain, local tasks, lm-eval tasks")
    p.add_argument("--checkpoint", required=True, help="a checkpoint, training or run folder")
    p.add_argument("--heldout", help="a held-out shard or folder (e.g. RUN/curate), for bits-per-byte")
    p.add_argument("--pack", help="pack folder, for the unigram baseline")
    p.add_argument("--out", required=True)
    p.add_argument("--tasks", metavar="FILES", help="comma-separated local JSONL tasks (see docs/eval.md)")
    p.add_argument("--fewshot-pool", help="a JSONL task whose rows serve as the few-shot examples")
    p.add_argument("--harness", metavar="TASKS", help="comma-separated lm-evaluation-harness tasks")
    p.add_argument("--include-path", help="a folder of lm-eval task YAML files")
    p.add_argument("--limit", type=int, help="lm-eval: at most this many rows per task")
    p.add_argument("--log-samples", action="store_true", help="lm-eval: keep per-row requests and answers")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="where the model runs (default: eval.device)")
    _add_common(p)
    _add_force(p)
    p.set_defaults(fn=cmd_eval)

    p = sub.add_parser("report", help="write report.html for a run folder (or an ablation folder)")
    p.add_argument("run", nargs="?")
    p.add_argument("--out")
    p.add_argument("--ablation", metavar="DIR", help="the report of a `gptlab ablate` folder")
    p.set_defaults(fn=cmd_report)

    _add_interop(sub)
    _add_advise(sub)
    _add_generate(sub)
    add_plan_parser(sub)
    add_ablate_parser(sub)
    add_selftest_parser(sub)
    add_finetune_parser(sub)
    return ap


def _one_line(e: BaseException) -> str:
    """An OS error as 'PATH: reason'; anything else as its message, on one line."""
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        return f"{e.filename}: {e.strerror}"
    return " ".join(str(e).split()) or type(e).__name__


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not hasattr(args, "overrides"):
        args.overrides = []
    setup_logging(logging.DEBUG if args.debug else logging.INFO)
    try:
        with contextlib.ExitStack() as args._recording:
            rc = args.fn(args)
    except (UserError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as e:
        if args.debug:
            traceback.print_exc()
        print(f"gptlab: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader of our output went away (`gptlab advise --json | head`): not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("gptlab: interrupted; finished stages and checkpoints are kept: rerun the same command to "
              "continue (`gptlab train` resumes from its newest checkpoint; --restart starts over)",
              file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001  (the boundary: anything else is a bug)
        if args.debug:
            traceback.print_exc()
        print(f"gptlab: internal error (this is a bug in gptlab, not in your input): {type(e).__name__}: "
              f"{_one_line(e)}\n  Please report it on gptlab's issue tracker with the command you ran and "
              "the output of the same command with --debug.", file=sys.stderr)
        return 1
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(main())
