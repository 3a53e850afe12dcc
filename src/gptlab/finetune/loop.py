"""The fine-tuning loop: the loss on target tokens only, validation, early stopping, checkpoints.

A step's batch is a pure function of (seed, step) (``Sampler``), and each checkpoint in the
work folder carries the optimizer, the RNG and the early-stopping state, so a run killed at
any point resumes from its newest checkpoint and ends where an uninterrupted run would.
The optimizer and schedule are `gptlab train`'s (gptlab.train.optim), and so is the
checkpoint format (gptlab.train.checkpoint).
"""
from __future__ import annotations

import contextlib
import json
import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from gptlab.checkpoint import latest_valid, list_checkpoints, save_checkpoint, tied_aliases
from gptlab.console import log, progress_task
from gptlab.errors import InputError
from gptlab.eval.scoring import context_length, eos_token_id, logits_of, model_device, split_encode
from gptlab.finetune.config import FinetuneConfig
from gptlab.manifest import atomic_write
from gptlab.train.checkpoint import load_checkpoint, save_training_checkpoint
from gptlab.train.optim import build_optimizer, lr_schedule

IGNORE = -100


@dataclass
class Sequences:
    """Token ids of (prompt, target) pairs: ``ids`` = [eos] + prompt + target (left-truncated to
    the context), ``n_target`` = how many of the last ids are target tokens (the loss's)."""
    ids: list[list[int]]
    n_target: list[int]
    reserve: int = 0          # target tokens a long prompt left room for (see encode_pairs)

    def __len__(self) -> int:
        return len(self.ids)


def encode_pairs(tokenizer: Any, pairs: list[tuple[str, str]], max_len: int, reserve: int | None = None) -> Sequences:
    """Tokenized as eval's log-likelihood does (``split_encode``, an end-of-text token first), so
    the fine-tuned target is the continuation `gptlab eval --tasks` scores.

    A prompt too long for the context loses its first tokens, and keeps room for ``reserve``
    target tokens (default: the longest target here, at most half the context), so a long
    prompt ends at the same position whatever its target. Cutting the whole sequence from the
    left instead would put each label's first token at a position set by the label's length,
    and a model with learned positions learns the position, not the label."""
    eos = eos_token_id(tokenizer)
    split = [split_encode(tokenizer, p, t) for p, t in pairs]
    if reserve is None:
        reserve = max((len(c) for _, c in split), default=0)
    reserve = min(reserve, max_len // 2)
    ids, n_target = [], []
    for ctx, cont in split:
        head = (([eos] if eos is not None else []) + ctx)[-(max_len + 1 - reserve):]
        seq = (head + cont)[-(max_len + 1):]
        n = min(len(cont), len(seq) - 1)
        if n >= 1:
            ids.append(seq)
            n_target.append(n)
    return Sequences(ids, n_target, reserve)


@torch.no_grad()
def target_logprobs(model, seqs: Sequences, batch_size: int, device, autocast=None) -> list[float]:
    """Per sequence, the summed log-probability of its target tokens."""
    was = model.training
    model.eval()
    out: list[float] = []
    for start in range(0, len(seqs), batch_size):
        rows = list(range(start, min(start + batch_size, len(seqs))))
        x, y = collate(seqs, rows, device)
        with autocast if autocast is not None else contextlib.nullcontext():
            logits = logits_of(model, x)
        logp = torch.log_softmax(logits.float(), -1)
        mask = y != IGNORE
        picked = logp.gather(-1, y.clamp(min=0)[..., None])[..., 0] * mask
        out += picked.sum(1).tolist()
    model.train(was)
    return out


def label_scores(model, tokenizer, prompts: list[str], labels: list[str], batch_size: int = 16) -> list[list[float]]:
    """Each label's log-likelihood after each prompt, the prompts cut as in training (room kept
    for the longest label), so every label of a prompt is scored after the same tokens."""
    pairs = [(p, " " + lab) for p in prompts for lab in labels]
    seqs = encode_pairs(tokenizer, pairs, context_length(model))
    if len(seqs) != len(pairs):
        raise InputError("a label has no token that fits the model's context")
    flat = target_logprobs(model, seqs, batch_size, model_device(model))
    return [flat[i * len(labels):(i + 1) * len(labels)] for i in range(len(prompts))]


def collate(seqs: Sequences, rows: list[int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded inputs and targets; every target position but the answer's is ignored."""
    width = max(len(seqs.ids[i]) for i in rows) - 1
    x = torch.zeros(len(rows), width, dtype=torch.long)
    y = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    for r, i in enumerate(rows):
        ids, n = seqs.ids[i], seqs.n_target[i]
        x[r, :len(ids) - 1] = torch.tensor(ids[:-1])
        y[r, len(ids) - 1 - n:len(ids) - 1] = torch.tensor(ids[-n:])
    return x.to(device), y.to(device)


def target_loss(model, x: torch.Tensor, y: torch.Tensor, autocast) -> torch.Tensor:
    with autocast:
        logits = logits_of(model, x)
    return F.cross_entropy(logits.float().transpose(1, 2), y, ignore_index=IGNORE)


class Sampler:
    """Which sequences step k trains on: ``groups`` of indices (one per task; a single group
    outside instruction tuning) drawn by ``weights``, then uniformly within the group."""

    def __init__(self, groups: list[list[int]], weights: list[float], batch_size: int, seed: int):
        self.groups, self.weights = [g for g in groups], np.asarray(weights, dtype=float)
        self.batch_size, self.seed = batch_size, seed

    def rows(self, step: int) -> list[int]:
        rng = np.random.default_rng([self.seed, step])
        picks = rng.choice(len(self.groups), size=self.batch_size, p=self.weights / self.weights.sum())
        return [self.groups[g][int(rng.integers(len(self.groups[g])))] for g in picks]


@torch.no_grad()
def validation_loss(model, seqs: Sequences, batch_size: int, device, autocast) -> float:
    """Mean target-token loss over the validation set (token-weighted)."""
    was = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(seqs), batch_size):
        rows = list(range(start, min(start + batch_size, len(seqs))))
        x, y = collate(seqs, rows, device)
        n = int((y != IGNORE).sum())
        total += target_loss(model, x, y, autocast).item() * n
        count += n
    model.train(was)
    return total / max(count, 1)


@dataclass
class Progress:
    """What the loop carries across a resume besides weights, optimizer and RNG."""
    step: int = 0
    best_loss: float = math.inf
    best_step: int = 0
    bad_evals: int = 0
    stopped_early: bool = False


def run_loop(model, train: Sequences, valid: Sequences | None, sampler: Sampler, fcfg: FinetuneConfig,
             work: Path, key: str, device: torch.device, autocast, config: dict[str, Any],
             metrics_path: Path, on_step: Callable[[int], None] | None = None) -> Progress:
    """Train ``model`` in place; returns the progress. The best weights (by validation loss; the
    last ones without a validation set) are left in ``work/best`` as a checkpoint."""
    tcfg = fcfg.train_config()
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = build_optimizer(model, tcfg)
    lr_at = lr_schedule(tcfg)
    st = _resume(work, model, opt, key)
    lines = _metrics_until(metrics_path, st.step)
    model.train()
    with progress_task("finetune", fcfg.max_steps) as advance:
        advance(st.step)
        while st.step < fcfg.max_steps and not st.stopped_early:
            lr = lr_at(st.step)
            for g in opt.param_groups:
                g["lr"] = lr
            x, y = collate(train, sampler.rows(st.step), device)
            loss = target_loss(model, x, y, autocast)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if tcfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(trainable, tcfg.grad_clip)
            opt.step()
            st.step += 1
            row: dict[str, Any] = {"step": st.step, "loss": loss.item(), "lr": lr}
            if st.step % fcfg.eval_every == 0 or st.step == fcfg.max_steps:
                _evaluate(model, valid, fcfg, device, autocast, st, row, work, config, key, opt)
            lines.append(json.dumps(row))
            atomic_write(metrics_path, "\n".join(lines) + "\n")
            advance(1, info=f"loss {row['loss']:.3f}" + (f" val {row['val_loss']:.3f}" if "val_loss" in row else ""))
            if on_step is not None:
                on_step(st.step)
    if st.stopped_early:
        log(f"finetune: early stop at step {st.step}: no validation improvement in {fcfg.patience} "
            f"evaluations; keeping step {st.best_step} (val loss {st.best_loss:.4f})")
    return st


def _evaluate(model, valid, fcfg, device, autocast, st: Progress, row: dict, work: Path, config: dict,
              key: str, opt) -> None:
    """Validation, early stopping, and the checkpoints: the best weights, and the resume point."""
    improved = True
    if valid is not None and len(valid):
        row["val_loss"] = validation_loss(model, valid, fcfg.batch_size, device, autocast)
        improved = row["val_loss"] < st.best_loss - 1e-6
        if improved:
            st.best_loss, st.best_step, st.bad_evals = row["val_loss"], st.step, 0
        else:
            st.bad_evals += 1
            st.stopped_early = bool(fcfg.patience) and st.bad_evals >= fcfg.patience
    else:
        st.best_step = st.step
    extra = {"config_key": key, "finetune": asdict(st)}
    if improved:
        save_checkpoint(work / "best", st.step, model.state_dict(), None, config, extra, keep=1,
                        aliases=tied_aliases(model))
    save_training_checkpoint(work / "checkpoints", st.step, model, opt, config, extra, keep=1)


def _resume(work: Path, model, opt, key: str) -> Progress:
    ckpts = work / "checkpoints"
    if not list_checkpoints(ckpts):
        return Progress()
    ck = latest_valid(ckpts, log=log)
    if ck is None:
        log("[yellow]finetune: no checkpoint in the work folder verifies; starting from the base model")
        return Progress()
    state = json.loads((ck / "state.json").read_text())
    if state.get("config_key") != key:
        log("[yellow]finetune: the work folder holds another run's checkpoint; starting from the base model")
        return Progress()
    load_checkpoint(ck, model, opt)
    st = Progress(**state["finetune"])
    # A best checkpoint newer than the resume point (killed between the two saves) is stale.
    for b in list_checkpoints(work / "best"):
        if int(b.name.split("-")[1]) > st.step:
            shutil.rmtree(b)
            st.best_loss = math.inf        # so the next evaluation saves a best again
    log(f"finetune: resumed from {ck.name} (step {st.step})")
    return st


def _metrics_until(path: Path, step: int) -> list[str]:
    if not path.exists():
        return []
    return [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
