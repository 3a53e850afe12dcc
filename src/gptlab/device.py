"""Device and precision choice for every stage that runs a model (train, eval, advise).

bf16 autocast wherever the hardware computes it fast; fp32 elsewhere; fp16 with a loss scale
only when asked for (it is what OPT trained with). Also the GPU determinism switches and the
peak FLOP/s table used for MFU."""
from __future__ import annotations

import contextlib
import os

import torch

from gptlab.errors import UserError


def resolve_device(name: str, key: str = "train.device") -> torch.device:
    """``auto`` → CUDA when present, else CPU. ``key`` names the setting in the error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"{key}={name}: no CUDA device is available here (use cpu or auto)")
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


PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0, "L4": 121.0}


def peak_flops(peak_tflops: float, device: torch.device) -> float | None:
    """Dense bf16 peak of one device, for MFU: the given figure, else the table (known GPUs).
    CPUs have no table entry: set train.peak_tflops."""
    if peak_tflops:
        return peak_tflops * 1e12
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for k, v in PEAK_TFLOPS.items():
            if k in name:
                return v * 1e12
    return None


def set_determinism(on: bool) -> None:
    """The GPU switches for bitwise-reproducible training, behind one flag (train.deterministic).
    CPU training here is already deterministic for a fixed thread count."""
    if not on:
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
