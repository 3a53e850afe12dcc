"""Accelerators the planner knows: dense bf16 peak, memory, and where each number comes from.

Peaks are *dense* bf16 tensor-core rates (no 2:4 sparsity), the figure an MFU is quoted
against (PaLM App. B; nanoGPT's 312e12 for A100; torchtitan's table of peaks). Memory is the
datasheet capacity in decimal GB; the usable part is a little lower, which the memory model's
runtime reserve covers.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from gptlab.errors import UserError

GB = 1e9


# An 8-GPU NVLink/NVSwitch node: tensor parallelism stays inside it (Megatron's and torchtitan's practice).
NVLINK_NODE = (1, 2, 4, 8)


@dataclass(frozen=True)
class Accelerator:
    name: str
    peak_bf16: float        # dense bf16 FLOP/s
    memory: float           # bytes
    tp_sizes: tuple[int, ...]  # tensor-parallel group sizes that stay on the fast local links
    source: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


GPUS: dict[str, Accelerator] = {g.name: g for g in (
    Accelerator("A100-40G", 312e12, 40 * GB, NVLINK_NODE,
                "NVIDIA A100 datasheet: BF16 tensor core 312 TFLOPS dense (624 with sparsity), 40GB HBM2"),
    Accelerator("A100-80G", 312e12, 80 * GB, NVLINK_NODE,
                "NVIDIA A100 datasheet: BF16 tensor core 312 TFLOPS dense, 80GB HBM2e (OPT-175B's GPU)"),
    Accelerator("H100-SXM", 989e12, 80 * GB, NVLINK_NODE,
                "NVIDIA H100 datasheet: BF16 tensor core 1,979 TFLOPS with sparsity = 989 dense, 80GB HBM3"),
    Accelerator("H200", 989e12, 141 * GB, NVLINK_NODE,
                "NVIDIA H200 datasheet: same tensor cores as H100 SXM (989 TFLOPS dense bf16), 141GB HBM3e"),
    Accelerator("B200", 2.25e15, 180 * GB, NVLINK_NODE,
                "NVIDIA HGX B200 datasheet: BF16 4.5 PFLOPS with sparsity = 2.25 dense, 180GB HBM3e"),
    # TPU tensor parallelism runs over the ICI torus, not a host's PCIe, so it may be wider than
    # a host's 4 chips and need not be a power of two: PaLM split each layer 12 ways.
    Accelerator("TPU-v4", 275e12, 32 * 2**30, (1, 2, 4, 6, 8, 12, 16),
                "Google Cloud TPU v4 docs: 275 TFLOPS bf16 peak per chip, 32 GiB HBM2 (PaLM's chip)"),
)}

ALIASES = {
    "a100-40gb": "A100-40G", "a100-80gb": "A100-80G", "a100-40": "A100-40G",
    "a100-80": "A100-80G", "h100": "H100-SXM", "h100-80g": "H100-SXM", "h100sxm": "H100-SXM",
    "tpu-v4": "TPU-v4", "tpuv4": "TPU-v4", "v4": "TPU-v4", "tpu": "TPU-v4",
}


def find_gpu(name: str) -> Accelerator:
    """The accelerator called ``name`` (case-insensitive, a few common spellings accepted)."""
    key = str(name).strip().lower().replace("_", "-").replace(" ", "-")
    for g in GPUS.values():
        if g.name.lower() == key:
            return g
    if key in ALIASES:
        return GPUS[ALIASES[key]]
    raise UserError(f"--gpu: unknown accelerator {name!r} (known: {', '.join(GPUS)})")
