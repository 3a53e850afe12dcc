"""Optimizer construction and the learning-rate schedule."""
from __future__ import annotations

import math

import torch
from torch import nn


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: decay the matmul weights only, never norms, biases or embeddings."""
    decay, no_decay = [], []
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        is_embedding = "embed" in name
        (decay if p.dim() >= 2 and not is_embedding else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, tcfg) -> torch.optim.Optimizer:
    return torch.optim.AdamW(param_groups(model, tcfg.weight_decay), lr=tcfg.lr,
                             betas=(tcfg.beta1, tcfg.beta2), eps=1e-8, foreach=False)


def cosine_lr(step: int, tcfg) -> float:
    """Linear warmup, then cosine decay to ``min_lr_ratio`` of the peak (GPT-3)."""
    peak, floor = tcfg.lr, tcfg.lr * tcfg.min_lr_ratio
    if tcfg.warmup_steps and step < tcfg.warmup_steps:
        return peak * (step + 1) / tcfg.warmup_steps
    span = max(1, tcfg.max_steps - tcfg.warmup_steps)
    progress = min(1.0, (step - tcfg.warmup_steps) / span)
    return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * progress))
