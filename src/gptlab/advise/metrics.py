"""Scoring one bake-off arm: its metric with intervals, its latency and its estimated cost."""
from __future__ import annotations

import string
from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np

from gptlab.advise.stats import bootstrap, macro_f1, macro_f1_indices, wilson

if TYPE_CHECKING:
    from gptlab.advise.bakeoff import BakeoffSettings


def cost(latency_s: float, tokens: float, s: BakeoffSettings, prompted: bool) -> float:
    """USD per 1,000 examples: machine time at ``usd_per_hour`` plus, for a prompted arm, API tokens."""
    usd = latency_s * 1000 / 3600 * s.usd_per_hour
    if prompted:
        usd += tokens * s.usd_per_1k_tokens
    return round(usd, 6)


def _normalise(text: str) -> str:
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return " ".join(text.split())


def token_f1(pred: str, gold: str) -> float:
    """SQuAD-style token overlap F1 after lower-casing and dropping punctuation."""
    p, g = _normalise(pred).split(), _normalise(gold).split()
    if not p or not g:
        return float(p == g)
    common = sum((Counter(p) & Counter(g)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def classification_metrics(y_true: list[str], y_pred: list[str], seed: int) -> dict[str, Any]:
    codes = {lab: i for i, lab in enumerate(sorted(set(y_true) | set(y_pred)))}
    t = np.array([codes[y] for y in y_true])
    p = np.array([codes[y] for y in y_pred])
    correct = int((t == p).sum())
    return {"accuracy": correct / len(t), "accuracy_ci": wilson(correct, len(t)),
            "macro_f1": macro_f1(y_true, y_pred),
            "macro_f1_ci": bootstrap(lambda idx: macro_f1_indices(t[idx], p[idx], len(codes)), len(t), seed=seed),
            "per_example": (t == p).astype(float).tolist()}


def generation_metrics(y_true: list[str], y_pred: list[str], seed: int) -> dict[str, Any]:
    em = np.array([float(_normalise(a) == _normalise(b)) for a, b in zip(y_pred, y_true)])
    f1 = np.array([token_f1(a, b) for a, b in zip(y_pred, y_true)])
    return {"exact_match": float(em.mean()), "exact_match_ci": wilson(int(em.sum()), len(em)),
            "token_f1": float(f1.mean()), "token_f1_ci": bootstrap(lambda idx: float(f1[idx].mean()), len(f1), seed=seed),
            "per_example": f1.tolist()}


def arm_result(name: str, family: str, method: str, y_true, y_pred, seconds: float, s: BakeoffSettings,
               train_seconds: float = 0.0, tokens: float = 0.0, extra: dict | None = None) -> dict[str, Any]:
    """One arm's record: predictions, metrics with intervals, latency per example and cost."""
    metrics = (classification_metrics if s.task == "classification" else generation_metrics)(y_true, y_pred, s.seed)
    latency = seconds / max(1, len(y_true))
    return {"name": name, "family": family, "method": method, "predictions": list(y_pred),
            "metrics": metrics, "latency_ms_per_example": round(latency * 1000, 3),
            "train_seconds": round(train_seconds, 3), "tokens_per_example": round(tokens, 1),
            "usd_per_1k_examples": cost(latency, tokens, s, prompted=family == "prompt"),
            "usd_training": round(train_seconds / 3600 * s.usd_per_hour, 6), **(extra or {})}
