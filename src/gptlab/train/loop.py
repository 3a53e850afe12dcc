"""The training loop, in one function, and the `gptlab train` stage around it."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path
from time import perf_counter as now
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import apply_activation_checkpointing

from gptlab.checkpoint import latest_valid, list_checkpoints
from gptlab.console import log
from gptlab.device import (
    autocast,
    peak_flops,
    resolve_device,
    resolve_precision,
    set_determinism,
    slow_precision_warning,
)
from gptlab.manifest import MANIFEST, Stage, atomic_write, atomic_write_json, file_checksum, read_manifest, stage_key
from gptlab.model import GPT
from gptlab.model.config import ModelConfig
from gptlab.model.gpt import resolve_compile
from gptlab.pack.packed import PackedData
from gptlab.schema import ConfigError, section_dict, to_toml
from gptlab.train import distributed, emulate
from gptlab.train.batches import Batches, BatchSchedule
from gptlab.train.checkpoint import load_checkpoint
from gptlab.train.config import StabilityConfig, TrainConfig
from gptlab.train.distributed import Dist
from gptlab.train.faults import FaultInjector
from gptlab.train.hooks import CheckpointHook, EvalHook, Hook, MetricsHook, ProgressHook, sort_hooks
from gptlab.train.optim import build_optimizer, lr_schedule
from gptlab.train.stability import EventLog, StabilityGuard
from gptlab.train.state import TrainState

# Periodic eval: the model in, a result with ["overall"]["bpb"] and ["domains"][name]["bpb"] out.
EvalFn = Callable[[torch.nn.Module], dict[str, Any]]


def lm_loss(logits: torch.Tensor, targets: torch.Tensor, z_coef: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy, plus PaLM's z-loss z_coef·log²Z, which keeps the softmax normaliser
    near 1 so logits cannot drift upwards (computed in fp32; logged separately)."""
    logits = logits.float().reshape(-1, logits.size(-1))
    ce = F.cross_entropy(logits, targets.reshape(-1))
    if not z_coef:
        return ce, torch.zeros((), device=logits.device)
    return ce, z_coef * logits.logsumexp(-1).pow(2).mean()


def train_loop(state: TrainState, tcfg: TrainConfig, hooks: list[Hook]) -> TrainState:
    """Read top to bottom: batch(step) → forward → backward → clip → step → hooks.
    The hooks run in their ``order`` (see gptlab.train.hooks), whatever the list's order."""
    hooks = sort_hooks(hooks)
    model, opt, d = state.model, state.optimizer, state.dist
    forward = state.forward if state.forward is not None else model
    model.train()
    for h in hooks:
        h.on_train_start(state)
    while state.step < tcfg.max_steps and not state.stop:
        t0 = now()
        state.lr_scale = 1.0                                 # a hook may scale this step's lr
        for h in hooks:
            h.on_step_start(state)
        global_idx = state.batches.indices(state.step)       # a pure function of the step
        idx = global_idx[d.dp_rank::d.dp_world]              # this rank's share
        lr = state.lr_at(state.step) * state.lr_scale
        for group in opt.param_groups:
            group["lr"] = lr
        micro = tcfg.micro_batch_size or len(idx)
        chunks = [idx[i:i + micro] for i in range(0, len(idx), micro)]
        # Loss statistics stay on the device (float64, the same arithmetic as Python floats) and are
        # read back once per step below: no host sync per micro-batch.
        ce_sum = torch.zeros((), dtype=torch.float64, device=state.device)
        z_sum = torch.zeros((), dtype=torch.float64, device=state.device)
        max_logit = torch.zeros((), dtype=torch.float64, device=state.device)
        log_step = (state.step + 1) % tcfg.log_every == 0
        for j, chunk in enumerate(chunks):
            x, y = state.batches.rows(chunk, state.device)
            for h in hooks:
                x, y = h.on_batch(state, x, y)
            last = j == len(chunks) - 1
            sync = contextlib.nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync()
            with sync:
                with state.autocast:
                    logits = forward(x)
                ce, z = lm_loss(logits, y, tcfg.z_loss)
                for h in hooks:
                    ce, z = h.on_loss(state, ce, z)
                w = len(chunk) / len(idx)
                state.scaler.scale((ce + z) * w).backward()
            ce_sum += ce.detach().double() * w
            z_sum += z.detach().double() * w
            if log_step:   # a full pass over [B, T, V]: only on logging steps
                max_logit = torch.maximum(max_logit, logits.detach().amax().double())  # drifts up without z-loss
        state.scaler.unscale_(opt)
        grad_norm = distributed.clip_grad_norm(model, tcfg.grad_clip or float("inf"), d)
        if hasattr(grad_norm, "full_tensor"):
            grad_norm = grad_norm.full_tensor()
        # The one read-back of the step (the guard and the metrics need the loss every step).
        ce_sum, z_sum, grad_norm, max_logit = torch.stack(
            [ce_sum, z_sum, grad_norm.detach().double(), max_logit]).tolist()
        skipped, backed_off = scaler_step(state.scaler, opt, tcfg.loss_scale_min)
        # The scaler's verdict, for the stability guard: an overflow it skipped and answered by
        # lowering the scale is its business. At the floor it can do no more: then it is the guard's.
        state.overflow_skipped = skipped and backed_off
        opt.zero_grad(set_to_none=True)
        state.step += 1
        dt = now() - t0
        tokens = len(global_idx) * state.seq_len
        metrics: dict[str, Any] = {
            "step": state.step, "loss": d.mean(ce_sum), "z_loss": d.mean(z_sum), "lr": lr,
            "grad_norm": grad_norm,
            "batch_size": len(global_idx), "tokens_per_s": tokens / dt, "step_time_s": dt,
            "data_position": state.batches.position(state.step - 1),
            # After a rollback the run repeats step numbers: each rollback starts a new epoch
            # (one skip-list entry each), so (rollback_epoch, step) is unique in metrics.jsonl.
            "rollback_epoch": len(state.batches.skips)}
        if log_step:
            metrics["max_logit"] = max_logit
        if state.scaler.is_enabled():
            metrics["loss_scale"] = state.scaler.get_scale()
            metrics["skipped_step"] = int(skipped)
        if state.peak_flops:
            metrics["mfu"] = state.flops_per_token * tokens / dt / (state.peak_flops * d.world)
        for h in hooks:
            h.on_step_end(state, metrics)
    for h in hooks:
        h.on_train_end(state)
    return state


def scaler_step(scaler: torch.amp.GradScaler, opt: torch.optim.Optimizer, min_scale: float) -> tuple[bool, bool]:
    """scaler.step + update, with a floor under the loss scale. Returns (skipped, backed_off):
    whether the scaler skipped the step (inf/NaN gradients under fp16; it then multiplies the
    scale by its backoff factor < 1, which is how we read its verdict), and whether the scale
    actually went down. GradScaler has no floor of its own, so a scale that backed off below
    ``min_scale`` is set back to it (metaseq's --min-loss-scale); at the floor an overflow is
    skipped without the scale going down."""
    if not scaler.is_enabled():
        scaler.step(opt)
        return False, False
    before = scaler.get_scale()
    scaler.step(opt)
    scaler.update()
    skipped = scaler.get_scale() < before
    if min_scale and scaler.get_scale() < min_scale:
        scaler.update(new_scale=min_scale)
    return skipped, scaler.get_scale() < before


def resolve_data_dir(path: str | Path) -> Path:
    """Accept a packed folder or a run folder that contains ``pack/``."""
    p = Path(path)
    if (p / "index.json").exists():
        return p
    if (p / "pack" / "index.json").exists():
        return p / "pack"
    raise FileNotFoundError(f"{p}: not a packed data folder (no index.json; run `gptlab data pack`)")


def run_train(mcfg: ModelConfig, tcfg: TrainConfig, scfg: StabilityConfig, data_dir: str | Path,
              out_dir: str | Path, resume: bool = True, tokenizer_file: str | Path | None = None,
              eval_fn: EvalFn | None = None, extra_hooks: Sequence[Hook] = (), force: bool = False) -> dict:
    """`gptlab train`: build the model for the data, train to max_steps.

    A folder that holds this run already (the same config) resumes from its newest checkpoint
    that verifies; a different config is refused, never overwritten. ``resume=False``
    (`--restart`) starts over: it first removes this stage's own outputs (checkpoints,
    metrics, events). Returns the summary ({} on ranks other than 0). A run the stability
    guard stopped returns one with "stopped" (the reason; on every rank), keeps its last good
    checkpoint and gets a manifest marked stopped, not complete, so a rerun resumes it."""
    data_dir = resolve_data_dir(data_dir)
    data = PackedData(data_dir)
    _fit_model_to_data(mcfg, data)
    sections = {"model": section_dict(mcfg), "train": section_dict(tcfg), "stability": section_dict(scfg)}
    key = stage_key(sections, upstream=[data_dir])
    out = Path(out_dir)
    d = distributed.setup(tcfg.distributed, tcfg.tensor_parallel)
    was_stopped = _stopped_before(out)
    with _stage(out, key, force, d) as st:
        if st.complete:
            distributed.cleanup(d)
            return st.summary
        _prepare_folder(out, sections, resume, was_stopped, d)
        state, raw = build_state(mcfg, tcfg, data, d, out / "checkpoints", key, resume)
        hooks = build_hooks(tcfg, scfg, out, state, sections, key, tokenizer_file or _tokenizer_of(data_dir),
                            eval_fn, extra_hooks, mcfg.vocab_size)
        t0, start_step = now(), state.step
        train_loop(state, tcfg, hooks)
        elapsed = now() - t0
        distributed.cleanup(d)
        if not d.is_main:
            return {"stopped": state.stop_reason} if state.stop else {}
        return _record(st, state, summarize(state, out, raw, start_step, elapsed), key, sections)


def _prepare_folder(out: Path, sections: dict, resume: bool, was_stopped: str | None, d: Dist) -> None:
    """Before training: refuse another run's folder, start over if asked, save the config."""
    if resume:
        _check_same_run(out, sections)           # on every rank: all refuse together, none waits
    if d.is_main:
        if not resume:
            _start_over(out)
        elif was_stopped:
            log(f"[yellow]train: {out} was stopped by the stability guard ({was_stopped}); resuming "
                "from its last good checkpoint (--restart starts over)")
        atomic_write(out / "config.toml", to_toml(sections))
    d.barrier()


def _record(st: Stage, state: TrainState, summary: dict, key: str, sections: dict) -> dict:
    """After training (rank 0): a manifest marked complete, or marked stopped by the guard."""
    out = st.dir
    if state.stop:
        summary["stopped"] = state.stop_reason
        _write_stopped(out, key, summary, sections)
        log(f"[red]train: stopped by the stability guard: {state.stop_reason}; last good checkpoint: "
            f"{summary['checkpoint'] or 'none'}")
        return summary
    final = out / summary["checkpoint"]
    outputs = ["metrics.jsonl", "config.toml"] + [str(p.relative_to(out)) for p in final.iterdir() if p.is_file()]
    st.done(outputs, summary, config=sections)
    log(f"train: loss {summary['first_loss']:.3f} → {summary['final_loss']:.3f} in {state.step} steps "
        f"({summary['tokens_per_s']:.0f} tok/s) → {out}")
    return summary


TRAIN_OUTPUTS = ("checkpoints", "metrics.jsonl", "events.jsonl", "tb")   # what a train run writes


class OtherRunError(ConfigError):
    """The output folder holds a training run of another config (resume would mix the two)."""


def _check_same_run(out: Path, sections: dict) -> None:
    """Resuming is the default, so a folder that holds a run of another config is refused
    rather than overwritten (its metrics would be cut back to the resumed step)."""
    old = out / "config.toml"
    if not (old.exists() and any((out / name).exists() for name in TRAIN_OUTPUTS[:3])):
        return
    if old.read_text(encoding="utf-8") != to_toml(sections):
        raise OtherRunError(f"{out}: holds a run with a different model/train config (see {old}); rerun with "
                          "that config to resume it, pass --restart to start over, or choose a new --out")


def _start_over(out: Path) -> None:
    """--restart: remove this stage's own outputs, so nothing of the old run is resumed or kept."""
    gone = [name for name in TRAIN_OUTPUTS if (out / name).exists()]
    for name in gone:
        p = out / name
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    if gone:
        log(f"train: --restart: removed the previous run's {', '.join(gone)} in {out}")


def _stopped_before(out: Path) -> str | None:
    """The reason, when the last run in ``out`` was stopped by the stability guard."""
    m = read_manifest(out)
    if m is None or m.get("status") != "stopped":
        return None
    return m.get("reason") or "stopped"


def _write_stopped(out: Path, key: str, summary: dict, sections: dict) -> None:
    """A manifest marked stopped, not complete (so a rerun does not skip the run as done),
    listing what is there with checksums, like a complete one."""
    files = ["metrics.jsonl", "config.toml"] + (["events.jsonl"] if (out / "events.jsonl").exists() else [])
    if summary["checkpoint"]:
        files += [str(p.relative_to(out)) for p in (out / summary["checkpoint"]).iterdir() if p.is_file()]
    outputs = {rel: {"checksum": file_checksum(out / rel), "bytes": (out / rel).stat().st_size}
               for rel in sorted(files)}
    atomic_write_json(out / MANIFEST, {"stage": "train", "complete": False, "status": "stopped",
                                       "reason": summary["stopped"], "key": key, "finished_at": time.time(),
                                       "outputs": outputs, "config": sections, "summary": summary})


def _fit_model_to_data(mcfg: ModelConfig, data: PackedData) -> None:
    """Unset vocab_size / block_size come from the data; set ones must fit it."""
    if mcfg.vocab_size is None:
        mcfg.vocab_size = data.vocab_size
    if mcfg.block_size is None:
        mcfg.block_size = data.seq_len
    if mcfg.vocab_size < data.vocab_size:
        raise ConfigError(f"model.vocab_size: {mcfg.vocab_size} is smaller than the data's {data.vocab_size}")
    if mcfg.block_size < data.seq_len:
        raise ConfigError(f"model.block_size: {mcfg.block_size} is shorter than the data's seq_len {data.seq_len}")


def _tokenizer_of(data_dir: Path) -> Path | None:
    """The tokenizer beside a packed folder of a run (copied into every checkpoint)."""
    cand = data_dir.parent / "tokenizer" / "tokenizer.json"
    return cand if cand.exists() else None


@contextlib.contextmanager
def _stage(out: Path, key: str, force: bool, d: Dist) -> Iterator[Stage]:
    """The train Stage on every rank, rank 0 first: it claims the folder (and drops a stale
    manifest) before the others look, so all ranks see the same folder."""
    if not d.is_main:
        d.barrier()
    with Stage(out, "train", key, force=force) as st:
        if d.is_main:
            d.barrier()
        yield st


def build_state(mcfg: ModelConfig, tcfg: TrainConfig, data: PackedData, d: Dist, ckpt_dir: Path, key: str,
                resume: bool) -> tuple[TrainState, GPT]:
    """Device, precision, model (wrapped for the run), optimizer, loss scaler and, when
    resuming, the newest checkpoint that verifies. Returns the state and the bare model."""
    if tcfg.threads:
        torch.set_num_threads(tcfg.threads)
    set_determinism(tcfg.deterministic)
    device = distributed.device_for(d, resolve_device(tcfg.device))
    precision = resolve_precision(emulate.real(tcfg.precision), device)
    warning = slow_precision_warning(precision, device)
    emulated = emulate.wanted(tcfg.precision, slow=warning is not None)
    if emulated:
        warning = None
        if d.is_main:
            log(f"train: {precision} emulated on this {device.type} (fp32 arithmetic, {precision} rounding and range "
                "at the matmuls; see gptlab.train.emulate)")
    if warning:
        if tcfg.precision_fallback:
            warning = (f"train.precision={precision} (the recipe's) has no fast path on this {device.type}; "
                       f"training in fp32 instead (set train.precision={precision} to force it)")
            precision = "fp32"
        if d.is_main:
            log(f"[yellow]{warning}")
    torch.manual_seed(tcfg.seed)
    raw = GPT(mcfg).to(device)
    flops_per_token = raw.flops_per_token()              # on the bare model, before any wrapping
    if tcfg.activation_checkpointing:
        blocks = set(map(id, distributed.blocks_of(raw)))
        apply_activation_checkpointing(raw, check_fn=lambda m: id(m) in blocks)
    model = distributed.wrap(raw, d, device)
    opt = build_optimizer(model, tcfg)
    scaler = torch.amp.GradScaler(device.type, init_scale=tcfg.loss_scale_init, growth_factor=2.0,
                                  backoff_factor=tcfg.loss_scale_backoff,
                                  growth_interval=tcfg.loss_scale_growth_interval, enabled=precision == "fp16")
    step, skips = _resume(ckpt_dir, model, opt, scaler, key) if resume else (0, [])
    if d.is_main:
        log(f"train: {raw.num_params() / 1e6:.2f}M params (non-embedding), {precision} on {device}"
            f"{f' × {d.world} ranks ({d.mode})' if d.world > 1 else ''}, {tcfg.max_steps} steps × "
            f"{tcfg.batch_size} × {data.seq_len} tokens")
    batches = Batches(data, BatchSchedule(tcfg, data.seq_len, multiple_of=d.dp_world), tcfg.seed, skips)
    state = TrainState(step=step, model=model, optimizer=opt, batches=batches, dist=d, device=device,
                       scaler=scaler, lr_at=lr_schedule(tcfg),
                       autocast=emulate.Emulation(precision) if emulated else autocast(precision, device),
                       seq_len=data.seq_len, precision=precision, flops_per_token=flops_per_token,
                       peak_flops=peak_flops(tcfg.peak_tflops, device),
                       forward=torch.compile(model) if resolve_compile(tcfg.compile, device) else None)
    return state, raw


def _resume(ckpt_dir: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
            key: str) -> tuple[int, list]:
    """Load the newest checkpoint that verifies into model, optimizer and scaler; returns
    its step and skip list, or (0, []) when there is none to resume."""
    if not list_checkpoints(ckpt_dir):
        return 0, []
    ckpt = latest_valid(ckpt_dir, log=log)
    if ckpt is None:
        log("[yellow]train: no checkpoint verifies; starting from scratch")
        return 0, []
    st = json.loads((ckpt / "state.json").read_text())
    if st.get("config_key") not in (None, key):
        raise ConfigError(f"{ckpt}: written with a different model/train config; gptlab does not "
                          "change hyperparameters mid-run (use a new --out, the original config, "
                          "or --restart to start over)")
    st = load_checkpoint(ckpt, model, opt)
    if "scaler" in st and scaler.is_enabled():
        scaler.load_state_dict(st["scaler"])
    log(f"train: resumed from {ckpt.name} (step {st['step']})")
    return st["step"], st.get("skips", [])


def build_hooks(tcfg: TrainConfig, scfg: StabilityConfig, out: Path, state: TrainState, sections: dict, key: str,
                tokenizer_file: str | Path | None, eval_fn: EvalFn | None, extra_hooks: Sequence[Hook],
                vocab_size: int) -> list[Hook]:
    """The run's hooks, in no particular order: train_loop sorts them by their ``order``.
    Rank 0 alone evaluates and writes metrics and events; every rank checkpoints (FSDP gathers)."""
    main = state.dist.is_main
    metrics = MetricsHook(out, tensorboard=os.environ.get("GPTLAB_TENSORBOARD", "1") != "0") if main else None
    events = EventLog(out / "events.jsonl" if main else None, metrics)
    hooks: list[Hook] = list(extra_hooks)
    if main:
        hooks += [metrics, ProgressHook(tcfg.max_steps, tcfg.log_every)]
    if eval_fn is not None and tcfg.eval_every:      # every rank: an FSDP forward needs them all
        hooks.append(EvalHook(tcfg.eval_every, eval_fn, metrics))
    if scfg.inject:
        hooks.append(FaultInjector(scfg.inject, events, vocab_size, scfg.lr_spike_factor))
    if scfg.enabled:
        hooks.append(StabilityGuard(scfg, events, out / "checkpoints", log))
    hooks.append(CheckpointHook(out / "checkpoints", tcfg.checkpoint_every, tcfg.keep_checkpoints, tcfg.max_steps,
                                sections, tokenizer_file, _resume_state(key)))
    return hooks


def _resume_state(key: str) -> Callable[[TrainState], dict[str, Any]]:
    """What a checkpoint carries besides weights and optimizer, for a bitwise-exact resume."""
    def extra(s: TrainState) -> dict[str, Any]:
        return {"config_key": key, "data_position": s.batches.position(s.step), "skips": s.batches.skips,
                "batch_size": s.batches.size(s.step), **s.checkpoint_extra,
                **({"scaler": s.scaler.state_dict()} if s.scaler.is_enabled() else {})}
    return extra


def summarize(state: TrainState, out: Path, raw: GPT, start_step: int, elapsed: float) -> dict[str, Any]:
    """The stage summary: losses from metrics.jsonl, tokens, throughput, the final checkpoint."""
    final = latest_valid(out / "checkpoints")
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    b, seq = state.batches, state.seq_len
    return {"steps": state.step, "first_loss": losses[0], "final_loss": sum(losses[-10:]) / len(losses[-10:]),
            "params": raw.num_params(), "precision": state.precision, "device": str(state.device),
            "emulated": isinstance(state.autocast, emulate.Emulation),
            "world": state.dist.world, "tokens": b.position(state.step) * seq,
            "tokens_per_s": (b.position(state.step) - b.position(start_step)) * seq / max(elapsed, 1e-9),
            "checkpoint": str(final.relative_to(out)) if final else None}
