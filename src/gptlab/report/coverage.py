"""A HELM-style coverage checklist: which of HELM's scenarios and metrics a run measured.

HELM (Liang et al. 2022) evaluates 16 core scenarios under 7 metrics. gptlab is not HELM;
the grid is a checklist that keeps the gaps of a run's evaluation visible. A scenario is
"run" when this run has results for it, "available" when lm-evaluation-harness has a task
for it (``gptlab eval --harness TASK``, once its dataset is in the local cache: runs never
download), and "not covered" otherwise.
"""
from __future__ import annotations

from pathlib import Path

from gptlab.manifest import read_manifest

# (HELM scenario, what it tests, the lm-eval 0.4 task that stands in for it, or None)
HELM_SCENARIOS = [
    ("BoolQ", "question answering", "boolq"),
    ("NarrativeQA", "question answering", "scrolls_narrativeqa"),
    ("NaturalQuestions (closed-book)", "question answering", "nq_open"),
    ("NaturalQuestions (open-book)", "question answering", None),
    ("QuAC", "question answering", None),
    ("HellaSwag", "question answering", "hellaswag"),
    ("OpenBookQA", "question answering", "openbookqa"),
    ("TruthfulQA", "question answering", "truthfulqa_mc2"),
    ("MMLU", "question answering", "mmlu"),
    ("MS MARCO (regular)", "information retrieval", None),
    ("MS MARCO (TREC)", "information retrieval", None),
    ("CNN/DailyMail", "summarization", "cnn_dailymail_abisee"),
    ("XSUM", "summarization", "xsum"),
    ("IMDB", "sentiment analysis", None),
    ("RAFT", "text classification", None),
    ("CivilComments", "toxicity detection", None),
]

# (HELM metric, status in gptlab, how)
HELM_METRICS = [
    ("accuracy", "covered", "held-out bits-per-byte per domain; acc, acc_norm, acc_bytes; exact match, F1"),
    ("calibration", "not covered", "no expected calibration error over choice probabilities"),
    ("robustness", "not covered", "no perturbed inputs (typos, casing)"),
    ("fairness", "not covered", "no dialect or demographic substitutions"),
    ("bias", "not covered", "no demographic representation or association measures"),
    ("toxicity", "not covered", "toxicity scoring needs an external classifier"),
    ("efficiency", "partial", "training tokens/s and MFU; no inference latency"),
]


def scenario_coverage(run: str | Path) -> list[list[str]]:
    """[scenario, kind, lm-eval task, status] rows, plus gptlab's own language modelling and local tasks."""
    run = Path(run)
    harness = read_manifest(run / "eval" / "harness")
    ran = set(harness["summary"].get("tasks", {})) if harness else set()
    rows = []
    bpb = read_manifest(run / "eval")
    rows.append(["Language modelling (held-out, per domain)", "language modelling", "gptlab eval (bpb)",
                 "run" if bpb and "overall" in bpb.get("summary", {}) else "available"])
    tasks = read_manifest(run / "eval" / "tasks")
    if tasks:
        for name in tasks["summary"].get("tasks", {}):
            rows.append([f"local task {name}", "local", "gptlab eval --tasks", "run"])
    for scenario, kind, task in HELM_SCENARIOS:
        hit = task is not None and any(t == task or t.startswith(task + "_") for t in ran)
        rows.append([scenario, kind, task or "—", "run" if hit else "available" if task else "not covered"])
    return rows
