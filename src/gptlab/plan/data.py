"""`gptlab plan data`: core-hours per curation step and the Ray cluster for a target wall time.

The figures are per-step throughputs (MB of document text per CPU-second) measured by
``bench/data_throughput.py`` on one machine; a measured default ships beside this module
(``data_throughput.json``, with the machine and the date it was measured on). The model is
deliberately simple, and says so in its output:

- every step sees all the input bytes (an upper bound: filters upstream shrink what later
  steps read, by how much depends on the crawl);
- a step's map half spreads over every core of the cluster (shard tasks, local or Ray);
- a dedup step's reduce runs in one process between segments (as ``gptlab data curate``
  does), so its hours add to the wall time whatever the cluster size;
- cores scale perfectly unless ``--efficiency`` derates them.

Wall hours = Σ map core-hours / (cores · efficiency) + Σ reduce hours, solved for cores.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from rich.table import Table

from gptlab.data.recipe import GLOBAL_STEPS, load_recipe
from gptlab.errors import UserError

DEFAULT_THROUGHPUT = "data_throughput.json"  # package data next to this module


@dataclass
class StepCost:
    name: str
    type: str
    map_core_hours: float
    reduce_hours: float  # serial: one process
    map_rate: float      # MB per core-second
    reduce_rate: float | None
    note: str = ""

    @property
    def core_hours(self) -> float:
        return self.map_core_hours + self.reduce_hours


@dataclass
class DataPlan:
    input_tb: float
    recipe: str
    target_hours: float
    cores_per_node: int
    efficiency: float
    steps: list[StepCost]
    source: dict[str, Any]
    cores: int | None = None
    nodes: int | None = None
    wall_hours: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def map_core_hours(self) -> float:
        return sum(s.map_core_hours for s in self.steps)

    @property
    def serial_hours(self) -> float:
        return sum(s.reduce_hours for s in self.steps)

    @property
    def dominant(self) -> StepCost:
        return max(self.steps, key=lambda s: s.core_hours)

    def to_json(self) -> dict[str, Any]:
        total = sum(s.core_hours for s in self.steps)
        return {
            "input_tb": self.input_tb, "recipe": self.recipe, "target_hours": self.target_hours,
            "cores_per_node": self.cores_per_node, "efficiency": self.efficiency,
            "steps": [{"name": s.name, "type": s.type, "map_core_hours": s.map_core_hours,
                       "reduce_hours": s.reduce_hours, "core_hours": s.core_hours,
                       "share": s.core_hours / total if total else 0.0, "map_mb_per_core_s": s.map_rate,
                       "reduce_mb_per_s": s.reduce_rate, "note": s.note} for s in self.steps],
            "total_core_hours": total, "map_core_hours": self.map_core_hours, "serial_hours": self.serial_hours,
            "dominant_step": self.dominant.name, "cores": self.cores, "nodes": self.nodes,
            "wall_hours": self.wall_hours, "throughput": self.source, "notes": self.notes,
        }


# --------------------------------------------------------------------------- throughput file

def load_throughput(path: str | None) -> tuple[dict[str, Any], str]:
    """The per-step figures (``bench/data_throughput.py --json``): a given file or the shipped one."""
    flag = "--throughput"
    if path is None:
        text, where = (resources.files("gptlab.plan") / DEFAULT_THROUGHPUT).read_text(), f"shipped {DEFAULT_THROUGHPUT}"
    else:
        where = path
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise UserError(f"{flag}: {path}: {e.strerror or e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{flag}: {where} is not JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("steps"), dict):
        raise UserError(f'{flag}: {where} has no "steps" object (write it with bench/data_throughput.py --json)')
    return data, where


def _rate(data: dict, where: str, step_type: str, phase: str) -> float:
    try:
        x = float(data["steps"][step_type][phase]["mb_per_core_s"])
    except (KeyError, TypeError, ValueError):
        measured = ", ".join(sorted(data["steps"])) or "none"
        raise UserError(f"--throughput: {where} has no {phase} figure for step type {step_type!r} "
                        f"(measured: {measured}); rerun bench/data_throughput.py") from None
    if not (math.isfinite(x) and x > 0):
        raise UserError(f"--throughput: {where}: steps.{step_type}.{phase}.mb_per_core_s must be > 0, got {x!r}")
    return x


# --------------------------------------------------------------------------- the plan

def plan_data(input_tb: float, recipe: str, target_hours: float, throughput: str | None = None,
              cores_per_node: int = 32, efficiency: float = 1.0) -> DataPlan:
    data, where = load_throughput(throughput)
    rec = load_recipe(recipe)
    mb = input_tb * 1e6  # 1 TB = 10^6 MB
    steps = []
    for spec in rec.steps:
        map_rate = _rate(data, where, spec.type, "map")
        reduce_rate = _rate(data, where, spec.type, "reduce") if spec.type in GLOBAL_STEPS else None
        note = ""
        if spec.type == "classifier" and not (spec.params.model or spec.params.positives or spec.params.reference != "none"):
            note = "skipped by curate until a reference set is named; planned as if it runs"
        steps.append(StepCost(spec.name, spec.type, mb / map_rate / 3600,
                              mb / reduce_rate / 3600 if reduce_rate else 0.0, map_rate, reduce_rate, note))
    machine = data.get("machine", {})
    source = {"file": where, "date": data.get("date"), "machine": machine,
              "sample": {k: data.get("sample", {}).get(k) for k in ("docs", "mb", "how")}}
    plan = DataPlan(input_tb, rec.name, target_hours, cores_per_node, efficiency, steps, source)
    plan.notes.append("every step is planned on all the input bytes (an upper bound: filters shrink what later "
                      "steps read)")
    sample = data.get("sample", {})
    if sample.get("docs") and sample.get("mb"):
        plan.notes.append(f"rates are per MB at the sample's mean document size ({1000 * sample['mb'] / sample['docs']:.1f} "
                          f"KB); dedup reduces cost per document, so smaller documents make them slower")
    if any(s.reduce_hours for s in steps):
        plan.notes.append("dedup reduces run in one process between segments: their hours add to the wall time "
                          "at any cluster size")
    budget = target_hours - plan.serial_hours
    if budget <= 0:
        plan.notes.append(f"the serial reduces alone take {plan.serial_hours:.1f} h, more than the {target_hours:g} h "
                          f"target: no cluster size meets it")
    else:
        plan.cores = max(1, math.ceil(plan.map_core_hours / (budget * efficiency)))
        plan.nodes = math.ceil(plan.cores / cores_per_node)
        plan.wall_hours = plan.map_core_hours / (plan.cores * efficiency) + plan.serial_hours
    return plan


def render_data_plan(plan: DataPlan, console) -> None:
    """The plan as a table (rich), then the cluster size and the notes."""
    total = sum(s.core_hours for s in plan.steps)
    t = Table(title=f"Data plan: {plan.input_tb:g} TB through recipe '{plan.recipe}'", title_justify="left")
    for col, just in (("step", "left"), ("MB/s/core", "right"), ("map core-h", "right"),
                      ("reduce h (1 process)", "right"), ("share", "right"), ("", "left")):
        t.add_column(col, justify=just)
    dom = plan.dominant
    for s in plan.steps:
        t.add_row(s.name + (" *" if s.note else ""), f"{s.map_rate:.2f}", f"{s.map_core_hours:,.0f}",
                  f"{s.reduce_hours:,.1f}" if s.reduce_rate else "—", f"{100 * s.core_hours / total:.1f} %",
                  "◀ dominates" if s is dom else "")
    t.add_row("total", "", f"{plan.map_core_hours:,.0f}", f"{plan.serial_hours:,.1f}", "100 %", "")
    console.print(t)
    console.print(f"dominant step: {dom.name} ({100 * dom.core_hours / total:.1f} % of {total:,.0f} core-hours)")
    if plan.cores is not None:
        console.print(f"cluster for {plan.target_hours:g} h: {plan.cores:,} cores = {plan.nodes:,} nodes × "
                      f"{plan.cores_per_node} cores (efficiency {plan.efficiency:g}); wall ≈ {plan.wall_hours:.1f} h")
    src = plan.source
    m = src.get("machine") or {}
    console.print(f"throughput: {src['file']}, measured {src.get('date')} on {m.get('cpu', '?')} "
                  f"({m.get('cores', '?')} cores), sample of {src['sample'].get('docs')} docs / "
                  f"{src['sample'].get('mb')} MB")
    for s in plan.steps:
        if s.note:
            console.print(f"* {s.name}: {s.note}")
    for n in plan.notes:
        console.print(f"note: {n}")
