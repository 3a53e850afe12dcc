"""Config of the training stage and of its stability guard."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from gptlab.schema import bounded


@dataclass
class TrainConfig:
    max_steps: int = bounded(1, 10**9, default=600)
    batch_size: int = bounded(1, 1_000_000, default=16)
    lr: float = bounded(0.0, 10.0, default=3e-3)
    min_lr_ratio: float = bounded(0.0, 1.0, default=0.1)
    warmup_steps: int = bounded(0, 10**9, default=50)
    weight_decay: float = bounded(0.0, 10.0, default=0.1)
    beta1: float = bounded(0.0, 0.999999, default=0.9)
    beta2: float = bounded(0.0, 0.999999, default=0.95)
    grad_clip: float = bounded(0.0, 1e6, default=1.0)
    # auto = bf16 autocast where the hardware computes bf16 fast, else fp32. fp16 uses a
    # dynamic loss scale (kept for ablations: it is what OPT trained with). fp16-emulated / bf16-emulated:
    # the real fp16/bf16 where the device computes it fast; elsewhere (fp16 on any CPU, bf16 on a CPU
    # without AVX-512 BF16) fp32 arithmetic rounded through fp16/bf16 at every matmul, as autocast would,
    # with its range (fp16 overflows past 65504, so the loss scaler acts): gptlab.train.emulate.
    precision: Literal["auto", "bf16", "fp16", "fp32", "fp16-emulated", "bf16-emulated"] = "auto"
    # true: where the device has no fast path for `precision` (bf16 on a CPU without AVX-512 BF16, fp16 on
    # any CPU), train in fp32 and say so. A recipe preset sets it for its own precision; a precision the
    # user sets is kept as asked (with a warning where it is slow).
    precision_fallback: bool = False
    optimizer: Literal["adamw", "adafactor"] = "adamw"
    # linear = linear (polynomial power 1) decay to min_lr_ratio after the warmup (OPT/metaseq).
    schedule: Literal["cosine", "linear", "rsqrt", "wsd", "constant"] = "cosine"
    z_loss: float = bounded(0.0, 1.0, default=0.0)
    # Batch-size ramp, in sequences per step: linear from ramp_start_batch over ramp_tokens
    # tokens (GPT-3), or piecewise by step (PaLM: ramp_steps boundaries, ramp_batches sizes).
    ramp: Literal["none", "linear", "steps"] = "none"
    ramp_start_batch: int = bounded(1, 1_000_000, default=1)
    ramp_tokens: int = bounded(0, 10**15, default=0)
    ramp_steps: list[int] = field(default_factory=list)
    ramp_batches: list[int] = field(default_factory=list)
    # --- recipes at any scale (presets): ramp, warmup and decay as fractions of the run, and
    # Adafactor's constants. A fraction, when set, wins over the absolute key it replaces.
    # Linear ramp: start at this fraction of batch_size (0 = ramp_start_batch), and reach the
    # full batch after this fraction of the run's token budget, max_steps*batch_size*seq_len
    # (0 = ramp_tokens). GPT-3: 32k tokens of 0.5M, over 4B of its 300B tokens.
    ramp_start_fraction: float = bounded(0.0, 1.0, default=0.0)
    ramp_fraction: float = bounded(0.0, 1.0, default=0.0)
    # Step ramp as fractions: boundaries of max_steps, sizes of batch_size (PaLM: 50k and 115k
    # of 255k steps; 1/4, 1/2, 1 of 2048). Empty = the absolute ramp_steps / ramp_batches.
    ramp_step_fractions: list[float] = field(default_factory=list)
    ramp_batch_fractions: list[float] = field(default_factory=list)
    # Warmup as a fraction of max_steps (0 = warmup_steps): the paper's warmup tokens over its
    # token budget (GPT-3 and OPT: 375M of 300B).
    warmup_fraction: float = bounded(0.0, 1.0, default=0.0)
    # cosine/linear reach the floor at this fraction of max_steps, then hold it (GPT-3: 260B of 300B).
    decay_fraction: float = bounded(0.0, 1.0, default=1.0)
    # Which parameters weight decay touches: auto = matrices only for AdamW (nanoGPT), every
    # parameter for Adafactor (t5x: the N(0,1) embeddings, norms and biases too).
    decay_scope: Literal["auto", "all", "matrices"] = "auto"
    # t5x Adafactor: update clipping threshold, beta2_k = 1 - k^-decay_exponent, and the decay
    # rate weight_decay * lr^wd_lr_exponent (PaLM: 1.0, 0.8, 2.0).
    adafactor_clip: float = bounded(0.0, 1e6, default=1.0)
    adafactor_decay_exponent: float = bounded(0.0, 1.0, default=0.8)
    adafactor_wd_lr_exponent: float = bounded(0.0, 10.0, default=2.0)
    # --- end of the recipe keys

    # Split each step into micro-batches of this many sequences (0 = the whole batch at once).
    micro_batch_size: int = bounded(0, 1_000_000, default=0)
    wsd_decay_fraction: float = bounded(0.0, 1.0, default=0.2)
    # Distribution under torchrun: ddp or fsdp (FSDP2 fully_shard). Ignored in one process.
    distributed: Literal["ddp", "fsdp"] = "ddp"
    # Tensor parallelism under torchrun: ranks per TP group, each holding 1/N of every block's
    # matmuls (DTensor); with more ranks than N, FSDP2 over the rest (a 2-D mesh, dp × tp).
    # 1 = off; ignored in one process. See docs/scale.md.
    tensor_parallel: int = bounded(1, 1024, default=1)
    # torch.compile of the model: auto = on for CUDA (it pays for itself within a few hundred steps),
    # off on the CPU (minutes of compiling for a short run); true/false force it.
    compile: bool | Literal["auto"] = "auto"
    activation_checkpointing: bool = False
    # One flag for bitwise reproducibility on GPU (deterministic kernels, no cuDNN autotuning).
    deterministic: bool = False
    # Peak FLOP/s of one device for MFU; 0 = look the device up (known GPUs), else MFU is not logged.
    peak_tflops: float = bounded(0.0, 1e6, default=0.0)

    def check(self) -> None:
        if self.ramp == "steps":
            if self.ramp_step_fractions or self.ramp_batch_fractions:
                steps, sizes, names = self.ramp_step_fractions, self.ramp_batch_fractions, \
                    ("ramp_batch_fractions", "ramp_step_fractions")
                if any(not 0 < f <= 1 for f in (*steps, *sizes)):
                    raise ValueError("ramp_step_fractions: fractions must lie in (0, 1] "
                                     "(and so must train.ramp_batch_fractions)")
            else:
                steps, sizes, names = self.ramp_steps, self.ramp_batches, ("ramp_batches", "ramp_steps")
            if len(sizes) != len(steps) + 1:
                raise ValueError(f"{names[0]}: needs one more entry than train.{names[1]}")
            if list(steps) != sorted(steps):
                raise ValueError(f"{names[1]}: boundaries must increase")
        if self.ramp == "linear" and not self.ramp_start_fraction and self.ramp_start_batch > self.batch_size:
            raise ValueError("ramp_start_batch: larger than train.batch_size (presets use "
                             "train.ramp_start_fraction, which scales with it)")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = bounded(0, 2**31 - 1, default=1337)
    threads: int = bounded(0, 1024, default=0)  # 0: leave torch's default
    log_every: int = bounded(1, 10**9, default=10)
    checkpoint_every: int = bounded(1, 10**9, default=200)
    keep_checkpoints: int = bounded(1, 1000, default=2)
    eval_every: int = bounded(0, 10**9, default=0)  # 0: no periodic eval
    # --- fp16 dynamic loss scale (ignored unless precision is fp16). torch's defaults: start at
    # 2^16, halve on an overflow, double after 2000 clean steps, no floor. A step whose gradients
    # overflow is skipped by the scaler (not a loss spike: the stability guard leaves it alone).
    loss_scale_init: float = bounded(2.0 ** -24, 2.0 ** 64, default=2.0 ** 16)
    loss_scale_growth_interval: int = bounded(1, 10**9, default=2000)   # clean steps before the scale doubles
    loss_scale_backoff: float = bounded(0.01, 0.99, default=0.5)        # factor on an overflow
    # The floor under the scale (0 = none, as torch). GradScaler has no floor of its own:
    # gptlab clamps the scale back up to it after each update, as metaseq's --min-loss-scale.
    loss_scale_min: float = bounded(0.0, 2.0 ** 64, default=0.0)

@dataclass
class StabilityConfig:
    enabled: bool = True
    # Detectors. Non-finite loss/gradient is always on while the guard is enabled.
    window: int = bounded(5, 100_000, default=50)          # trailing steps for median/MAD
    loss_k: float = bounded(0.0, 1e6, default=6.0)          # robust deviations above the median; 0 = off
    loss_min_delta: float = bounded(0.0, 1e6, default=0.5)  # and at least this many nats above it
    grad_k: float = bounded(0.0, 1e6, default=0.0)          # gradient-norm outliers; 0 = off
    grad_min_ratio: float = bounded(1.0, 1e6, default=5.0)  # and at least this many times the median
    warmup: int = bounded(0, 10**9, default=50)             # grace steps before the robust detectors arm
    cooldown: int = bounded(0, 10**9, default=10)           # steps after a rollback before they re-arm
    # Policy (PaLM: restart ~100 steps before the spike, skip ~200-500 batches).
    rollback_steps: int = bounded(1, 10**9, default=100)
    skip_batches: int = bounded(0, 10**9, default=200)
    # How many batches before the onset the skipped window starts; -1 = at the rollback point.
    skip_lead: int = bounded(-1, 10**9, default=-1)
    snapshot_every: int = bounded(1, 10**9, default=25)      # in-memory ring of lightweight snapshots
    max_rollbacks: int = bounded(1, 10**6, default=3)       # budget: this many rollbacks ...
    budget_window: int = bounded(1, 10**9, default=1000)    # ... within this many steps, then stop
    # Fault injection for tests and demos: "nan@STEP", "poison@STEP", "lr_spike@STEP", comma-separated.
    inject: str = ""
    lr_spike_factor: float = bounded(1.0, 1e9, default=1000.0)

    def check(self) -> None:
        parse_faults(self.inject)


def parse_faults(spec: str) -> list[tuple[str, int]]:
    """"poison@120,nan@300" → [("poison", 120), ("nan", 300)]; ValueError names a bad item."""
    out = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        kind, _, step = item.partition("@")
        if kind not in ("nan", "poison", "lr_spike") or not step.isdigit() or int(step) < 1:
            raise ValueError(f"inject: {item!r} is not nan@STEP, poison@STEP or lr_spike@STEP")
        out.append((kind, int(step)))
    return out
