"""`gptlab plan`: the command line of the planner (parser and command, for cli.py to mount).

    gptlab plan model.preset=gpt3-175b --tokens 300B --gpu A100-80G --gpus 1024 --mfu 0.4
    gptlab plan --published opt-175b --goodput 0.45 --usd-per-gpu-hour 2
    gptlab plan --config run.toml --tokens 20B --gpu H100 --gpus 64 --mfu-from bench.json --json
    gptlab plan --list-gpus
    gptlab plan data --input-tb 10 --recipe default --target-hours 24   (curation: see plan/data.py)

Numeric flags are read here rather than by argparse, so that a bad value is a one-line
:class:`UserError` naming the flag, like every other user mistake.

``--mfu-from FILE`` reads a JSON object with either ``"mfu"`` (a fraction, 0.41 for 41 %) or
``"tokens_per_s"``, ``"flops_per_token"`` and ``"peak_flops"`` (or ``"peak_tflops"``) per GPU,
from which MFU = tokens_per_s · flops_per_token / peak_flops. ``bench/train_throughput.py``
prints that MFU (with ``--peak-tflops``); write it in this form to plan from it.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from gptlab.config import load_config
from gptlab.errors import UserError
from gptlab.plan.compute import mfu_from_tflops, parse_count
from gptlab.plan.data import plan_data, render_data_plan
from gptlab.plan.gpus import GPUS, Accelerator, find_gpu
from gptlab.plan.memory import OPTIMIZERS, Settings
from gptlab.plan.planner import Inputs, Plan, make_plan, render
from gptlab.plan.published import PUBLISHED, Published, corpus_tokens, find_published
from gptlab.plan.shape import DEFAULT_VOCAB, shape_from_config

DEFAULT_GPU = "A100-80G"
DEFAULT_GPUS = 8
DEFAULT_MFU = 0.4   # a common well-tuned large-run figure (OPT ≈ 47 %, PaLM 46 %, Megatron 41-48 %)


class _PlanParser(argparse.ArgumentParser):
    """`plan` takes free ``key=value`` positionals, so `plan data` cannot be an argparse
    subcommand (``model.preset=x`` would be read as a command name). Instead a first
    positional of exactly ``data`` hands the rest of the line to the data planner's parser."""

    data_parser: argparse.ArgumentParser

    def parse_known_args(self, args=None, namespace=None):
        if args and args[0] == "data":
            return self.data_parser.parse_known_args(args[1:], namespace)
        return super().parse_known_args(args, namespace)


def add_plan_data_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--input-tb", required=True, help="document text to curate, in TB (10^12 bytes)")
    p.add_argument("--recipe", default="default", help="a built-in recipe name or a recipe TOML (default: default)")
    p.add_argument("--target-hours", default="24", help="wall time to size the cluster for (default 24)")
    p.add_argument("--throughput", metavar="JSON",
                   help="per-step figures from bench/data_throughput.py --json (default: the shipped measurement)")
    p.add_argument("--cores-per-node", default="32", help="CPU cores per Ray node (default 32)")
    p.add_argument("--efficiency", default="1", help="share of perfect scaling the cluster reaches (default 1)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(fn=cmd_plan_data)
    return p


def add_plan_parser(sub) -> argparse.ArgumentParser:
    """Mount `plan` (and `plan data`) on a subparsers object (``cli.py``: ``add_plan_parser(sub)``)."""
    p = sub.add_parser("plan", help="memory, FLOPs, days and cost of a training run (or `plan data`: of curation)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.__class__ = _PlanParser  # see _PlanParser: `plan data ...` goes to its own parser
    p.data_parser = add_plan_data_arguments(argparse.ArgumentParser(
        prog=f"{p.prog} data", description=_DATA_DOC,
        formatter_class=argparse.RawDescriptionHelpFormatter))
    p.add_argument("--config", help="TOML config file whose model and train sections are planned")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="dotted overrides, e.g. model.preset=gpt3-175b model.vocab_size=50257")
    p.add_argument("--published", metavar="RUN", help=f"start from a published run ({', '.join(PUBLISHED)})")
    p.add_argument("--tokens", help="tokens to train on: 300B, 1.5T, 3e11")
    p.add_argument("--corpus-tokens", metavar="N|RUN",
                   help="corpus size, for epochs: a count, or palm/gpt3/opt/bloom from the post's table")
    p.add_argument("--gpu", help=f"accelerator ({', '.join(GPUS)}; default {DEFAULT_GPU})")
    p.add_argument("--gpus", help=f"how many (default {DEFAULT_GPUS})")
    p.add_argument("--mfu", help=f"model FLOPs utilisation as a fraction (default {DEFAULT_MFU})")
    p.add_argument("--mfu-from", metavar="JSON", help='a JSON with "mfu", e.g. measured by bench/train_throughput.py')
    p.add_argument("--tflops-per-gpu", help="a measured or quoted model TFLOP/s per GPU, instead of an MFU")
    p.add_argument("--goodput", help="share of wall time spent training, after restarts and lost work (default 1)")
    p.add_argument("--usd-per-gpu-hour", help="price of one GPU-hour, for the cost")
    p.add_argument("--micro-batch", help="sequences per GPU per forward pass (default 1)")
    p.add_argument("--optimizer", choices=OPTIMIZERS,
                   help="adamw; adafactor = factored, no momentum; adafactor-palm = unfactored with β1 "
                        "(PaLM's, gptlab's train.optimizer=adafactor). Default: from train.optimizer")
    p.add_argument("--weights", choices=("bf16", "fp32"), default="bf16",
                   help="bf16 weights with an fp32 master copy, or fp32 weights under autocast")
    p.add_argument("--attention", choices=("flash", "naive"), default="flash",
                   help="fused attention stores no s×s scores; naive stores them (Korthikanti's 5·a·s/h term)")
    p.add_argument("--head-dim", help="head width when it is not n_embd/n_head (PaLM 540B: 256)")
    p.add_argument("--list-gpus", action="store_true", help="print the accelerator table with sources")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(fn=cmd_plan)
    return p


# --------------------------------------------------------------------------- flag values

def _number(value: Any, flag: str, *, lo: float = 0.0, hi: float = math.inf, integer: bool = False,
            inclusive_lo: bool = False) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{flag}: expected a number, got {value!r}") from None
    if integer and (not x.is_integer()):
        raise UserError(f"{flag}: expected a whole number, got {value!r}")
    ok_lo = x >= lo if inclusive_lo else x > lo
    if not (math.isfinite(x) and ok_lo and x <= hi):
        bound = f"{'≥' if inclusive_lo else '>'} {lo:g}" + (f" and ≤ {hi:g}" if math.isfinite(hi) else "")
        raise UserError(f"{flag}: must be {bound}, got {value!r}")
    return int(x) if integer else x


def _fraction(value: Any, flag: str) -> float:
    x = _number(value, flag, lo=0.0, hi=math.inf)
    if x > 1:
        hint = f" (a fraction: {x / 100:g} for {x:g} %)" if x <= 100 else ""
        raise UserError(f"{flag}: must be in (0, 1]{hint}, got {value!r}")
    return x


def mfu_from_json(path: str) -> tuple[float, str]:
    """The MFU recorded in a JSON file (see the module docstring for the two accepted forms)."""
    flag = "--mfu-from"
    try:
        data = json.loads(Path(path).read_text())
    except OSError as e:
        raise UserError(f"{flag}: {path}: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{flag}: {path} is not JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(data, dict):
        raise UserError(f"{flag}: {path} must hold a JSON object")
    if "mfu" in data:
        return _fraction(data["mfu"], f"{flag} {path}: mfu"), f"measured, {path}"
    has_peak = "peak_flops" in data or "peak_tflops" in data
    if "tokens_per_s" in data and "flops_per_token" in data and has_peak:
        peak = (_number(data["peak_flops"], f"{flag} {path}: peak_flops") if "peak_flops" in data
                else _number(data["peak_tflops"], f"{flag} {path}: peak_tflops") * 1e12)
        mfu = (_number(data["tokens_per_s"], f"{flag} {path}: tokens_per_s")
               * _number(data["flops_per_token"], f"{flag} {path}: flops_per_token") / peak)
        return _fraction(mfu, f"{flag} {path}: tokens_per_s·flops_per_token/peak_flops"), f"measured, {path}"
    raise UserError(f'{flag}: {path} has no "mfu" key (nor "tokens_per_s", "flops_per_token" and "peak_flops")')


def _resolve_mfu(args, gpu: Accelerator, pub: Published | None) -> tuple[float, str]:
    given = [f for f, v in (("--mfu", args.mfu), ("--mfu-from", args.mfu_from),
                            ("--tflops-per-gpu", args.tflops_per_gpu)) if v is not None]
    if len(given) > 1:
        raise UserError(f"{given[1]}: give one of --mfu, --mfu-from, --tflops-per-gpu (got {' and '.join(given)})")
    if args.mfu is not None:
        return _fraction(args.mfu, "--mfu"), "given"
    if args.mfu_from is not None:
        return mfu_from_json(args.mfu_from)
    if args.tflops_per_gpu is not None:
        tf = _number(args.tflops_per_gpu, "--tflops-per-gpu")
        if tf * 1e12 > gpu.peak_bf16:
            raise UserError(f"--tflops-per-gpu: {tf:g} is above the {gpu.name}'s dense bf16 peak of "
                            f"{gpu.peak_bf16 / 1e12:g} TFLOP/s")
        return mfu_from_tflops(tf, gpu), f"{tf:g} TFLOP/s ÷ {gpu.peak_bf16 / 1e12:g} peak"
    if pub is not None and pub.mfu is not None:
        return pub.mfu, f"published, {pub.name}"
    if pub is not None and pub.tflops_per_gpu is not None:
        return mfu_from_tflops(pub.tflops_per_gpu, gpu), \
            f"published {pub.tflops_per_gpu:g} TFLOP/s ÷ {gpu.peak_bf16 / 1e12:g} peak"
    return DEFAULT_MFU, "assumed"


# --------------------------------------------------------------------------- inputs

def inputs_from_args(args) -> Inputs:
    """Flags (and the config they name) → the planner's inputs, every mistake a UserError."""
    for item in args.overrides or []:
        if "=" not in item:
            raise UserError(f"plan: {item!r} is not a key=value override")
    pub = find_published(args.published) if args.published else None
    overrides = list(pub.overrides if pub else ()) + list(args.overrides or [])
    cfg = load_config(args.config, overrides)

    head_dim = int(_number(args.head_dim, "--head-dim", integer=True)) if args.head_dim is not None \
        else (pub.head_dim if pub else None)
    shape = shape_from_config(cfg.model, seq=cfg.pack.seq_len, head_dim=head_dim)
    name = args.published or next((o.split("=", 1)[1] for o in reversed(overrides) if o.startswith("model.preset=")),
                                  None) or (Path(args.config).stem if args.config else "default model")

    gpu = find_gpu(args.gpu or (pub.gpu if pub else DEFAULT_GPU))
    n_gpus = int(_number(args.gpus, "--gpus", integer=True)) if args.gpus is not None \
        else (pub.n_gpus if pub else DEFAULT_GPUS)

    corpus, seen, corpus_src = (None, None, None)
    if args.corpus_tokens is not None:
        corpus, seen, corpus_src = corpus_tokens(args.corpus_tokens)
    elif pub is not None:
        corpus, seen, corpus_src = corpus_tokens(pub.corpus)
    if args.tokens is not None:
        tokens = parse_count(args.tokens, "--tokens")
    elif pub is not None:
        tokens = pub.tokens
    elif seen is not None:
        tokens = seen
    else:
        raise UserError("--tokens: how many tokens to train on (e.g. --tokens 300B), or --published RUN")

    mfu, mfu_source = _resolve_mfu(args, gpu, pub)
    goodput = _fraction(args.goodput, "--goodput") if args.goodput is not None else 1.0
    price = _number(args.usd_per_gpu_hour, "--usd-per-gpu-hour", inclusive_lo=True) \
        if args.usd_per_gpu_hour is not None else None
    micro = int(_number(args.micro_batch, "--micro-batch", integer=True)) if args.micro_batch is not None else 1

    t = cfg.train
    optimizer = args.optimizer or ("adamw" if t.optimizer == "adamw"
                                   else "adafactor-palm" if t.beta1 > 0 else "adafactor")
    settings = Settings(optimizer=optimizer, weights=args.weights, act_bytes=4 if t.precision == "fp32" else 2,
                        micro_batch=micro, global_batch=t.batch_size, flash=args.attention == "flash")
    notes = []
    if cfg.model.vocab_size is None:
        notes.append(f"model.vocab_size unset: planned with {DEFAULT_VOCAB} (GPT-2's BPE)")
    if cfg.model.block_size is None:
        notes.append(f"model.block_size unset: planned with pack.seq_len = {shape.seq}")
    published = None
    if pub is not None:
        published = {"run": pub.name, "reported": dict(pub.reported)}
    inputs = Inputs(model_name=name, shape=shape, gpu=gpu, n_gpus=n_gpus, tokens=tokens, mfu=mfu,
                    mfu_source=mfu_source, goodput=goodput, usd_per_gpu_hour=price, corpus_tokens=corpus,
                    corpus_source=corpus_src, settings=settings, published=published, notes=tuple(notes))
    return inputs


def plan_from_args(args) -> Plan:
    return make_plan(inputs_from_args(args))


# --------------------------------------------------------------------------- output

def gpu_table() -> Table:
    t = Table(title="Accelerators (dense bf16 peak)", title_justify="left")
    for col in ("name", "TFLOP/s", "memory GB", "tensor-parallel sizes", "source"):
        t.add_column(col)
    for g in GPUS.values():
        t.add_row(g.name, f"{g.peak_bf16 / 1e12:g}", f"{g.memory / 1e9:.0f}", ",".join(map(str, g.tp_sizes)), g.source)
    return t


_DATA_DOC = """Core-hours per step of a curation recipe and the Ray cluster for a target wall time,
from per-step throughput measured by bench/data_throughput.py (a measured default ships).

    gptlab plan data --input-tb 10 --recipe default --target-hours 24
    gptlab plan data --input-tb 1 --recipe dedup --throughput bench/results/data_throughput.json --json
"""


def cmd_plan_data(args) -> None:
    plan = plan_data(_number(args.input_tb, "--input-tb"), args.recipe, _number(args.target_hours, "--target-hours"),
                     args.throughput, int(_number(args.cores_per_node, "--cores-per-node", integer=True)),
                     _fraction(args.efficiency, "--efficiency"))
    if args.json:
        print(json.dumps(plan.to_json(), indent=2))
    else:
        render_data_plan(plan, Console(width=None if sys.stdout.isatty() else 160))


def cmd_plan(args) -> None:
    if args.list_gpus:
        if args.json:
            print(json.dumps([g.to_json() for g in GPUS.values()], indent=2))
        else:
            Console(width=None if sys.stdout.isatty() else 160).print(gpu_table())
        return
    plan = plan_from_args(args)
    if args.json:
        print(json.dumps(plan.to_json(), indent=2))
    else:
        render(plan)
