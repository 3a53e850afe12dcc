"""Config of the training stage."""
from __future__ import annotations

from dataclasses import dataclass, field

from gptlab.fields import rng


@dataclass
class TrainConfig:
    max_steps: int = rng(1, 10**9, default=600)
    batch_size: int = rng(1, 1_000_000, default=16)
    lr: float = rng(0.0, 10.0, default=3e-3)
    min_lr_ratio: float = rng(0.0, 1.0, default=0.1)
    warmup_steps: int = rng(0, 10**9, default=50)
    weight_decay: float = rng(0.0, 10.0, default=0.1)
    beta1: float = rng(0.0, 0.999999, default=0.9)
    beta2: float = rng(0.0, 0.999999, default=0.95)
    grad_clip: float = rng(0.0, 1e6, default=1.0)
    # auto = bf16 autocast where the hardware computes bf16 fast, else fp32. fp16 uses a
    # dynamic loss scale (kept for ablations: it is what OPT trained with).
    precision: str = rng(choices=("auto", "bf16", "fp16", "fp32"), default="auto")
    optimizer: str = rng(choices=("adamw", "adafactor"), default="adamw")
    schedule: str = rng(choices=("cosine", "rsqrt", "wsd", "constant"), default="cosine")
    z_loss: float = rng(0.0, 1.0, default=0.0)
    # Batch-size ramp, in sequences per step: linear from ramp_start_batch over ramp_tokens
    # tokens (GPT-3), or piecewise by step (PaLM: ramp_steps boundaries, ramp_batches sizes).
    ramp: str = rng(choices=("none", "linear", "steps"), default="none")
    ramp_start_batch: int = rng(1, 1_000_000, default=1)
    ramp_tokens: int = rng(0, 10**15, default=0)
    ramp_steps: list[int] = field(default_factory=list)
    ramp_batches: list[int] = field(default_factory=list)
    # Split each step into micro-batches of this many sequences (0 = the whole batch at once).
    micro_batch_size: int = rng(0, 1_000_000, default=0)
    wsd_decay_fraction: float = rng(0.0, 1.0, default=0.2)
    # Distribution under torchrun: ddp or fsdp (FSDP2 fully_shard). Ignored in one process.
    distributed: str = rng(choices=("ddp", "fsdp"), default="ddp")
    compile: bool = False
    activation_checkpointing: bool = False
    # One flag for bitwise reproducibility on GPU (deterministic kernels, no cuDNN autotuning).
    deterministic: bool = False
    # Peak FLOP/s of one device for MFU; 0 = look the device up (known GPUs), else MFU is not logged.
    peak_tflops: float = rng(0.0, 1e6, default=0.0)

    def check(self) -> None:
        if self.ramp == "steps":
            if len(self.ramp_batches) != len(self.ramp_steps) + 1:
                raise ValueError("ramp_batches: needs one more entry than train.ramp_steps")
            if self.ramp_steps != sorted(self.ramp_steps):
                raise ValueError("ramp_steps: boundaries must increase")
        if self.ramp == "linear" and self.ramp_start_batch > self.batch_size:
            raise ValueError("ramp_start_batch: larger than train.batch_size")
    device: str = rng(choices=("auto", "cpu", "cuda"), default="auto")
    seed: int = rng(0, 2**31 - 1, default=1337)
    threads: int = rng(0, 1024, default=0)  # 0: leave torch's default
    log_every: int = rng(1, 10**9, default=10)
    checkpoint_every: int = rng(1, 10**9, default=200)
    keep_checkpoints: int = rng(1, 1000, default=2)
    eval_every: int = rng(0, 10**9, default=0)  # 0: no periodic eval
