"""Things that hang off the training loop: metrics, progress, checkpoints, periodic eval."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gptlab.console import log, make_progress
from gptlab.train.checkpoint import save_training_checkpoint


@dataclass
class TrainState:
    """Everything the loop and its hooks share. Hooks may roll ``step`` back, extend the
    skip list of ``batches``, or set ``stop`` (with a reason) to end the run."""
    step: int
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    batches: Any
    dist: Any
    device: torch.device
    scaler: Any
    autocast: Any
    lr_at: Any
    seq_len: int
    flops_per_token: float = 0.0
    peak_flops: float | None = None
    forward: Any = None
    vocab_size: int = 0
    stop: bool = False
    stop_reason: str = ""
    fault: str | None = None             # an injected fault armed for this step (tests, demos)
    lr_spike_factor: float = 1.0


class Hook:
    def on_train_start(self, state: TrainState) -> None: ...
    def on_step_start(self, state: TrainState) -> None: ...
    def on_step_end(self, state: TrainState, metrics: dict[str, Any]) -> None: ...
    def on_train_end(self, state: TrainState) -> None: ...


class MetricsHook(Hook):
    """metrics.jsonl (every step) and TensorBoard scalars; resumed runs append after the
    last step they carry, so the file never holds a step twice."""

    def __init__(self, out_dir: Path, tensorboard: bool = True):
        self.path = out_dir / "metrics.jsonl"
        self.tb_dir = out_dir / "tb"
        self.tensorboard = tensorboard
        self.writer = None
        self.file = None

    def on_train_start(self, state: TrainState) -> None:
        kept = []
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill
                if rec.get("step", 0) <= state.step:
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
    """Every ``every`` steps and at the end; every rank calls it (FSDP gathers), rank 0 writes."""

    def __init__(self, folder: Path, every: int, keep: int, max_steps: int, config: dict, tokenizer_file,
                 extra=None):
        self.folder, self.every, self.keep, self.max_steps = folder, every, keep, max_steps
        self.config, self.tokenizer_file, self.extra = config, tokenizer_file, extra

    def save(self, state: TrainState) -> Path | None:
        extra = self.extra(state) if self.extra else {}
        return save_training_checkpoint(self.folder, state.step, state.model, state.optimizer, self.config,
                                        extra, self.tokenizer_file, self.keep, state.dist)

    def on_step_end(self, state: TrainState, metrics: dict[str, Any]) -> None:
        if state.step != metrics["step"]:
            return                       # the stability guard just rolled this step back
        if state.step % self.every == 0 or state.step == self.max_steps:
            self.save(state)


class EvalHook(Hook):
    """Periodic held-out bits-per-byte, logged to metrics and TensorBoard."""

    def __init__(self, every: int, evaluate, metrics_hook: MetricsHook | None):
        self.every, self.evaluate, self.metrics_hook = every, evaluate, metrics_hook

    def on_step_end(self, state: TrainState, metrics: dict[str, Any]) -> None:
        if self.every and state.step % self.every == 0:
            was = state.model.training
            state.model.eval()
            result = self.evaluate(state.model)
            state.model.train(was)
            metrics["eval_bpb"] = result["overall"]["bpb"]
            if self.metrics_hook is not None and self.metrics_hook.writer is not None:
                for dom, r in result["domains"].items():
                    self.metrics_hook.writer.add_scalar(f"eval_bpb/{dom}", r["bpb"], state.step)
