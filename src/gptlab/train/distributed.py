"""Data and tensor parallelism under torchrun: DDP or FSDP2 (``fully_shard``), and tensor
parallelism through DTensor (``train.tensor_parallel=N``); gloo on CPU, NCCL on GPU.

Outside torchrun everything here is a no-op, so one code path serves a laptop and a cluster.
Every rank computes the same global batch indices (a pure function of the step) and each
data-parallel rank takes its own slice of them; DDP/FSDP average gradients, so the update
equals the single-process update on the whole global batch, up to floating-point summation
order. Under tensor parallelism the ranks form a 2-D mesh (dp, tp), tp innermost as torchtitan
lays it out (the ranks of one TP group are neighbours, so on a GPU node they share NVLink):
the ranks of one TP group see the same rows and split every matmul between them.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor, Replicate
from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module
from torch.nn.parallel import DistributedDataParallel as DDP

from gptlab.errors import ConfigError
from gptlab.model.gpt import MLP, Attention, qkv_sizes


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    mode: str = "none"          # none | ddp | fsdp
    tp: int = 1                 # tensor-parallel degree: ranks that split each matmul
    mesh: DeviceMesh | None = None   # (dp, tp) when tp > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def dp_rank(self) -> int:
        """Which slice of the global batch this rank takes (one per TP group)."""
        return self.rank // self.tp

    @property
    def dp_world(self) -> int:
        return self.world // self.tp

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


def setup(mode: str, tensor_parallel: int = 1) -> Dist:
    """Join the torchrun process group if launched by torchrun; otherwise a single process
    (where ``tensor_parallel`` is ignored, as ``mode`` is)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    tp = tensor_parallel
    if world % tp:
        raise ConfigError(f"train.tensor_parallel: {tp} does not divide the {world} ranks")
    if tp > 1 and world > tp and mode != "fsdp":
        raise ConfigError("train.tensor_parallel: with more than one TP group the data-parallel "
                          "dimension needs train.distributed=fsdp (FSDP2 composes with DTensor; DDP does not)")
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
    mesh = None
    if tp > 1:
        kind = "cuda" if torch.cuda.is_available() else "cpu"
        mesh = init_device_mesh(kind, (world // tp, tp), mesh_dim_names=("dp", "tp"))
    return Dist(rank=dist.get_rank(), world=world, local_rank=local, mode=mode, tp=tp, mesh=mesh)


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
    if d.tp > 1:
        apply_tensor_parallel(model, d.mesh["tp"])
        if d.dp_world > 1:      # FSDP2 over the dp dimension: parameters become 2-D DTensors
            for block in blocks_of(model):
                fully_shard(block, mesh=d.mesh["dp"])
            fully_shard(model, mesh=d.mesh["dp"])
        return model
    if d.mode == "fsdp":
        for block in blocks_of(model):
            fully_shard(block)
        fully_shard(model)
        return model
    if d.mode == "ddp":
        return DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    return model


def full_state(model: nn.Module, opt: torch.optim.Optimizer, d: Dist):
    """Full (unsharded) model and optimizer state on CPU, gathered on every rank (FSDP, TP),
    in the same layout a single process would save: whatever the layout a run trained with,
    its checkpoints load into any other."""
    model_sd, optim_sd = get_state_dict(model, opt, options=StateDictOptions(full_state_dict=True,
                                                                             cpu_offload=True))
    if _is_tensor_parallel(model):
        model_sd, optim_sd = _fuse_tp_qkv(model_sd), _fuse_tp_optim(optim_sd)
    return model_sd, optim_sd


def load_full_state(model: nn.Module, opt: torch.optim.Optimizer, model_sd: dict, optim_sd: dict) -> None:
    if _is_tensor_parallel(model):
        sizes = qkv_sizes(model.config)
        model_sd, optim_sd = _split_tp_qkv(model_sd, sizes), _split_tp_optim(optim_sd, sizes)
    set_state_dict(model, opt, model_state_dict=model_sd, optim_state_dict=optim_sd,
                   options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=False))


def clip_grad_norm(model: nn.Module, max_norm: float, d: Dist) -> torch.Tensor:
    """torch's clip_grad_norm_, and under TP the same maths over gradients that are partly
    DTensors (on the tp or the (dp, tp) mesh) and partly plain tensors (norm gains, replicated
    k/v), which torch's version cannot mix: each squared norm is summed over its shards first."""
    if d.tp == 1:
        return torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    total = torch.zeros((), dtype=torch.float32)
    for g in grads:
        sq = g.float().pow(2).sum()
        total += (sq.full_tensor() if isinstance(sq, DTensor) else sq).cpu()
    total = total.sqrt()
    coef = min(1.0, max_norm / (total.item() + 1e-6))
    if coef < 1.0:
        for g in grads:
            g.mul_(coef)
    return total


def cleanup(d: Dist) -> None:
    if d.world > 1 and dist.is_initialized():
        dist.destroy_process_group()


# ----------------------------------------------------------------------------- tensor parallelism
#
# Megatron's split, through DTensor: in each block the first matmuls are column-parallel (q, k,
# v, MLP up/gate: each rank computes a slice of the heads / hidden units from the full input)
# and the second row-parallel (o_proj, down_proj: each rank multiplies its slice, one all-reduce
# sums them), so a block costs two all-reduces forward and two backward. The token embedding is
# split by vocabulary rows; the (tied) output head by the same rows, so a tied pair stays one
# sharded tensor, and its logits are all-gathered for the loss.


class _ReduceGrad(torch.autograd.Function):
    """Identity forward, gradient summed over the TP group backward: for a projection every
    rank holds whole (multi-query k/v) but each rank uses for its own query heads only."""

    @staticmethod
    def forward(ctx, x, group):
        ctx.group = group
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


class SplitQKV(nn.Module):
    """``qkv_proj`` under TP: q, k and v as three projections, each sharded by heads.

    A column split of the fused [q; k; v] matrix would hand rank 0 all of q and rank 1 k and v;
    three matrices split separately give every rank its own q heads and the k/v heads they read.
    When there are fewer k/v heads than ranks (multi-query), k and v stay whole on every rank and
    each rank takes the one head its queries share. The output is the local [q; k; v] rows, so
    Attention.forward runs unchanged on the local head counts."""

    def __init__(self, fused: nn.Linear, sizes: list[int], kv_cols: tuple[int, int] | None, group):
        super().__init__()
        bias = fused.bias is not None
        weights = fused.weight.detach().split(sizes)
        biases = fused.bias.detach().split(sizes) if bias else (None,) * 3
        for name, w, b in zip("qkv", weights, biases):
            lin = nn.Linear(w.shape[1], w.shape[0], bias=bias, device=w.device, dtype=w.dtype)
            with torch.no_grad():
                lin.weight.copy_(w)
                if bias:
                    lin.bias.copy_(b)
            setattr(self, name, lin)
        self.kv_cols, self.group = kv_cols, group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.q(x), self.k(x), self.v(x)
        if self.kv_cols is not None:
            a, b = self.kv_cols
            k = _ReduceGrad.apply(k, self.group)[..., a:b]
            v = _ReduceGrad.apply(v, self.group)[..., a:b]
        return torch.cat([q, k, v], dim=-1)


def _is_tensor_parallel(model: nn.Module) -> bool:
    return any(isinstance(m, SplitQKV) for m in model.modules())


def apply_tensor_parallel(model: nn.Module, tp_mesh: DeviceMesh) -> None:
    """Shard the decoder over ``tp_mesh`` in place (a GPT, before any data-parallel wrapper)."""
    cfg = model.config
    tp, rank = tp_mesh.size(), tp_mesh.get_local_rank()
    n_kv = cfg.n_kv_head or cfg.n_head
    if cfg.n_head % tp:
        raise ConfigError(f"train.tensor_parallel: {tp} does not divide model.n_head={cfg.n_head}")
    if n_kv % tp and tp % n_kv:
        raise ConfigError(f"train.tensor_parallel: {tp} and model.n_kv_head={n_kv} must divide one another")
    if cfg.dropout:
        # Each rank would draw its own dropout mask for the replicated activations.
        raise ConfigError("train.tensor_parallel: needs model.dropout=0")
    sizes, hd = qkv_sizes(cfg), cfg.head_dim
    shard_kv = n_kv % tp == 0
    local_kv = n_kv // tp if shard_kv else 1
    # Multi-query: ranks r·n_kv/tp share k/v head r·n_kv // tp (query heads are contiguous per rank).
    kv_cols = None if shard_kv else ((rank * n_kv // tp) * hd, (rank * n_kv // tp + 1) * hd)
    for attn in [m for m in model.modules() if isinstance(m, Attention)]:
        split = SplitQKV(attn.qkv_proj, sizes, kv_cols, tp_mesh.get_group())
        plan = {"q": ColwiseParallel()}
        if shard_kv:
            plan |= {"k": ColwiseParallel(), "v": ColwiseParallel()}
        attn.qkv_proj = parallelize_module(split, tp_mesh, plan)
        parallelize_module(attn, tp_mesh, {"o_proj": RowwiseParallel()})
        attn.n_head, attn.n_kv_head = cfg.n_head // tp, local_kv
        attn.sizes = [attn.n_head * hd, local_kv * hd, local_kv * hd]
    for mlp in [m for m in model.modules() if isinstance(m, MLP)]:
        plan = {"up_proj": ColwiseParallel(), "down_proj": RowwiseParallel()}
        if hasattr(mlp, "gate_proj"):
            plan["gate_proj"] = ColwiseParallel()
        parallelize_module(mlp, tp_mesh, plan)
    parallelize_module(model, tp_mesh, {
        "embed_tokens": RowwiseParallel(input_layouts=Replicate()),
        "lm_head": ColwiseParallel(output_layouts=Replicate())})
    if cfg.tie_embeddings:
        # Both are [vocab, d] split by vocabulary rows: one DTensor can serve as both again.
        model.lm_head.weight = model.embed_tokens.weight
    if hasattr(model, "alibi_slopes"):
        # ALiBi's per-head slopes: this rank's heads only (a derived, non-persistent buffer).
        h = cfg.n_head // tp
        model.alibi_slopes = model.alibi_slopes[rank * h:(rank + 1) * h].clone()
        model._masks = type(model._masks)()


# Checkpoints keep the fused layout: the q/k/v of SplitQKV are cat'ed back on save, split on load.
_SPLIT = re.compile(r"(.*\.qkv_proj\.)q\.(weight|bias)$")
_FUSED = re.compile(r"(.*\.qkv_proj\.)(weight|bias)$")


def _fuse_names(names: list[str]) -> list[str]:
    out = []
    for n in names:
        m = _SPLIT.match(n)
        if m:
            out.append(f"{m[1]}{m[2]}")
        elif not re.match(r".*\.qkv_proj\.[kv]\.(weight|bias)$", n):
            out.append(n)
    return out


def _split_names(names: list[str]) -> list[str]:
    out = []
    for n in names:
        m = _FUSED.match(n)
        out += [f"{m[1]}{p}.{m[2]}" for p in "qkv"] if m else [n]
    return out


def _fuse_tp_qkv(sd: dict) -> dict:
    out = dict(sd)
    for key in list(sd):
        m = _SPLIT.match(key)
        if m:
            parts = [out.pop(f"{m[1]}{p}.{m[2]}") for p in "qkv"]
            out[f"{m[1]}{m[2]}"] = torch.cat(parts)
    return out


def _split_tp_qkv(sd: dict, sizes: list[int]) -> dict:
    out = dict(sd)
    for key in list(sd):
        m = _FUSED.match(key)
        if m:
            for p, t in zip("qkv", out.pop(key).split(sizes)):
                out[f"{m[1]}{p}.{m[2]}"] = t.clone()
    return out


def _fuse_tp_optim(osd: dict) -> dict:
    if not osd:             # ranks other than 0: cpu_offload keeps the full state on rank 0 only
        return osd
    state = dict(osd["state"])
    for key in list(state):
        m = _SPLIT.match(key)
        if m:
            parts = [state.pop(f"{m[1]}{p}.{m[2]}") for p in "qkv"]
            state[f"{m[1]}{m[2]}"] = {k: torch.cat([s[k] for s in parts]) if torch.is_tensor(v) and v.dim() else v
                                      for k, v in parts[0].items()}
    groups = [{**g, "params": _fuse_names(g["params"])} for g in osd["param_groups"]]
    return {"state": state, "param_groups": groups}


def _split_tp_optim(osd: dict | None, sizes: list[int]) -> dict | None:
    if not osd:
        return osd
    state = dict(osd["state"])
    for key in list(state):
        m = _FUSED.match(key)
        if m:
            fused = state.pop(key)
            for i, p in enumerate("qkv"):
                # Every tensor is cloned, the 0-dim `step` counter too: AdamW increments it in place,
                # so three projections sharing one counter would advance it three times a step.
                state[f"{m[1]}{p}.{m[2]}"] = {k: (v.split(sizes)[i] if v.dim() else v).clone()
                                              if torch.is_tensor(v) else v for k, v in fused.items()}
    groups = [{**g, "params": _split_names(g["params"])} for g in osd["param_groups"]]
    return {"state": state, "param_groups": groups}
