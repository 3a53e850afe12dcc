"""Things that hang off the training loop: the hook protocol and its order, then metrics,
progress, checkpoints and periodic eval (the stability guard and fault injection have modules
of their own)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from gptlab.checkpoint import list_checkpoints
from gptlab.console import log, make_progress
from gptlab.train.checkpoint import save_training_checkpoint
from gptlab.train.state import TrainState

# ----------------------------------------------------------------------------- order
# Every step calls each hook point on every hook in ``order`` (lower first; ties keep the
# order of the list given to train_loop). The constants say who depends on whom:
ORDER_FAULTS = 0         # first: an injected fault arms before any other hook sees the step's lr, batch or loss
ORDER_EVAL = 100         # periodic eval adds ``eval_bpb`` to the metrics dict, so before it is written
ORDER_EXTRA = 200        # the default for other hooks: they see eval_bpb and may add metrics of their own
ORDER_METRICS = 300      # metrics.jsonl and TensorBoard: the step's metrics are complete by now
ORDER_PROGRESS = 310     # the progress bar and log line
ORDER_GUARD = 400        # the stability guard judges the finished metrics and may roll the step back
ORDER_CHECKPOINT = 500   # after the guard: a rolled-back step must not be checkpointed


class Hook:
    """A thing that hangs off the training loop. It calls on_train_start(state) once before the
    first step and on_train_end(state) once after the last; within one step, in this order:

        on_step_start(state)                 # before the lr is set (a hook may set state.lr_scale)
        on_batch(state, x, y) -> (x, y)      # per micro-batch, after reading it
        on_loss(state, ce, z) -> (ce, z)     # per micro-batch, the unweighted loss terms before backward
        on_step_end(state, metrics)          # after the optimizer step; hooks may add to ``metrics``

    ``order`` places the hook among the others (see the ORDER_* constants); ``runs_before``
    and ``runs_after`` name the hook classes it depends on, which train_loop checks.
    """
    order: int = ORDER_EXTRA
    runs_before: tuple[type[Hook], ...] = ()    # when present, these must have a higher order
    runs_after: tuple[type[Hook], ...] = ()     # when present, these must have a lower order

    def on_train_start(self, state: TrainState) -> None: ...
    def on_step_start(self, state: TrainState) -> None: ...
    def on_batch(self, state: TrainState, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, y
    def on_loss(self, state: TrainState, ce: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return ce, z
    def on_step_end(self, state: TrainState, metrics: dict[str, Any]) -> None: ...
    def on_train_end(self, state: TrainState) -> None: ...


class HookOrderError(ValueError):
    """Two hooks that depend on each other are ordered the wrong way round."""


def sort_hooks(hooks: list[Hook]) -> list[Hook]:
    """The hooks by ``order`` (a stable sort), after checking every declared dependency."""
    for h in hooks:
        if not isinstance(h, Hook) or not isinstance(h.order, int):
            raise TypeError(f"{h!r}: a training hook must be a gptlab.train.hooks.Hook with an integer `order`")
    for a in hooks:
        for b in hooks:
            if type(a) is type(b):
                continue
            if isinstance(b, a.runs_before) and not a.order < b.order:
                _order_error(later=b, earlier=a)
            if isinstance(b, a.runs_after) and not b.order < a.order:
                _order_error(later=a, earlier=b)
    return sorted(hooks, key=lambda h: h.order)


def _order_error(later: Hook, earlier: Hook) -> None:
    raise HookOrderError(f"hook order: {type(later).__name__} (order {later.order}) must run after "
                         f"{type(earlier).__name__} (order {earlier.order}); give it a higher `order` "
                         f"(see the ORDER_* constants in gptlab.train.hooks)")


# ----------------------------------------------------------------------------- the hooks

class MetricsHook(Hook):
    """metrics.jsonl (every step) and TensorBoard scalars. A resumed run drops what the
    checkpoint does not carry and appends after it, so the file never holds a step twice
    within one rollback epoch. Abandoned trajectories (earlier epochs) are history: kept."""
    order = ORDER_METRICS

    def __init__(self, out_dir: Path, tensorboard: bool = True):
        self.path = out_dir / "metrics.jsonl"
        self.tb_dir = out_dir / "tb"
        self.tensorboard = tensorboard
        self.writer = None
        self.file = None

    def on_train_start(self, state: TrainState) -> None:
        kept = []
        epoch = len(state.batches.skips)      # rollbacks so far: the epoch the resumed run continues
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill
                e = rec.get("rollback_epoch", 0)
                if e < epoch or (e == epoch and rec.get("step", 0) <= state.step):
                    kept.append(line)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("".join(k + "\n" for k in kept))
        self.file = open(self.path, "a")
        if self.tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415  (slow to import (~1 s); only when TensorBoard logging is on)
            self.writer = SummaryWriter(str(self.tb_dir), purge_step=state.step + 1)

    def on_step_end(self, state: TrainState, metrics: dict[str, Any]) -> None:
        self.file.write(json.dumps(metrics) + "\n")
        self.file.flush()
        if self.writer is not None:
            for k, v in metrics.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.writer.add_scalar(f"train/{k}", v, metrics["step"])

    def on_train_end(self, state: TrainState) -> None:
        if self.file:
            self.file.close()
        if self.writer is not None:
            self.writer.close()


class ProgressHook(Hook):
    """A progress bar with step, loss and tokens/s, plus a log line every log_every steps."""
    order = ORDER_PROGRESS

    def __init__(self, max_steps: int, log_every: int):
        self.max_steps, self.log_every = max_steps, log_every

    def on_train_start(self, state: TrainState) -> None:
        self.prog = make_progress()
        self.prog.start()
        self.task = self.prog.add_task("train", total=self.max_steps, completed=state.step, info="")

    def on_step_end(self, state: TrainState, m: dict[str, Any]) -> None:
        self.prog.update(self.task, completed=m["step"],
                         info=f"loss {m['loss']:.3f} · {m['tokens_per_s']:.0f} tok/s")
        if m["step"] % self.log_every == 0 and not self.prog.live.is_started:
            log(f"step {m['step']}/{self.max_steps} loss {m['loss']:.4f} lr {m['lr']:.2e} "
                f"{m['tokens_per_s']:.0f} tok/s")

    def on_train_end(self, state: TrainState) -> None:
        self.prog.stop()


class CheckpointHook(Hook):
    """Every ``every`` steps and at the end; every rank calls it (FSDP gathers), rank 0 writes.
    Runs after the stability guard (which says so), so it sees a rolled-back step as one."""
    order = ORDER_CHECKPOINT

    def __init__(self, folder: Path, every: int, keep: int, max_steps: int, config: dict, tokenizer_file,
                 extra=None):
        self.folder, self.every, self.keep, self.max_steps = folder, every, keep, max_steps
        self.config, self.tokenizer_file, self.extra = config, tokenizer_file, extra

    def save(self, state: TrainState) -> Path | None:
        extra = self.extra(state) if self.extra else {}
        return save_training_checkpoint(self.folder, state.step, state.model, state.optimizer, self.config,
                                        extra, self.tokenizer_file, self.keep, state.dist)

    def on_step_end(self, state: TrainState, metrics: dict[str, Any]) -> None:
        if state.step != metrics["step"] or state.stop:
            return                       # the guard rolled this step back, or stopped on it
        if state.step % self.every == 0 or state.step == self.max_steps:
            self.save(state)

    def on_train_end(self, state: TrainState) -> None:
        # The guard stopped the run on the last good state it restored: make sure a checkpoint
        # exists to resume or inspect (every checkpoint already on disk passed the guard).
        if state.stop and state.stop_restored and not list_checkpoints(self.folder):
            self.save(state)


class EvalHook(Hook):
    """Periodic held-out bits-per-byte, logged to metrics and TensorBoard: it adds ``eval_bpb``
    to the step's metrics, so it runs before the hook that writes them.

    Under torchrun every rank runs it, on the same documents: an FSDP forward gathers the
    shards from all ranks, so a forward on rank 0 alone would wait for the others forever.
    Under DDP the bare module is evaluated (no collectives), so the ranks cannot desynchronise."""
    order = ORDER_EVAL
    runs_before = (MetricsHook,)

    def __init__(self, every: int, evaluate, metrics_hook: MetricsHook | None):
        self.every, self.evaluate, self.metrics_hook = every, evaluate, metrics_hook

    def on_step_end(self, state: TrainState, metrics: dict[str, Any]) -> None:
        if self.every and state.step % self.every == 0:
            model = state.model.module if isinstance(state.model, DistributedDataParallel) else state.model
            was = model.training
            model.eval()
            with torch.no_grad():
                result = self.evaluate(model)
            model.train(was)
            metrics["eval_bpb"] = result["overall"]["bpb"]
            if self.metrics_hook is not None and self.metrics_hook.writer is not None:
                for dom, r in result["domains"].items():
                    self.metrics_hook.writer.add_scalar(f"eval_bpb/{dom}", r["bpb"], state.step)
