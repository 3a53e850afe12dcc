"""The verdict rule: known paired differences give known verdicts."""
from __future__ import annotations

import math

import pytest

from gptlab.lab.verdict import judge, paired_interval, seeds_to_decide, t_quantile


def test_identical_arms_are_inconclusive():
    base = [3.10, 3.20, 3.05]
    v = judge(base, list(base), "lower", 0.01)
    assert v.verdict == "inconclusive"
    assert v.effect == 0.0 and v.low == 0.0 and v.high == 0.0
    assert v.seeds_to_decide is None        # no effect at all: more seeds cannot decide it


def test_identical_arms_are_inconclusive_even_with_zero_smallest_effect():
    assert judge([1.0, 2.0], [1.0, 2.0], "higher", 0.0).verdict == "inconclusive"


def test_a_planted_effect_is_found():
    base = [3.10, 3.20, 3.05, 3.15]
    arm = [b - 0.10 + e for b, e in zip(base, [0.004, -0.003, 0.002, -0.001])]
    v = judge(base, arm, "lower", 0.02)
    assert v.verdict == "supported"
    assert v.high < -0.02 and v.low < v.effect < v.high
    assert v.effect == pytest.approx(-0.0995, abs=1e-9)


def test_the_opposite_effect_contradicts():
    base = [3.10, 3.20, 3.05]
    arm = [b + 0.1 + e for b, e in zip(base, [0.003, -0.002, 0.0])]
    assert judge(base, arm, "lower", 0.02).verdict == "contradicted"
    assert judge(base, arm, "higher", 0.02).verdict == "supported"


def test_an_effect_smaller_than_the_smallest_that_counts_is_inconclusive():
    base = [3.0, 3.1, 3.2]
    arm = [2.995, 3.094, 3.196]      # lower by ~0.005, very consistently
    v = judge(base, arm, "lower", 0.01)
    assert v.verdict == "inconclusive" and v.seeds_to_decide is None


def test_few_seeds_with_a_noisy_effect_are_inconclusive_and_say_how_many_would_decide():
    base = [3.00, 3.00]
    arm = [2.90, 2.98]               # mean -0.06, but two seeds disagree a lot
    v = judge(base, arm, "lower", 0.01)
    assert v.verdict == "inconclusive"
    assert v.seeds_to_decide is not None and v.seeds_to_decide > 2
    # with that many seeds (same mean and spread) the interval would clear the smallest effect
    n = v.seeds_to_decide
    sd = math.sqrt(((-0.1 + 0.06) ** 2 + (-0.02 + 0.06) ** 2) / 1)
    assert -0.06 + t_quantile(n - 1) * sd / math.sqrt(n) < -0.01


def test_one_seed_has_no_interval():
    v = judge([3.0], [2.0], "lower", 0.01)
    assert v.verdict == "inconclusive" and v.low == -math.inf and v.high == math.inf


def test_t_interval_matches_hand_computation():
    mean, lo, hi, sd = paired_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and sd == 1.0
    assert hi - mean == pytest.approx(4.303 / math.sqrt(3))
    assert lo == pytest.approx(2 * mean - hi)


def test_t_quantile_is_continuous_past_the_table_and_tends_to_normal():
    assert t_quantile(30) == pytest.approx(2.042)
    assert 1.96 < t_quantile(31) < t_quantile(30)
    assert t_quantile(10_000) == pytest.approx(1.96, abs=1e-3)
    assert t_quantile(20, level=0.9) == pytest.approx(1.725, abs=0.01)


def test_seeds_to_decide_grows_with_noise():
    assert seeds_to_decide(-0.05, 0.01, 0.01) < seeds_to_decide(-0.05, 0.05, 0.01)


@pytest.mark.parametrize("bad", [dict(direction="down"), dict(min_effect=-1.0)])
def test_bad_arguments_are_refused(bad):
    kw = dict(direction="lower", min_effect=0.01) | bad
    with pytest.raises(ValueError):
        judge([1.0, 2.0], [1.0, 2.0], **kw)


def test_unpaired_lists_are_refused():
    with pytest.raises(ValueError, match="paired"):
        judge([1.0, 2.0], [1.0], "lower", 0.0)
