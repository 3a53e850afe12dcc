"""The verdict rule: a claim is judged from paired per-seed differences, never by hand.

For a claim "arm changes METRIC in DIRECTION by at least MIN_EFFECT against the baseline":

1. d_i = metric(arm, seed i) - metric(baseline, seed i), for every seed both ran (seeds are
   paired: the same seed gives both arms the same initialisation stream and data order).
2. A two-sided Student-t interval of the mean difference at ``level`` (95 % by default):
   mean(d) ± t(n-1) · sd(d) / sqrt(n). With one seed there is no spread, so no interval.
3. The predicted effect is signed: ``lower`` means d < 0 (the arm lowers the metric),
   ``higher`` means d > 0. With s = -1 for lower and +1 for higher, the claim is
   - *supported* when the whole interval of s·d lies above +MIN_EFFECT,
   - *contradicted* when the whole interval of s·d lies below -MIN_EFFECT,
   - *inconclusive* otherwise (at this scale), with the number of seeds that would likely
     decide it if the observed mean and spread held.

A t interval rather than a bootstrap: with 2-5 seeds a bootstrap of the mean has too few
distinct resamples to mean anything, while the t interval is exact for normal differences
and honest (wide) when seeds are few.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal, Sequence

Direction = Literal["lower", "higher"]

# Two-sided 97.5 % quantiles of Student's t for 1..30 degrees of freedom (95 % intervals).
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
         2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
         2.052, 2.048, 2.045, 2.042]


def t_quantile(df: int, level: float = 0.95) -> float:
    """The two-sided t multiplier; tabulated for 95 %, normal-approximated otherwise or beyond df 30."""
    if df < 1:
        return math.inf
    if abs(level - 0.95) < 1e-9:
        return _T975[df - 1] if df <= len(_T975) else 1.96 + 2.4 / df
    z = _normal_quantile(0.5 + level / 2)
    return z + (z ** 3 + z) / (4 * df)          # Cornish-Fisher first term: close enough beyond a few df


def _normal_quantile(p: float) -> float:
    lo, hi = -10.0, 10.0                         # bisection on the normal CDF: no scipy needed
    for _ in range(80):
        mid = (lo + hi) / 2
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


@dataclass
class Verdict:
    verdict: Literal["supported", "contradicted", "inconclusive"]
    effect: float              # mean paired difference, arm - baseline
    low: float                 # interval of the difference
    high: float
    seeds: int
    seeds_to_decide: int | None    # for inconclusive: seeds likely to decide it (None: not with this effect)
    direction: str
    min_effect: float
    level: float

    def as_dict(self) -> dict:
        return asdict(self)


def paired_interval(diffs: Sequence[float], level: float = 0.95) -> tuple[float, float, float, float]:
    """(mean, low, high, sd) of the paired differences; an infinite interval for one seed."""
    n = len(diffs)
    if n == 0:
        raise ValueError("no paired seeds to compare")
    mean = sum(diffs) / n
    if n == 1:
        return mean, -math.inf, math.inf, math.nan
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = t_quantile(n - 1, level) * sd / math.sqrt(n)
    return mean, mean - half, mean + half, sd


def seeds_to_decide(mean: float, sd: float, min_effect: float, level: float = 0.95, limit: int = 1000) -> int | None:
    """The smallest seed count whose interval would clear the smallest effect if the observed
    mean and spread held; None when the mean itself does not clear it (more seeds won't help)."""
    margin = abs(mean) - min_effect
    if margin <= 0 or math.isnan(sd):
        return None
    for n in range(2, limit + 1):
        if t_quantile(n - 1, level) * sd / math.sqrt(n) < margin:
            return n
    return None


def judge(baseline: Sequence[float], arm: Sequence[float], direction: Direction, min_effect: float,
          level: float = 0.95) -> Verdict:
    """The verdict on ``arm`` against ``baseline``: equal-length lists, one value per paired seed."""
    if len(baseline) != len(arm):
        raise ValueError(f"paired seeds differ in number: baseline {len(baseline)}, arm {len(arm)}")
    if direction not in ("lower", "higher"):
        raise ValueError(f"direction: {direction!r} is not 'lower' or 'higher'")
    if min_effect < 0:
        raise ValueError("min_effect: must be >= 0")
    diffs = [a - b for a, b in zip(arm, baseline)]
    mean, low, high, sd = paired_interval(diffs, level)
    s = -1.0 if direction == "lower" else 1.0
    lo_s, hi_s = sorted((s * low, s * high))          # the interval of the signed effect
    if lo_s > min_effect:
        verdict = "supported"
    elif hi_s < -min_effect:
        verdict = "contradicted"
    else:
        verdict = "inconclusive"
    need = None if verdict != "inconclusive" else seeds_to_decide(mean, sd, min_effect, level)
    if need is not None and need <= len(diffs):       # a borderline margin: say one more seed
        need = len(diffs) + 1
    return Verdict(verdict, mean, low, high, len(diffs), need, direction, min_effect, level)
