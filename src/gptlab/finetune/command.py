"""`gptlab finetune`: the command line (parser and command, for cli.py to mount).

    gptlab finetune --model runs/demo --train train.jsonl --task classification --out runs/clf
    gptlab finetune --model hf-folder --train mix.jsonl --task instructions --lora-rank 8 --out runs/flan
"""
from __future__ import annotations

import argparse
import json
import re

from gptlab.errors import ConfigError
from gptlab.finetune.config import FinetuneConfig
from gptlab.finetune.data import TASKS
from gptlab.finetune.stage import run_finetune

# Flags that set a FinetuneConfig field of the same name (dashes for underscores).
FIELDS = ["max_steps", "batch_size", "lr", "warmup_steps", "schedule", "weight_decay", "eval_every", "patience",
          "valid_fraction", "max_chars", "lora_rank", "lora_alpha", "mixture_cap", "few_shot_fraction", "max_shots",
          "template", "seed", "device", "precision", "threads"]


def finetune_command(args) -> dict:
    cfg = FinetuneConfig(task=args.task, **{f: getattr(args, f) for f in FIELDS if getattr(args, f) is not None})
    try:
        summary = run_finetune(cfg, args.model, args.train, args.out, args.valid, force=args.force,
                               restart=args.restart)
    except ConfigError as e:
        # Name the flag the user typed, not the config key behind it.
        raise ConfigError(re.sub(r"^finetune\.(\w+)", lambda m: "--" + m.group(1).replace("_", "-"), str(e))) from None
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(summary["checkpoint"])
    return summary


def add_finetune_parser(sub) -> argparse.ArgumentParser:
    d = FinetuneConfig()
    p = sub.add_parser("finetune", help="fine-tune a checkpoint or local HF model on JSONL (classification, "
                                        "generation, FLAN-style instructions)")
    p.add_argument("--model", required=True, help="a gptlab checkpoint/training/run folder or a local HF model folder")
    p.add_argument("--train", required=True, help="JSONL: {text, label}, {input, target} or {task, input, target}")
    p.add_argument("--valid", help="JSONL for validation and early stopping (default: a share of --train)")
    p.add_argument("--task", choices=TASKS, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--max-steps", "--steps", dest="max_steps", type=int, help=f"optimizer steps (default {d.max_steps})")
    p.add_argument("--batch-size", type=int, help=f"sequences per step (default {d.batch_size})")
    p.add_argument("--lr", type=float, help=f"peak learning rate (default {d.lr})")
    p.add_argument("--warmup-steps", type=int)
    p.add_argument("--schedule", choices=("constant", "cosine", "linear"))
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--eval-every", type=int, help=f"validate (and checkpoint) every N steps (default {d.eval_every})")
    p.add_argument("--patience", type=int, help=f"stop after N validations without improvement; 0 = never "
                                                f"(default {d.patience})")
    p.add_argument("--valid-fraction", type=float, help="without --valid: the share of --train held out")
    p.add_argument("--max-chars", type=int, help="characters of each input kept (0 = all)")
    p.add_argument("--lora-rank", type=int, help="train LoRA adapters of this rank (peft) instead of every weight")
    p.add_argument("--lora-alpha", type=float)
    p.add_argument("--mixture-cap", type=int, help="instructions: examples per task at most (Flan's mixing cap)")
    p.add_argument("--few-shot-fraction", type=float, help="instructions: share of examples also rendered few-shot")
    p.add_argument("--max-shots", type=int, help="instructions: exemplars in a few-shot prompt at most")
    p.add_argument("--template", help='prompt format string, e.g. "Review: {input}\\nSentiment:" '
                                      "(classification, generation)")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"))
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"))
    p.add_argument("--threads", type=int, help="torch threads (0 = torch's default)")
    p.add_argument("--restart", action="store_true", help="drop an interrupted run's work and start over")
    p.add_argument("--json", action="store_true", help="print the summary as JSON (default: the model's path)")
    p.add_argument("--force", action="store_true",
                   help="write into a non-empty folder gptlab did not make, or replace another stage's output")
    p.set_defaults(fn=finetune_command)
    return p
