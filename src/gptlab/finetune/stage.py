"""`gptlab finetune` as a stage: base model in, a normal checkpoint folder out.

    OUT/manifest.json                 the stage (complete only once everything below is written)
    OUT/checkpoints/step-N/           the fine-tuned model: model.safetensors, config.json,
                                      state.json, tokenizer.json, finetune.json (task, template,
                                      labels); what `gptlab eval`, `generate` and `export` read
    OUT/adapter/                      with --lora-rank: the adapters alone (safetensors + peft config)
    OUT/metrics.jsonl                 loss per step, validation loss per evaluation
    OUT/work/                         while it runs: resume checkpoints and the best weights

The base is a gptlab checkpoint (or training/run folder), or a local Hugging Face causal LM
folder: one gptlab can represent (the HF export of a gptlab run, GPT-2, OPT, BLOOM, Llama...)
is imported through ``gptlab.interop.import_hf`` and saved as a gptlab checkpoint; any other
is trained with transformers and saved as a Hugging Face folder in ``OUT/model/``. Nothing is
downloaded. A rerun of the same command skips a finished run and resumes a killed one.
"""
from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import torch

from gptlab.api import load_model
from gptlab.checkpoint import find_checkpoint, latest_valid, load_weights_into, save_checkpoint, tied_aliases
from gptlab.console import log
from gptlab.device import autocast, resolve_device, resolve_precision, slow_precision_warning
from gptlab.errors import InputError, UserError
from gptlab.eval.scoring import context_length
from gptlab.finetune.config import FinetuneConfig
from gptlab.finetune.data import Row, read_rows
from gptlab.finetune.loop import Sampler, encode_pairs, run_loop
from gptlab.finetune.lora import add_lora, merged, save_adapter
from gptlab.finetune.mixture import build_mixture
from gptlab.finetune.templates import (
    INSTRUCTION_TEMPLATES,
    META_FILE,
    Template,
    default_template,
    parse_template,
    render,
    template_meta,
    write_meta,
)
from gptlab.interop import import_hf
from gptlab.interop.adapters import ADAPTERS
from gptlab.manifest import Stage, file_checksum, read_manifest, stage_key, write_manifest
from gptlab.schema import section_dict, validate
from gptlab.tokenizer import load_tokenizer

STAGE = "finetune"
OUTPUTS = ("checkpoints", "model", "adapter", "work", "metrics.jsonl")   # what the stage writes in OUT


def _hf_config(p: Path) -> dict | None:
    """A Hugging Face model folder's config.json (it has a model_type), else None."""
    cfg = p / "config.json"
    if not (p.is_dir() and cfg.is_file()):
        return None
    try:
        data = json.loads(cfg.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) and "model_type" in data else None


def base_files(model_path: str | Path) -> list[Path]:
    """The weight files of the base model (what the stage's key depends on), found without loading."""
    p = Path(model_path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no model here (give a gptlab checkpoint/run folder or a local HF model folder)")
    folder = p if _hf_config(p) is not None else find_checkpoint(p)
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise InputError(f"{folder}: no *.safetensors weights (gptlab reads safetensors only)")
    return [f for f in files if not f.name.startswith(("optimizer", "rng"))]


def _load_base(model_path: Path, work: Path):
    """(model, tokenizer, kind, checkpoint folder or None, saved config). kind: gptlab or hf."""
    hf = _hf_config(model_path)
    if hf is not None and (hf.get("architectures") or ["?"])[0] in ADAPTERS:
        imported = import_hf(model_path, work / "base", force=True)
        model, ckpt = load_model(imported, return_path=True)
        return model, load_tokenizer(ckpt), "gptlab", ckpt
    if hf is not None:
        from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: PLC0415  (optional extra (transformers), seconds to import)
        model = AutoModelForCausalLM.from_pretrained(model_path, local_files_only=True, use_safetensors=True,
                                                     dtype=torch.float32)
        return model, AutoTokenizer.from_pretrained(model_path, local_files_only=True), "hf", None
    model, ckpt = load_model(model_path, return_path=True)
    if not (ckpt / "tokenizer.json").exists():
        raise InputError(f"{ckpt}: has no tokenizer.json; fine-tuning needs the model's tokenizer")
    return model, load_tokenizer(ckpt), "gptlab", ckpt


def _split(rows: list[Row], fraction: float, seed: int) -> tuple[list[Row], list[Row]]:
    """Without --valid: a seeded ``fraction`` of the rows (at least one) for validation, when
    there are 10 or more; else no validation (and no early stopping)."""
    if fraction <= 0 or len(rows) < 10:
        return rows, []
    idx = list(range(len(rows)))
    random.Random(seed).shuffle(idx)
    n = max(1, round(fraction * len(rows)))
    held = set(idx[:n])
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]


def _pairs(fcfg: FinetuneConfig, template: Template, train: list[Row], valid: list[Row]):
    """Training (prompt, target) pairs with their sampling groups, and the validation pairs."""
    if fcfg.task == "instructions":
        mix = build_mixture(train, INSTRUCTION_TEMPLATES, fcfg.mixture_cap, fcfg.max_shots, fcfg.few_shot_fraction,
                            fcfg.seed, fcfg.max_chars)
        pairs, groups = [], []
        for task in mix.tasks:
            groups.append(list(range(len(pairs), len(pairs) + len(mix.pools[task]))))
            pairs += mix.pools[task]
        vpairs = [render(INSTRUCTION_TEMPLATES[0], r, max_chars=fcfg.max_chars) for r in valid]
        return pairs, groups, mix.weights, vpairs, {t: round(w, 4) for t, w in zip(mix.tasks, mix.weights)}
    pairs = [render(template, r, max_chars=fcfg.max_chars) for r in train]
    vpairs = [render(template, r, max_chars=fcfg.max_chars) for r in valid]
    return pairs, [list(range(len(pairs)))], [1.0], vpairs, None


def _other_run(out: Path, key: str) -> bool:
    """Whether ``out`` holds a fine-tune (finished or interrupted) of other settings or inputs."""
    m = read_manifest(out)
    other = m is not None and m.get("stage") == STAGE and m.get("key") != key
    ck = latest_valid(out / "work" / "checkpoints")
    if ck is not None:
        other = other or json.loads((ck / "state.json").read_text()).get("config_key") != key
    return other


def run_finetune(fcfg: FinetuneConfig, model_path: str | Path, train_path: str | Path, out_dir: str | Path,
                 valid_path: str | Path | None = None, *, force: bool = False, restart: bool = False,
                 replace_other: bool = False, on_step: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Fine-tune ``model_path`` on ``train_path`` (JSONL, see gptlab.finetune.data) into ``out_dir``.

    Returns the summary, whose ``checkpoint`` is the saved model's folder (absolute path).
    Resuming is the default, so a folder holding a fine-tune of other settings or inputs is
    refused (as `gptlab train` refuses another run's folder), unless ``restart`` (start over:
    an interrupted run's work is dropped) or ``replace_other`` (start over only when the folder
    holds another run; the bake-off's own folder). ``on_step(step)`` is called after every
    optimizer step (tests interrupt a run with it)."""
    validate(fcfg, prefix="finetune.")
    if fcfg.template and fcfg.task == "instructions":
        raise UserError("--template: instruction tuning renders each task through its own built-in templates; "
                        "--template is for classification and generation")
    template = parse_template(fcfg.template, fcfg.task) if fcfg.template else default_template(fcfg.task)
    train_rows = read_rows(train_path, fcfg.task)
    valid_rows = read_rows(valid_path, fcfg.task) if valid_path else None
    model_path, out = Path(model_path), Path(out_dir)
    files = [Path(train_path), *([Path(valid_path)] if valid_path else []), *base_files(model_path)]
    key = stage_key({"finetune": section_dict(fcfg), "base": str(model_path)}, files=files)
    if _other_run(out, key):
        if not (restart or replace_other):
            raise UserError(f"{out}: holds a fine-tune with other settings or inputs; rerun that command to "
                            f"resume it, pass --restart to start over, or choose a new --out")
        restart = True
    with Stage(out, STAGE, key, force=force) as st:
        if st.complete:
            return st.summary
        clash = [n for n in OUTPUTS if (out / n).exists()]
        if not st.owned and clash:
            raise UserError(f"{out / clash[0]}: is in the way of the fine-tune's outputs and was not written by it; "
                            f"choose another --out")
        work = out / "work"
        if restart and work.exists():
            shutil.rmtree(work)
        threads = torch.get_num_threads()
        if fcfg.threads:
            torch.set_num_threads(fcfg.threads)
        try:
            return _finetune(st, fcfg, template, model_path, train_rows, valid_rows, key, files, on_step)
        finally:
            torch.set_num_threads(threads)      # the caller's thread count, whatever happened


def _finetune(st: Stage, fcfg: FinetuneConfig, template: Template, model_path: Path, train_rows: list[Row],
              valid_rows: list[Row] | None, key: str, files: list[Path], on_step) -> dict[str, Any]:
    out, work = st.dir, st.dir / "work"
    t0 = time.perf_counter()
    device = resolve_device(fcfg.device, key="--device")
    precision = resolve_precision(fcfg.precision, device)
    if warning := slow_precision_warning(precision, device):
        log(f"[yellow]{warning}")
    model, tok, kind, base_ckpt = _load_base(model_path, work)
    if valid_rows is None:
        train_rows, valid_rows = _split(train_rows, fcfg.valid_fraction, fcfg.seed)
    labels = sorted({r.target for r in train_rows}) if fcfg.task == "classification" else []
    pairs, groups, weights, vpairs, mixture = _pairs(fcfg, template, train_rows, valid_rows)
    n_ctx = context_length(model)
    train = encode_pairs(tok, pairs, n_ctx)
    valid = encode_pairs(tok, vpairs, n_ctx, reserve=train.reserve)    # cut as the training prompts are
    if not len(train):
        raise InputError(f"{files[0]}: no example has a target token that fits the model's context of {n_ctx}")
    torch.manual_seed(fcfg.seed)
    model.to(device)
    wrapped = add_lora(model, fcfg.lora_rank, fcfg.lora_alpha, fcfg.seed) if fcfg.lora_rank else model
    trainable = sum(p.numel() for p in wrapped.parameters() if p.requires_grad)
    base_config = json.loads((base_ckpt / "config.json").read_text()) if base_ckpt is not None else {}
    config = {**base_config, "finetune": section_dict(fcfg), "base": str(model_path)}
    log(f"finetune: {fcfg.task} on {len(train_rows)} examples ({len(train)} sequences"
        f"{f', {len(mixture)} tasks' if mixture else ''}), {len(valid)} for validation; "
        f"{trainable:,} trainable parameters{f' (LoRA rank {fcfg.lora_rank})' if fcfg.lora_rank else ''}, "
        f"{precision} on {device}")
    sampler = Sampler(groups, weights, fcfg.batch_size, fcfg.seed)
    prog = run_loop(wrapped, train, valid if len(valid) else None, sampler, fcfg, work, key, device,
                    autocast(precision, device), config, out / "metrics.jsonl", on_step)
    best = latest_valid(work / "best")
    if best is not None:
        load_weights_into(best, wrapped)
    outputs = ["metrics.jsonl"]
    adapter = None
    if fcfg.lora_rank:
        outputs += [f"adapter/{f}" for f in save_adapter(wrapped, out / "adapter")]
        adapter = str((out / "adapter").resolve())
        model = merged(wrapped)
    meta = {"task": fcfg.task, "template": template_meta(template), "labels": labels, "base": str(model_path),
            "lora_rank": fcfg.lora_rank, "max_chars": fcfg.max_chars,
            "templates": [template_meta(t) for t in INSTRUCTION_TEMPLATES] if fcfg.task == "instructions" else [],
            "mixture": mixture}
    state = {"finetuned_from": str(model_path), "task": fcfg.task, "labels": labels, "best_step": prog.best_step}
    folder = _save_model(model, tok, kind, base_ckpt, out, prog.best_step or prog.step, config, state, meta)
    outputs += [str(p.relative_to(out)) for p in sorted(folder.rglob("*")) if p.is_file()]
    lines = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    summary = {"task": fcfg.task, "base": str(model_path), "checkpoint": str(folder.resolve()),
               "format": "gptlab" if kind == "gptlab" else "hf", "labels": labels,
               "steps": prog.step, "best_step": prog.best_step,
               "best_val_loss": prog.best_loss if valid and len(valid) else None,
               "stopped_early": prog.stopped_early, "first_loss": lines[0]["loss"],
               "final_loss": sum(r["loss"] for r in lines[-5:]) / len(lines[-5:]),
               "n_train": len(train_rows), "n_valid": len(valid_rows), "trainable_params": trainable,
               "lora_rank": fcfg.lora_rank, "adapter": adapter, "mixture": mixture,
               "seconds": round(time.perf_counter() - t0, 3)}
    st.done(outputs, summary, config={"finetune": section_dict(fcfg), "base": str(model_path),
                                      "inputs": {str(f): file_checksum(f) for f in files}})
    shutil.rmtree(work, ignore_errors=True)     # resume points and the import: no longer needed
    log(f"finetune: loss {summary['first_loss']:.3f} → {summary['final_loss']:.3f} in {prog.step} steps; "
        f"model → {folder}")
    return summary


def _save_model(model, tok, kind: str, base_ckpt: Path | None, out: Path, step: int, config: dict,
                state: dict, meta: dict) -> Path:
    """The fine-tuned model as a gptlab checkpoint (OUT/checkpoints/step-N) with finetune.json in
    its manifest, or, for a base gptlab cannot represent, as a Hugging Face folder (OUT/model)."""
    for old in ("checkpoints", "model"):
        if (out / old).exists():
            shutil.rmtree(out / old)               # an earlier attempt of this stage's own
    model = model.cpu().eval()
    if kind == "gptlab":
        tok_file = base_ckpt / "tokenizer.json"
        ck = save_checkpoint(out / "checkpoints", step, model.state_dict(), None, config, state,
                             tokenizer_file=tok_file, aliases=tied_aliases(model))
        write_meta(ck, meta)
        listed = sorted(read_manifest(ck)["outputs"]) + [META_FILE]
        write_manifest(ck, stage="checkpoint", key=str(step), outputs=listed)
        return ck
    folder = out / "model"
    model.save_pretrained(str(folder), safe_serialization=True)
    tok.save_pretrained(str(folder))
    write_meta(folder, meta)
    return folder

