"""Confidence intervals for the bake-off's scores.

Accuracy gets a Wilson score interval (well behaved for small n and for scores near 0 or 1).
Macro-F1 and token-F1, which are not simple proportions, and the difference between two
arms scored on the same examples get a percentile bootstrap over examples with a fixed seed.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

RESAMPLES = 1000


def wilson(correct: int, n: int, level: float = 0.95) -> tuple[float, float]:
    from scipy.stats import binomtest  # noqa: PLC0415  (optional extra (gptlab[advise]))
    if n == 0:
        return 0.0, 1.0
    ci = binomtest(correct, n).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def bootstrap(metric: Callable[[np.ndarray], float], n: int, level: float = 0.95, seed: int = 0,
              resamples: int = RESAMPLES) -> tuple[float, float]:
    """Percentile interval of ``metric(indices)`` over resampled example indices."""
    if n == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    stats = np.array([metric(rng.integers(0, n, n)) for _ in range(resamples)])
    alpha = (1 - level) / 2
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha))


def macro_f1(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    from sklearn.metrics import f1_score  # noqa: PLC0415  (optional extra (scikit-learn), heavy to import)
    return float(f1_score(list(y_true), list(y_pred), average="macro", zero_division=0))


def paired_difference(score_a: np.ndarray, score_b: np.ndarray, level: float = 0.95,
                      seed: int = 0) -> tuple[float, float, float]:
    """Mean of per-example ``b - a`` with its bootstrap interval: (difference, low, high)."""
    d = np.asarray(score_b, dtype=float) - np.asarray(score_a, dtype=float)
    lo, hi = bootstrap(lambda idx: float(d[idx].mean()), len(d), level, seed)
    return float(d.mean()) if len(d) else 0.0, lo, hi


def macro_f1_indices(t: np.ndarray, p: np.ndarray, k: int) -> float:
    """Macro-F1 over the labels present in ``t`` or ``p`` (as scikit-learn averages), on int codes.

    Used inside the bootstrap, where calling scikit-learn a thousand times would be slow."""
    tp = np.bincount(t[t == p], minlength=k)
    denom = np.bincount(t, minlength=k) + np.bincount(p, minlength=k)
    present = denom > 0
    return float((2 * tp[present] / denom[present]).mean()) if present.any() else 0.0
