"""The FLAN-style instruction mixture: many tasks, each through several templates, zero- and few-shot.

As in the Flan Collection (Longpre et al., 2023): every task is rendered through each of a few
templates, zero-shot and with k solved exemplars of the same task; tasks are mixed in
proportion to their size up to a per-task cap (examples-proportional mixing), so one big task
cannot crowd out the others; and a weight per task scales its share. A training step draws a
task by its weight, then one rendered example of that task.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from gptlab.errors import InputError
from gptlab.finetune.data import Row
from gptlab.finetune.templates import INSTRUCTION_TEMPLATES, Template, render


@dataclass
class Mixture:
    tasks: list[str]
    weights: list[float]                                       # one per task, summing to 1
    pools: dict[str, list[tuple[str, str]]] = field(default_factory=dict)   # task → (prompt, target)

    def size(self) -> int:
        return sum(len(p) for p in self.pools.values())


def mixing_weights(counts: dict[str, int], cap: int, task_weights: dict[str, float] | None = None) -> dict[str, float]:
    """Examples-proportional mixing with a cap: min(n, cap) × weight, normalised."""
    raw = {t: min(n, cap) * (task_weights or {}).get(t, 1.0) for t, n in counts.items()}
    total = sum(raw.values())
    if total <= 0:
        raise InputError("instruction mixture: every task has weight 0")
    return {t: w / total for t, w in raw.items()}


def build_mixture(rows: list[Row], templates: list[Template] = INSTRUCTION_TEMPLATES, cap: int = 1000,
                  max_shots: int = 2, few_shot_fraction: float = 0.5, seed: int = 0, max_chars: int = 0,
                  task_weights: dict[str, float] | None = None) -> Mixture:
    """Render every task's examples (at most ``cap`` of each) through every template, zero-shot,
    and a ``few_shot_fraction`` of them again with 1..max_shots exemplars from the same task."""
    by_task: dict[str, list[Row]] = {}
    for r in rows:
        by_task.setdefault(r.task, []).append(r)
    rng = random.Random(seed)
    pools = {}
    for task, examples in sorted(by_task.items()):
        examples = examples if len(examples) <= cap else rng.sample(examples, cap)
        pool = []
        for i, ex in enumerate(examples):
            for t in templates:
                pool.append(render(t, ex, max_chars=max_chars))
            others = examples[:i] + examples[i + 1:]
            if max_shots and others and rng.random() < few_shot_fraction:
                k = rng.randint(1, min(max_shots, len(others)))
                pool.append(render(rng.choice(templates), ex, rng.sample(others, k), max_chars))
        pools[task] = pool
    weights = mixing_weights({t: len(v) for t, v in by_task.items()}, cap, task_weights)
    names = sorted(pools)
    return Mixture(names, [weights[t] for t in names], pools)
