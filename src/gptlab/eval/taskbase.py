"""What every kind of local task shares: the error type, the few-shot draw, answer normalisation, intervals.

A leaf module, so that ``tasks.py`` (the loader and runner) and the kinds it dispatches to
(``cot.py``, ``code.py``) can all use it without importing one another in a circle.
"""
from __future__ import annotations

import math
import random
import re
import statistics
import string
from typing import Sequence

from gptlab.errors import InputError

RESAMPLES = 1000


class TaskError(InputError):   # a ValueError too
    """A task file that cannot be read, with the file, line and key at fault."""


def draw_shots(i: int, candidates: Sequence[int], k: int, seed: int) -> list[int]:
    """k of ``candidates`` as row i's few-shot examples: fixed by (seed, i) alone, so a row's
    prompt does not depend on which other rows are evaluated, or in what order."""
    if k > len(candidates):
        raise TaskError(f"{k}-shot needs {k} other examples; the pool has {len(candidates)}")
    return random.Random(f"{seed}:{i}").sample(list(candidates), k)


def fewshot_indices(i: int, pool_size: int, k: int, seed: int, exclude_self: bool) -> list[int]:
    """Which pool rows serve as row i's k examples: fixed by (seed, i) alone."""
    return draw_shots(i, [j for j in range(pool_size) if not (exclude_self and j == i)], k, seed)


def normalize_answer(s: str) -> str:
    """SQuAD's normalisation: lower case, drop punctuation and articles, collapse spaces."""
    s = "".join(ch for ch in s.lower() if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def wilson(correct: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion: sane for small n and for rates near 0 or 1."""
    if n == 0:
        return 0.0, 1.0
    z = statistics.NormalDist().inv_cdf(0.5 + level / 2)
    p = correct / n
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, mid - half), min(1.0, mid + half)


def bootstrap_mean(values: Sequence[float], level: float = 0.95, seed: int = 0,
                   resamples: int = RESAMPLES) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (rows resampled with replacement)."""
    n = len(values)
    if n == 0:
        return 0.0, 0.0
    rng = random.Random(seed)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    alpha = (1 - level) / 2
    return means[int(alpha * (resamples - 1))], means[math.ceil((1 - alpha) * (resamples - 1))]
