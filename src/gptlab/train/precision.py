"""Device and precision resolution: bf16 autocast wherever the hardware has it."""
from __future__ import annotations

import contextlib

import torch


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device=cuda but no CUDA device is available")
    return torch.device(name)


def cpu_has_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(name: str, device: torch.device) -> str:
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_bf16() else "fp32"


def autocast(precision: str, device: torch.device):
    """Mixed precision: matmuls in bf16/fp16, master weights and the loss in fp32."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    if precision == "fp16":
        return torch.autocast(device_type=device.type, dtype=torch.float16)
    return contextlib.nullcontext()


def slow_precision_warning(precision: str, device: torch.device) -> str | None:
    """CPUs without AVX-512 BF16 (and all CPUs for fp16) run these matmuls ~100x slower."""
    if device.type == "cpu" and (precision == "fp16" or (precision == "bf16" and not cpu_has_bf16())):
        return (f"train.precision={precision} on a CPU without a fast {precision} path is very slow; "
                "train.precision=auto picks the fast one")
    return None
