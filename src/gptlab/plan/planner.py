"""One plan: the model's shape, its compute, time and cost, tokens, and memory per GPU per layout.

``make_plan`` takes resolved inputs (no flags, no files) and returns a :class:`Plan`, which
prints as tables (``render``) and as JSON (``Plan.to_json``). ``gptlab.plan.command`` turns
the command line into those inputs.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from gptlab.plan.compute import Compute, Schedule, Tokens, compute, human, schedule, token_plan
from gptlab.plan.gpus import Accelerator
from gptlab.plan.memory import Estimate, Settings, plan_memory, rank
from gptlab.plan.shape import Shape

GB = 1e9
SHOWN_LAYOUTS = 6   # fitting tp × pp × dp layouts printed after DDP and FSDP (the JSON has all)


@dataclass(frozen=True)
class Inputs:
    model_name: str
    shape: Shape
    gpu: Accelerator
    n_gpus: int
    tokens: float
    mfu: float
    mfu_source: str
    goodput: float = 1.0
    usd_per_gpu_hour: float | None = None
    corpus_tokens: float | None = None
    corpus_source: str | None = None
    settings: Settings = field(default_factory=Settings)
    published: dict[str, Any] | None = None
    notes: tuple[str, ...] = ()


@dataclass
class Plan:
    inputs: Inputs
    compute: Compute
    schedule: Schedule
    tokens: Tokens
    layouts: list[Estimate]
    recommended: str | None
    recompute: bool
    notes: list[str]

    @property
    def fitting(self) -> list[str]:
        return [e.layout for e in self.layouts if e.fits or e.fits_checkpointed]

    def to_json(self) -> dict[str, Any]:
        i = self.inputs
        return {
            "model": {"name": i.model_name, **asdict(i.shape), "n_params": i.shape.n_params,
                      "n_matmul_params": i.shape.n_matmul_params},
            "gpu": i.gpu.to_json(),
            "n_gpus": i.n_gpus,
            "settings": asdict(i.settings),
            "compute": self.compute.to_json(),
            "schedule": self.schedule.to_json(),
            "tokens": self.tokens.to_json(),
            "memory": {"recommended": self.recommended, "activation_checkpointing": self.recompute,
                       "fitting": self.fitting, "layouts": [e.to_json() for e in self.layouts]},
            "published": i.published,
            "notes": self.notes,
        }


def make_plan(i: Inputs) -> Plan:
    layouts = plan_memory(i.shape, i.n_gpus, i.gpu, i.settings)
    fitting = [e for e in layouts if e.fits or e.fits_checkpointed]
    best = min(fitting, key=rank) if fitting else None
    recompute = best is not None and not best.fits
    comp = compute(i.shape, i.tokens, recompute)
    sched = schedule(comp, i.gpu, i.n_gpus, i.mfu, i.mfu_source, i.goodput, i.usd_per_gpu_hour, recompute)
    toks = token_plan(i.tokens, i.settings.global_batch, i.shape.seq, i.corpus_tokens, i.corpus_source)
    notes = list(i.notes)
    if best is not None:
        notes += [f"{best.layout}: {n}" for n in best.notes]
    if best is None:
        notes.append(f"no layout fits {i.n_gpus} × {i.gpu.name} ({i.gpu.memory / GB:.0f} GB), even with "
                     f"activation checkpointing: add GPUs, shrink the micro-batch, or pick a larger GPU")
    if i.goodput == 1.0:
        notes.append("goodput 1: no time lost to restarts (OPT-175B kept under half, see docs/scale.md); "
                     "set --goodput")
    if toks.epochs is not None and toks.epochs > 1:
        notes.append(f"{toks.epochs:.2f} epochs: the corpus repeats")
    return Plan(i, comp, sched, toks, layouts, best.layout if best else None, recompute, notes)


# --------------------------------------------------------------------------- tables

def _gb(x: float) -> str:
    g = x / GB
    return f"{g:.1f}" if g < 100 else f"{g:,.0f}"


def _kv_table(title: str, rows: list[tuple[str, str]]) -> Table:
    t = Table(title=title, show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    for k, v in rows:
        t.add_row(k, v)
    return t


def render(plan: Plan, console: Console | None = None) -> None:
    """Print the plan as tables. Off a terminal (a pipe, a file) lines are up to 132 wide, so
    that the memory table is never cut."""
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=132)
    i, c, s, tk = plan.inputs, plan.compute, plan.schedule, plan.tokens
    sh = i.shape
    console.print(_kv_table(f"Model: {i.model_name}", [
        ("parameters", f"{human(sh.n_params)} ({human(sh.n_matmul_params)} in matmuls)"),
        ("shape", f"{sh.n_layer} layers · d {sh.d_model} · {sh.n_head} heads × {sh.head_dim}"
                  f" ({sh.n_kv_head} kv) · ffn {sh.ffn}{' gated' if sh.gated else ''}"),
        ("sequence · vocab", f"{sh.seq} · {sh.vocab}"),
    ]))
    console.print(_kv_table("Compute", [
        ("FLOPs per token", f"{human(c.model_flops_per_token)} = 6N {human(c.flops_per_token_6n)} + "
                            f"attention {human(c.flops_per_token_attention)}"),
        ("model FLOPs", f"{c.model_flops:.3e} (6N·D alone: {c.model_flops_6n_only:.3e})"),
        ("hardware FLOPs", f"{c.hardware_flops:.3e}" + (" with recompute" if plan.recompute else "")
         + f" (full recompute, 8N + 16LHQT: {c.hardware_flops_recompute:.3e})"),
    ]))
    cost = "-" if s.cost_usd is None else f"${s.cost_usd:,.0f} at ${s.usd_per_gpu_hour:g}/GPU-hour"
    console.print(_kv_table(f"Time on {s.n_gpus} × {s.gpu}", [
        ("peak per GPU", f"{s.peak_flops_per_gpu / 1e12:g} TFLOP/s dense bf16"),
        ("MFU", f"{s.mfu:.1%} ({s.mfu_source})" + (f"; HFU {s.hfu:.1%} with recompute" if plan.recompute else "")),
        ("throughput", f"{s.model_flops_per_s / s.n_gpus / 1e12:.0f} TFLOP/s per GPU · "
                       f"{human(s.tokens_per_s)} tokens/s"),
        ("compute days", f"{s.compute_days:,.1f}"),
        ("wall days", f"{s.wall_days:,.1f} at goodput {s.goodput:g}"),
        ("GPU-hours", f"{s.gpu_hours:,.0f}"),
        ("cost", cost),
    ]))
    epochs = "-" if tk.epochs is None else f"{tk.epochs:.2f} over {human(tk.corpus_tokens)} ({tk.corpus_source})"
    console.print(_kv_table("Tokens", [
        ("tokens", human(tk.tokens)),
        ("batch", f"{tk.batch_sequences} × {tk.seq} = {human(tk.batch_tokens)} tokens · {tk.steps:,.0f} steps"),
        ("epochs", epochs),
    ]))
    st = i.settings
    t = Table(title=f"Memory per GPU, GB ({i.gpu.name}: {i.gpu.memory / GB:.0f} GB; {st.optimizer}, "
                    f"{st.weights} weights, micro-batch {st.micro_batch})", title_justify="left")
    t.add_column("layout", no_wrap=True)
    for col in ("params", "grads", "optimizer", "activations", "act. AC", "buffers", "total", "total AC", "fits"):
        t.add_column(col, justify="right", no_wrap=True)
    extra = [e for e in plan.layouts[2:] if e.fits or e.fits_checkpointed][:SHOWN_LAYOUTS]
    for e in plan.layouts[:2] + extra:
        mark = " ←" if e.layout == plan.recommended else ""
        t.add_row(e.layout + mark, _gb(e.params), _gb(e.grads), _gb(e.optimizer), _gb(e.activations),
                  _gb(e.activations_checkpointed), _gb(e.buffers), _gb(e.total), _gb(e.total_checkpointed),
                  e.verdict)
    console.print(t)
    n_fit = len(plan.fitting)
    console.print(f"{n_fit} of {len(plan.layouts)} layouts fit"
                  + (f"; recommended: {plan.recommended}" + (" with activation checkpointing" if plan.recompute else "")
                     if plan.recommended else "") + " (--json lists them all)")
    for n in plan.notes:
        console.print(f"note: {n}")
