"""Settings of `gptlab finetune` (the CLI flags map one to one onto these fields)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gptlab.schema import bounded
from gptlab.train.config import TrainConfig


@dataclass
class FinetuneConfig:
    task: Literal["classification", "generation", "instructions"] = "classification"
    max_steps: int = bounded(1, 10**9, default=200)
    batch_size: int = bounded(1, 65536, default=8)
    lr: float = bounded(0.0, 1.0, default=3e-4)
    warmup_steps: int = bounded(0, 10**9, default=10)
    schedule: Literal["constant", "cosine", "linear"] = "cosine"
    min_lr_ratio: float = bounded(0.0, 1.0, default=0.1)
    weight_decay: float = bounded(0.0, 10.0, default=0.0)
    grad_clip: float = bounded(0.0, 1e6, default=1.0)
    # Validation: every eval_every steps the target-token loss on the validation set; training
    # stops after `patience` evaluations without improvement (0 = never), and the best one is kept.
    eval_every: int = bounded(1, 10**9, default=20)
    patience: int = bounded(0, 10**6, default=3)
    valid_fraction: float = bounded(0.0, 0.5, default=0.1)   # without --valid: held out from --train
    max_chars: int = bounded(0, 10**7, default=0)            # characters of each input kept (0 = all)
    # LoRA through peft: rank 0 = full fine-tuning.
    lora_rank: int = bounded(0, 4096, default=0)
    lora_alpha: float = bounded(0.0, 1e6, default=16.0)
    # Instruction mixture (--task instructions): per-task cap, few-shot share, exemplars at most.
    mixture_cap: int = bounded(1, 10**9, default=1000)
    few_shot_fraction: float = bounded(0.0, 1.0, default=0.5)
    max_shots: int = bounded(0, 64, default=2)
    template: str = ""        # a custom prompt format string (classification, generation); "" = the default
    seed: int = bounded(0, 2**31 - 1, default=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    threads: int = bounded(0, 1024, default=0)

    def train_config(self) -> TrainConfig:
        """The optimizer and schedule keys, as gptlab.train.optim reads them."""
        return TrainConfig(max_steps=self.max_steps, batch_size=self.batch_size, lr=self.lr,
                           warmup_steps=min(self.warmup_steps, self.max_steps), schedule=self.schedule,
                           min_lr_ratio=self.min_lr_ratio, weight_decay=self.weight_decay,
                           beta1=0.9, beta2=0.999, grad_clip=self.grad_clip, seed=self.seed)
