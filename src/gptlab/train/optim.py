"""Optimizers (AdamW, PaLM's Adafactor) and learning-rate schedules."""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributed.tensor import DTensor


def param_groups(model: nn.Module, weight_decay: float, scope: str = "matrices") -> list[dict]:
    """Parameter groups for weight decay. ``matrices``: decay the matmul weights only, never
    norms, biases or embeddings (nanoGPT). ``all``: decay every parameter (t5x Adafactor)."""
    decay, no_decay = [], []
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        is_embedding = "embed" in name
        (decay if scope == "all" or (p.dim() >= 2 and not is_embedding) else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def decay_scope(tcfg) -> str:
    """auto: t5x's Adafactor decays every parameter (PaLM decays its N(0,1) embeddings by lr^2
    too: t5x adafactor.py applies weight_decay_rate to each parameter unmasked); AdamW decays
    matrices only, as nanoGPT and GPT-3 did."""
    scope = getattr(tcfg, "decay_scope", "auto")
    if scope == "auto":
        return "all" if tcfg.optimizer == "adafactor" else "matrices"
    return scope


class Adafactor(torch.optim.Optimizer):
    """PaLM's optimizer, written as the t5x Adafactor update (not torch.optim.Adafactor).

    Per parameter, at step k (1-based):
      β2_k = 1 − k^−0.8;  v = β2_k·v + (1 − β2_k)·(g² + 1e-30)      unfactored second moment
      u = g / √v;  u /= max(1, RMS(u) / clip)                          update clipping (1.0)
      m = β1·m + (1 − β1)·lr·max(RMS(p), 1e-3)·u                       momentum on the scaled update
      p = (1 − wd·lr^2)·p − m                                          decoupled decay, rate lr² (PaLM)
    ``weight_decay`` multiplies lr²: PaLM is weight_decay = 1. The clip threshold, the 0.8 and
    the 2 are the config keys train.adafactor_clip, adafactor_decay_exponent and
    adafactor_wd_lr_exponent; which parameters decay is train.decay_scope (t5x: all of them).

    The step count k lives on the CPU (as torch's own optimizers keep theirs), so reading it
    to compute β2_k in double precision is a memory read, never a wait on the device: the
    update launches its kernels and returns without one host-device sync.
    """

    def __init__(self, params, lr: float = 1e-2, beta1: float = 0.9, decay_exponent: float = 0.8,
                 clip_threshold: float = 1.0, eps1: float = 1e-30, eps2: float = 1e-3,
                 weight_decay: float = 0.0, weight_decay_lr_exponent: float = 2.0):
        defaults = dict(lr=lr, beta1=beta1, decay_exponent=decay_exponent, clip_threshold=clip_threshold,
                        eps1=eps1, eps2=eps2, weight_decay=weight_decay,
                        weight_decay_lr_exponent=weight_decay_lr_exponent)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            lr = group["lr"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.float()
                st = self.state[p]
                if not st:
                    st["step"] = torch.zeros((), dtype=torch.float32, device="cpu")
                    st["v"] = torch.zeros_like(g)
                    st["m"] = torch.zeros_like(g)
                elif st["step"].device.type != "cpu":
                    st["step"] = st["step"].cpu()   # once, after a loader put it on the device
                st["step"] += 1
                k = float(st["step"])              # a CPU tensor: no device sync
                beta2 = 1.0 - k ** (-group["decay_exponent"])
                v = st["v"]
                v.mul_(beta2).add_(g * g + group["eps1"], alpha=1.0 - beta2)
                u = g / v.sqrt()
                rms_u = u.pow(2).mean().sqrt()
                u.div_(torch.clamp(rms_u / group["clip_threshold"], min=1.0))
                pf = p.float()
                scale = lr * torch.clamp(pf.pow(2).mean().sqrt(), min=group["eps2"])
                m = st["m"]
                m.mul_(group["beta1"]).add_(u * scale, alpha=1.0 - group["beta1"])
                if group["weight_decay"]:
                    pf = pf * (1.0 - group["weight_decay"] * lr ** group["weight_decay_lr_exponent"])
                p.copy_((pf - m).to(p.dtype))
        return loss


def adamw_impl(params) -> dict:
    """fused=True where every parameter is on CUDA (one kernel for the whole update), else
    foreach=True (a handful of multi-tensor kernels; on CPU bitwise the same as the per-tensor
    loop torch would otherwise pick there)."""
    flat = [p for group in params for p in (group["params"] if isinstance(group, dict) else [group])]
    # Multi-tensor kernels take one kind of tensor: under tensor parallelism some parameters are
    # DTensors (on one mesh or another) and some plain, so each is stepped on its own.
    if len({(p.device_mesh.mesh_dim_names, p.device_mesh.ndim) if isinstance(p, DTensor) else None
            for p in flat}) > 1:
        return {"foreach": False}
    devices = {p.device.type for p in flat}
    if devices == {"cuda"}:
        return {"fused": True}
    return {"foreach": True}


def build_optimizer(model: nn.Module, tcfg) -> torch.optim.Optimizer:
    groups = param_groups(model, tcfg.weight_decay, decay_scope(tcfg))
    if tcfg.optimizer == "adafactor":
        return Adafactor(groups, lr=tcfg.lr, beta1=tcfg.beta1, weight_decay=tcfg.weight_decay,
                         clip_threshold=tcfg.adafactor_clip, decay_exponent=tcfg.adafactor_decay_exponent,
                         weight_decay_lr_exponent=tcfg.adafactor_wd_lr_exponent)
    return torch.optim.AdamW(groups, lr=tcfg.lr, betas=(tcfg.beta1, tcfg.beta2), eps=1e-8, **adamw_impl(groups))


# ----------------------------------------------------------------------------- schedules

def warmup_steps(tcfg) -> int:
    """Warmup length in steps: ``warmup_fraction`` of max_steps where set (at least one step),
    else ``warmup_steps``. GPT-3 and OPT warm up over 375M of 300B tokens: 0.125 % of the run."""
    frac = getattr(tcfg, "warmup_fraction", 0.0)
    if frac:
        return max(1, round(frac * tcfg.max_steps))
    return tcfg.warmup_steps


def decay_end(tcfg) -> int:
    """The step where cosine/linear decay reaches the floor (GPT-3: 260B of 300B tokens)."""
    return max(1, round(getattr(tcfg, "decay_fraction", 1.0) * tcfg.max_steps))


def _warmup(step: int, tcfg) -> float | None:
    w = warmup_steps(tcfg)
    if w and step < w:
        return tcfg.lr * (step + 1) / w
    return None


def _decay_progress(step: int, tcfg) -> float:
    w = warmup_steps(tcfg)
    span = max(1, decay_end(tcfg) - w)
    return min(1.0, max(0.0, (step - w) / span))


def cosine_lr(step: int, tcfg) -> float:
    """Linear warmup, then cosine decay to ``min_lr_ratio`` of the peak (GPT-3)."""
    w = _warmup(step, tcfg)
    if w is not None:
        return w
    peak, floor = tcfg.lr, tcfg.lr * tcfg.min_lr_ratio
    return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * _decay_progress(step, tcfg)))


def linear_lr(step: int, tcfg) -> float:
    """Linear warmup, then linear decay to ``min_lr_ratio`` of the peak: metaseq's
    ``polynomial_decay`` with power 1 and end_learning_rate 0.1 x lr (OPT)."""
    w = _warmup(step, tcfg)
    if w is not None:
        return w
    return tcfg.lr * (1 - _decay_progress(step, tcfg) * (1 - tcfg.min_lr_ratio))


def rsqrt_lr(step: int, tcfg) -> float:
    """PaLM / T5: constant ``lr`` for ``warmup_steps`` steps, then ∝ 1/√k.
    With lr = 1e-2 and 10k warmup steps this is exactly 1/√max(k, 10⁴)."""
    w = warmup_steps(tcfg)
    k = max(step + 1, w, 1)
    return tcfg.lr * math.sqrt(max(w, 1) / k)


def wsd_lr(step: int, tcfg) -> float:
    """Warmup-stable-decay: linear warmup, flat, then a linear decay over the last fraction."""
    w = _warmup(step, tcfg)
    if w is not None:
        return w
    decay_start = int(tcfg.max_steps * (1 - tcfg.wsd_decay_fraction))
    if step < decay_start:
        return tcfg.lr
    frac = (step - decay_start) / max(1, tcfg.max_steps - decay_start)
    return tcfg.lr * (1 - frac * (1 - tcfg.min_lr_ratio))


def constant_lr(step: int, tcfg) -> float:
    w = _warmup(step, tcfg)
    return tcfg.lr if w is None else w


SCHEDULES = {"cosine": cosine_lr, "linear": linear_lr, "rsqrt": rsqrt_lr, "wsd": wsd_lr, "constant": constant_lr}


def lr_schedule(tcfg):
    fn = SCHEDULES[tcfg.schedule]
    return lambda step: fn(step, tcfg)
