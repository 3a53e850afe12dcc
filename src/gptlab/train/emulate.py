"""Emulated low precision: fp16's (or bf16's) rounding and range, computed in fp32.

Where a device has no fast path for a precision (fp16 on every CPU, bf16 on a CPU without
AVX-512 BF16) its autocast kernels crawl, ~1 GFLOP/s, too slow for an ablation. The emulation
keeps the arithmetic in fp32 but rounds every value autocast would have cast, at the same
places: the floating-point inputs and the output of each matmul-like op (linear, matmul, bmm,
scaled-dot-product attention), forward and backward. Rounding is ``x.to(dtype).to(float32)``:
round-to-nearest-even, fp16's subnormals, and fp16's range, so a value beyond 65504 becomes
inf, the gradients overflow as real fp16 gradients do, and the dynamic loss scaler has to act.

How it differs from real fp16/bf16 autocast (the lab's report says so next to an emulated arm):
  * products are accumulated in fp32 and rounded once at the op's output (tensor cores also
    accumulate in fp32, but a CPU fp16 kernel, or a split-K GEMM, may round partial sums);
  * elementwise ops between matmuls (GeLU, residual adds, softmax inside attention) run in
    fp32 on already-rounded inputs and are rounded only where they next enter a matmul; real
    autocast keeps their fp16 outputs in fp16;
  * no fp16 kernels run, so nothing about their speed or memory is measured (tokens/s is fp32's
    plus the rounding's cost).
Asked for as ``train.precision = "fp16-emulated"`` (or ``"bf16-emulated"``); on a device with a
fast path the real precision is used (see ``wanted``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_map

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}

# The ops autocast runs in the low precision (its "lower_precision_fp" list, the ones a GPT uses).
OPS = {F.linear, torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.mm, torch.bmm,
       torch.addmm, torch.baddbmm, torch.einsum, F.scaled_dot_product_attention}


class _Round(torch.autograd.Function):
    """Round through ``dtype`` in the forward, and round the gradient through it in the backward
    (a tensor autocast casts to fp16 gets an fp16 gradient)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        ctx.dtype = dtype
        return x.to(dtype).to(x.dtype)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        return g.to(ctx.dtype).to(g.dtype), None


def round_to(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``x`` rounded through ``dtype`` (differentiable; gradients are rounded too)."""
    return _Round.apply(x, dtype)


class _Mode(TorchFunctionMode):
    def __init__(self, dtype: torch.dtype):
        super().__init__()
        self.dtype = dtype

    def _round(self, v):
        if isinstance(v, torch.Tensor) and v.dtype == torch.float32:
            return round_to(v, self.dtype)
        return v

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in OPS:
            return func(*args, **kwargs)
        # Inside a mode's handler the mode is off: these calls are not intercepted again.
        out = func(*tree_map(self._round, args), **tree_map(self._round, kwargs))
        return tree_map(self._round, out)


class Emulation:
    """A re-enterable context (the loop enters it around every forward pass, as it does autocast)."""

    def __init__(self, precision: str):
        self.precision = precision
        self.dtype = DTYPES[precision]
        self._modes: list[_Mode] = []

    def __enter__(self):
        mode = _Mode(self.dtype)
        self._modes.append(mode)
        return mode.__enter__()

    def __exit__(self, *exc):
        return self._modes.pop().__exit__(*exc)


SUFFIX = "-emulated"


def real(precision: str) -> str:
    """The precision an emulated setting stands for: fp16-emulated → fp16."""
    return precision.removesuffix(SUFFIX)


def wanted(precision: str, slow: bool) -> bool:
    """Emulate when asked to (train.precision = fp16-emulated / bf16-emulated) on a device where
    the real kernels are slow; elsewhere the real precision runs."""
    return precision.endswith(SUFFIX) and real(precision) in DTYPES and slow
