"""Data parallelism under torchrun: DDP or FSDP2 (``fully_shard``), gloo on CPU, NCCL on GPU.

Outside torchrun everything here is a no-op, so one code path serves a laptop and a cluster.
Every rank computes the same global batch indices (a pure function of the step) and takes
its own slice of them; DDP/FSDP average gradients, so the update equals the single-process
update on the whole global batch, up to floating-point summation order.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict
from torch.distributed.fsdp import fully_shard
from torch.nn.parallel import DistributedDataParallel as DDP


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    mode: str = "none"          # none | ddp | fsdp

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def mean(self, value: float) -> float:
        """The mean of a scalar over ranks (for logging)."""
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return t.item() / self.world

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def setup(mode: str) -> Dist:
    """Join the torchrun process group if launched by torchrun; otherwise a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
    return Dist(rank=dist.get_rank(), world=world, local_rank=local, mode=mode)


def device_for(d: Dist, device: torch.device) -> torch.device:
    if device.type == "cuda" and d.world > 1:
        return torch.device("cuda", d.local_rank)
    return device


def blocks_of(model: nn.Module) -> list[nn.Module]:
    """The repeated transformer blocks: the children of the model's first ModuleList."""
    for child in model.children():
        if isinstance(child, nn.ModuleList):
            return list(child)
    return []


def wrap(model: nn.Module, d: Dist, device: torch.device) -> nn.Module:
    if d.mode == "fsdp":
        for block in blocks_of(model):
            fully_shard(block)
        fully_shard(model)
        return model
    if d.mode == "ddp":
        return DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    return model


def full_state(model: nn.Module, opt: torch.optim.Optimizer, d: Dist):
    """Full (unsharded) model and optimizer state on CPU, gathered on every rank (FSDP),
    in the same layout a single process would save."""
    return get_state_dict(model, opt, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_full_state(model: nn.Module, opt: torch.optim.Optimizer, model_sd: dict, optim_sd: dict) -> None:
    set_state_dict(model, opt, model_state_dict=model_sd, optim_state_dict=optim_sd,
                   options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=False))


def cleanup(d: Dist) -> None:
    if d.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
