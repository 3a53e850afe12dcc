"""The training loop, in one function, and the `gptlab train` stage around it."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from gptlab.train.hooks import Hook, TrainState, now


def train_loop(state: TrainState, batches, cfg, lr_at, autocast, device, hooks: list[Hook]) -> TrainState:
    """Read top to bottom: fetch batch(step), forward, backward, clip, step, hooks."""
    model, opt, tcfg = state.model, state.optimizer, cfg.train
    model.train()
    for h in hooks:
        h.on_train_start(state)
    while state.step < tcfg.max_steps:
        t0 = now()
        x, y = batches.get(state.step, device)          # a pure function of the step
        lr = lr_at(state.step)
        for group in opt.param_groups:
            group["lr"] = lr
        with autocast:
            logits = model(x)
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.reshape(-1))
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip or float("inf"))
        opt.step()
        opt.zero_grad(set_to_none=True)
        state.step += 1
        dt = now() - t0
        metrics: dict[str, Any] = {"step": state.step, "loss": loss.item(), "lr": lr,
                                   "grad_norm": float(grad_norm), "tokens_per_s": state.tokens_per_step / dt,
                                   "step_time_s": dt}
        for h in hooks:
            h.on_step_end(state, metrics)
    for h in hooks:
        h.on_train_end(state)
    return state


def resolve_data_dir(path: str | Path) -> Path:
    """Accept a packed folder or a run folder that contains ``pack/``."""
    p = Path(path)
    if (p / "index.json").exists():
        return p
    if (p / "pack" / "index.json").exists():
        return p / "pack"
    raise FileNotFoundError(f"{p}: not a packed data folder (no index.json; run `gptlab data pack`)")


def run_train(cfg, data_dir: str | Path, out_dir: str | Path, resume: bool = True,
              tokenizer_file: str | Path | None = None, eval_fn=None) -> dict:
    """`gptlab train`: build the model for the data, resume if asked, train to max_steps."""
    from gptlab.config import to_dict
    from gptlab.console import log
    from gptlab.data.pack import PackedData
    from gptlab.manifest import atomic_write, is_complete, read_manifest, stage_key, write_manifest
    from gptlab.config import to_toml
    from gptlab.model import GPT
    from gptlab.train.batches import Batches
    from gptlab.train.checkpoint import latest_valid, list_checkpoints, load_checkpoint
    from gptlab.train.hooks import CheckpointHook, EvalHook, MetricsHook, ProgressHook
    from gptlab.train.optim import build_optimizer, cosine_lr
    from gptlab.train.precision import autocast, resolve_device, resolve_precision

    data_dir = resolve_data_dir(data_dir)
    out = Path(out_dir)
    data = PackedData(data_dir)
    mcfg = cfg.model
    if mcfg.vocab_size is None:
        mcfg.vocab_size = data.vocab_size
    if mcfg.block_size is None:
        mcfg.block_size = data.seq_len
    if mcfg.vocab_size < data.vocab_size:
        raise ValueError(f"model.vocab_size={mcfg.vocab_size} is smaller than the data's {data.vocab_size}")
    if mcfg.block_size < data.seq_len:
        raise ValueError(f"model.block_size={mcfg.block_size} is shorter than the data's seq_len {data.seq_len}")
    key = stage_key({"model": to_dict(mcfg), "train": to_dict(cfg.train)}, upstream=[data_dir])
    if is_complete(out, key):
        log(f"train: complete, skipping ({out})")
        return read_manifest(out)["summary"]
    if tokenizer_file is None:
        cand = data_dir.parent / "tokenizer" / "tokenizer.json"
        tokenizer_file = cand if cand.exists() else None

    tcfg = cfg.train
    if tcfg.threads:
        torch.set_num_threads(tcfg.threads)
    device = resolve_device(tcfg.device)
    precision = resolve_precision(tcfg.precision, device)
    torch.manual_seed(tcfg.seed)
    model = GPT(mcfg).to(device)
    opt = build_optimizer(model, tcfg)
    step = 0
    ckpt_dir = out / "checkpoints"
    if resume and list_checkpoints(ckpt_dir):
        ckpt = latest_valid(ckpt_dir, log=log)
        if ckpt is None:
            log("[yellow]train: no checkpoint verifies; starting from scratch")
        else:
            step = load_checkpoint(ckpt, model, opt)["step"]
            log(f"train: resumed from {ckpt.name} (step {step})")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "config.toml", to_toml(cfg))
    log(f"train: {model.num_params() / 1e6:.2f}M params (non-embedding), {precision} on {device}, "
        f"{tcfg.max_steps} steps × {tcfg.batch_size} × {data.seq_len} tokens")
    state = TrainState(step=step, model=model, optimizer=opt, tokens_per_step=tcfg.batch_size * data.seq_len)
    metrics = MetricsHook(out, tensorboard=os.environ.get("GPTLAB_TENSORBOARD", "1") != "0")
    hooks: list[Hook] = []
    if eval_fn is not None and tcfg.eval_every:
        hooks.append(EvalHook(tcfg.eval_every, eval_fn, metrics))
    hooks += [metrics, ProgressHook(tcfg.max_steps, tcfg.log_every),
              CheckpointHook(ckpt_dir, tcfg.checkpoint_every, tcfg.keep_checkpoints, tcfg.max_steps,
                             to_dict(cfg), tokenizer_file)]
    t0 = now()
    start_step = step
    train_loop(state, Batches(data, tcfg.batch_size, tcfg.seed), cfg, lambda s: cosine_lr(s, tcfg),
               autocast(precision, device), device, hooks)
    elapsed = now() - t0
    final = latest_valid(ckpt_dir)
    import json
    losses = [json.loads(l)["loss"] for l in (out / "metrics.jsonl").read_text().splitlines()]
    summary = {"steps": state.step, "first_loss": losses[0], "final_loss": sum(losses[-10:]) / len(losses[-10:]),
               "params": model.num_params(), "precision": precision, "device": str(device),
               "tokens": state.step * state.tokens_per_step,
               "tokens_per_s": (state.step - start_step) * state.tokens_per_step / max(elapsed, 1e-9),
               "checkpoint": str(final.relative_to(out)) if final else None}
    outputs = ["metrics.jsonl", "config.toml"] + [str(p.relative_to(out)) for p in final.iterdir()
                                                   if p.is_file()]
    write_manifest(out, stage="train", key=key, outputs=outputs, config=to_dict(cfg), summary=summary)
    log(f"train: loss {summary['first_loss']:.3f} → {summary['final_loss']:.3f} in {state.step} steps "
        f"({summary['tokens_per_s']:.0f} tok/s) → {out}")
    return summary
