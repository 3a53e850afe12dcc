"""Memory per GPU of a training run, under DDP, FSDP/ZeRO-3 and tensor × pipeline × data layouts.

Per parameter (mixed precision, ZeRO paper's accounting): bf16 weights 2 B, bf16 gradients 2 B,
and in the optimizer an fp32 master copy 4 B plus AdamW's two fp32 moments 8 B: 16 B. With fp32
weights (gptlab's trainer today: fp32 parameters under bf16 autocast) it is 4 + 4 + 8: the
same 16 B. Adafactor in its paper's default form keeps no first moment and factors the
second moment of an r×c matrix into r + c numbers; PaLM's Adafactor (and gptlab's) is
unfactored with β1 momentum, so it costs what AdamW does.

Activations per layer follow Korthikanti et al. 2022 ("Reducing Activation Recomputation in
Large Transformer Models", §4): s·b·h·(34 + 5·a·s/h) bytes in 16-bit for a GPT block, with
sequence parallelism dividing it all by t. Full recomputation keeps only each layer's input,
2·s·b·h bytes, plus one layer's activations while it is recomputed. The terms are written out
per tensor so that they follow the model: no dropout masks when dropout is 0, a fused
attention kernel (SDPA/flash, what gptlab calls) stores no s×s scores, a gated MLP stores
four hidden-width tensors, PaLM's parallel block shares one norm.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from gptlab.plan.gpus import Accelerator
from gptlab.plan.shape import Shape, Weight

Optimizer = Literal["adamw", "adafactor", "adafactor-palm"]
OPTIMIZERS = ("adamw", "adafactor", "adafactor-palm")
Shard = Literal["ddp", "zero1", "fsdp"]

# CUDA context, NCCL communicators and allocator fragmentation: what a process holds before
# its first tensor, and what the caching allocator cannot hand back. A round 2 GB.
RUNTIME_RESERVE = 2e9
# Logits per token and vocabulary entry: the 16-bit logits, the fp32 copy the loss takes, and
# that copy's gradient.
LOGIT_BYTES = 2 + 4 + 4


@dataclass(frozen=True)
class Settings:
    optimizer: Optimizer = "adamw"
    weights: Literal["bf16", "fp32"] = "bf16"
    act_bytes: int = 2                  # 2 under bf16/fp16 compute, 4 in fp32
    micro_batch: int = 1                # sequences per GPU per forward
    global_batch: int = 1024            # sequences per optimizer step
    flash: bool = True                  # fused attention: no s×s score tensors kept


@dataclass(frozen=True)
class Layout:
    tp: int
    pp: int
    dp: int
    shard: Shard     # ddp: nothing sharded; zero1: optimizer state over dp; fsdp: params, grads, state

    @property
    def n_gpus(self) -> int:
        return self.tp * self.pp * self.dp

    @property
    def name(self) -> str:
        if self.tp == self.pp == 1:
            return {"ddp": f"DDP×{self.dp}", "zero1": f"DDP×{self.dp} ZeRO-1", "fsdp": f"FSDP×{self.dp}"}[self.shard]
        parts = [f"TP{self.tp}"] if self.tp > 1 else []
        parts += [f"PP{self.pp}"] if self.pp > 1 else []
        parts.append({"ddp": f"DP{self.dp}", "zero1": f"DP{self.dp}", "fsdp": f"FSDP{self.dp}"}[self.shard])
        return "×".join(parts) + (" ZeRO-1" if self.shard == "zero1" else "")


@dataclass
class Estimate:
    layout: str
    tp: int
    pp: int
    dp: int
    shard: str
    params_per_gpu: int
    params: float                       # bytes of weights held
    grads: float
    optimizer: float
    activations: float                  # without activation checkpointing
    activations_checkpointed: float     # with full recompute
    buffers: float
    buffers_detail: dict[str, float]
    total: float
    total_checkpointed: float
    fits: bool
    fits_checkpointed: bool
    microbatches: float                 # per replica per step (gradient accumulation / pipeline fill)
    pipeline_bubble: float              # 1F1B idle share, (p - 1) / microbatches
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return "yes" if self.fits else "with AC" if self.fits_checkpointed else "no"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}


# --------------------------------------------------------------------------- weights on one GPU

def stage_tensors(s: Shape, tp: int, pp: int) -> list[tuple[int, ...]]:
    """Local shapes of every tensor on the fullest GPU of a (tp, pp) layout.

    Layers split evenly over pipeline stages, the odd ones on the fullest stage. The first stage
    also holds the token table (and positions), the last the final norm and the head; a tied
    table lives on both end stages (Megatron keeps a copy and all-reduces its gradient)."""
    def local(ws: list[Weight]) -> list[tuple[int, ...]]:
        return [w.local_shape(tp, s.n_kv_head) for w in ws]

    per_layer = local(s.layer_weights())
    layers = math.ceil(s.n_layer / pp) * per_layer
    first, last = local(s.first_stage_weights()), local(s.last_stage_weights())
    if pp == 1:
        return layers + first + last
    if s.tied:
        last = last + local(s.first_stage_weights()[:1])
    extra = max(first, last, key=lambda ts: sum(math.prod(t) for t in ts))
    return layers + extra


def optimizer_bytes_per_param(settings: Settings) -> float:
    """State bytes per parameter besides the weights themselves (factored Adafactor aside)."""
    master = 4.0 if settings.weights == "bf16" else 0.0
    return master + (8.0 if settings.optimizer in ("adamw", "adafactor-palm") else 0.0)


def factored_state(tensors: list[tuple[int, ...]]) -> int:
    """Adafactor's second moment: rows + columns per matrix, the full size for vectors."""
    return sum(sum(t) if len(t) == 2 else math.prod(t) for t in tensors)


# --------------------------------------------------------------------------- activations

def layer_activation_bytes(s: Shape, micro_batch: int, tp: int, settings: Settings) -> float:
    """Bytes one layer keeps for its backward, on one tensor-parallel rank (sequence parallel).

    For GPT-3's block with dropout and unfused attention this is s·b·h·(34 + 5·a·s/h)."""
    sb = s.seq * micro_batch
    h, hq, f, a = s.d_model, s.n_head * s.head_dim, s.ffn, s.n_head
    w = settings.act_bytes                   # bytes of one 16-bit (or fp32) activation
    mask = 1 if s.dropout > 0 else 0         # a dropout mask is one byte per element
    norms = s.norms_per_layer * w * sb * h   # each norm keeps its input
    attn = (w * sb * h                       # input of the q/k/v projection
            + 3 * w * sb * hq                # q, k, v for the attention core
            + w * sb * hq                    # input of the output projection
            + mask * sb * h)                 # dropout after the projection
    if settings.flash:
        attn += 4 * sb * a                   # the fused kernel keeps one fp32 logsumexp per row
    else:
        # softmax output (w·a·s²·b); with dropout also its mask (1) and the dropped copy (w)
        attn += (w + (1 + w) * mask) * a * s.seq * sb
    # The activation's input and output; a gated MLP keeps gate, up, act(gate) and their product.
    hidden = (4 if s.gated else 2) * w * sb * f
    mlp = (0 if s.norms_per_layer == 1 else w * sb * h) + hidden + mask * sb * h
    return (norms + attn + mlp) / tp


def checkpointed_layer_bytes(s: Shape, micro_batch: int, tp: int, settings: Settings) -> float:
    """With full recompute a layer keeps only its input: 2·s·b·h bytes (sequence-parallel: / t)."""
    return settings.act_bytes * s.seq * micro_batch * s.d_model / tp


# --------------------------------------------------------------------------- one layout

def estimate(s: Shape, layout: Layout, gpu: Accelerator, settings: Settings) -> Estimate:
    t, p, d = layout.tp, layout.pp, layout.dp
    tensors = stage_tensors(s, t, p)
    n_local = sum(math.prod(x) for x in tensors)
    wb = 2.0 if settings.weights == "bf16" else 4.0
    shard_w = d if layout.shard == "fsdp" else 1
    shard_opt = d if layout.shard in ("fsdp", "zero1") else 1

    params = n_local * wb / shard_w
    grads = n_local * wb / shard_w
    opt = n_local * optimizer_bytes_per_param(settings)
    if settings.optimizer == "adafactor":
        opt += 4.0 * factored_state(tensors)
    opt /= shard_opt

    b = settings.micro_batch
    microbatches = settings.global_batch / (d * b)
    in_flight = max(1, min(p, math.floor(microbatches)))   # 1F1B: the first stage holds p micro-batches
    layers = math.ceil(s.n_layer / p)
    one_layer = layer_activation_bytes(s, b, t, settings)
    acts = layers * in_flight * one_layer
    acts_ckpt = layers * in_flight * checkpointed_layer_bytes(s, b, t, settings) + one_layer

    layer_local = sum(math.prod(w.local_shape(t, s.n_kv_head)) for w in s.layer_weights())
    detail = {"runtime_reserve": RUNTIME_RESERVE,
              "logits": LOGIT_BYTES * s.seq * b * math.ceil(s.vocab / t)}
    if layout.shard == "ddp" and d > 1:
        detail["ddp_buckets"] = grads       # torch DDP copies gradients into its buckets by default
    if layout.shard == "fsdp" and d > 1:
        # One layer gathered for compute, the next prefetched, and one layer's full gradient
        # before its reduce-scatter.
        detail["fsdp_gather"] = 2 * layer_local * wb + layer_local * wb
    buffers = sum(detail.values())
    base = params + grads + opt + buffers
    total, total_ckpt = base + acts, base + acts_ckpt

    notes = []
    if microbatches < 1 or abs(microbatches - round(microbatches)) > 1e-9:
        notes.append(f"global batch {settings.global_batch} is not a multiple of dp×micro-batch = {d * b}")
    if s.n_layer % p:
        notes.append(f"{s.n_layer} layers do not split evenly over {p} pipeline stages")
    if p > 1 and microbatches < p:
        notes.append(f"{microbatches:g} micro-batches cannot fill {p} pipeline stages")
    return Estimate(
        layout=layout.name, tp=t, pp=p, dp=d, shard=layout.shard, params_per_gpu=n_local,
        params=params, grads=grads, optimizer=opt, activations=acts, activations_checkpointed=acts_ckpt,
        buffers=buffers, buffers_detail=detail, total=total, total_checkpointed=total_ckpt,
        fits=total <= gpu.memory, fits_checkpointed=total_ckpt <= gpu.memory,
        microbatches=microbatches, pipeline_bubble=(p - 1) / microbatches if p > 1 else 0.0, notes=notes,
    )


# --------------------------------------------------------------------------- every layout

def _divisors(n: int) -> list[int]:
    return [k for k in range(1, n + 1) if n % k == 0]


def candidate_layouts(s: Shape, n_gpus: int, gpu: Accelerator) -> list[Layout]:
    """DDP and FSDP over every GPU, then tp × pp × dp for every tp the accelerator's links allow
    (dividing the heads) and every pipeline depth up to one layer per stage, each with plain
    data parallelism, ZeRO-1 (Megatron's distributed optimizer) or FSDP over the data axis."""
    out = [Layout(1, 1, n_gpus, "ddp"), Layout(1, 1, n_gpus, "fsdp")]
    for t in gpu.tp_sizes:
        if n_gpus % t or s.n_head % t:
            continue
        for p in _divisors(n_gpus // t):
            if p > s.n_layer:
                break
            d = n_gpus // (t * p)
            for shard in ("ddp", "zero1", "fsdp"):
                lay = Layout(t, p, d, shard)
                if lay not in out and not (d == 1 and shard != "ddp"):
                    out.append(lay)
    return out


def rank(e: Estimate) -> tuple:
    """Order among layouts that fit: no recompute needed first, then those the global batch divides
    evenly, then the least model parallelism (less communication, no bubble), then the lighter
    data-parallel sharding, then memory."""
    return (not e.fits, bool(e.notes), e.tp * e.pp, {"ddp": 0, "zero1": 1, "fsdp": 2}[e.shard], e.pp,
            e.total if e.fits else e.total_checkpointed)


def plan_memory(s: Shape, n_gpus: int, gpu: Accelerator, settings: Settings) -> list[Estimate]:
    """Every candidate layout's estimate: DDP and FSDP first, then the fitting ones best first,
    then the rest."""
    est = [estimate(s, lay, gpu, settings) for lay in candidate_layouts(s, n_gpus, gpu)]
    head, rest = est[:2], est[2:]
    fitting = sorted((e for e in rest if e.fits_checkpointed), key=rank)
    return head + fitting + [e for e in rest if not e.fits_checkpointed]
