"""A HELM-style coverage checklist: which of HELM's scenarios and metrics a run measured.

HELM (Liang et al. 2022) evaluates 16 core scenarios under 7 metrics. gptlab is not HELM;
the grid is a checklist that keeps the gaps of a run's evaluation visible. A scenario is
"run" when this run has results for it; "available" when lm-evaluation-harness is installed,
has a task for it and that task's dataset is in this machine's Hugging Face cache (runs never
download: ``gptlab eval --harness TASK`` would run it now); "no dataset here" when the task
exists but its dataset is not on the machine; and "not covered" otherwise.
"""
from __future__ import annotations

import importlib.util
import os
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

# The Hugging Face datasets each stand-in task reads (lm-eval 0.4 task YAMLs' dataset_path).
TASK_DATASETS = {
    "boolq": ["super_glue", "aps/super_glue"],
    "scrolls_narrativeqa": ["tau/scrolls"],
    "nq_open": ["nq_open", "google-research-datasets/nq_open"],
    "hellaswag": ["hellaswag", "Rowan/hellaswag"],
    "openbookqa": ["openbookqa", "allenai/openbookqa"],
    "truthfulqa_mc2": ["truthful_qa", "truthfulqa/truthful_qa"],
    "mmlu": ["hails/mmlu_no_train", "cais/mmlu"],
    "cnn_dailymail_abisee": ["abisee/cnn_dailymail", "cnn_dailymail"],
    "xsum": ["EdinburghNLP/xsum", "xsum"],
}


def _cache_dirs() -> list[Path]:
    """Where the Hugging Face libraries keep datasets on this machine (their environment
    variables first, then the default under ~/.cache/huggingface)."""
    home = Path(os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                / "huggingface")
    dirs = [os.environ.get("HF_DATASETS_CACHE"), os.environ.get("HF_HUB_CACHE"),
            os.environ.get("HUGGINGFACE_HUB_CACHE"), home / "datasets", home / "hub"]
    return [Path(d) for d in dirs if d]


def dataset_cached(repo_ids: list[str], dirs: list[Path] | None = None) -> bool:
    """Is one of these datasets in a local cache? The hub cache names a folder
    ``datasets--org--name``; the datasets cache ``org___name`` (or ``name``)."""
    for d in dirs if dirs is not None else _cache_dirs():
        if not d.is_dir():
            continue
        for rid in repo_ids:
            names = ["datasets--" + rid.replace("/", "--"), rid.replace("/", "___"), rid.split("/")[-1]]
            if any((d / n).is_dir() for n in names):
                return True
    return False


def _harness_installed() -> bool:
    return importlib.util.find_spec("lm_eval") is not None


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
    harness_here = _harness_installed()
    for scenario, kind, task in HELM_SCENARIOS:
        hit = task is not None and any(t == task or t.startswith(task + "_") for t in ran)
        if hit:
            status = "run"
        elif task is None:
            status = "not covered"
        elif not harness_here:
            status = "needs lm-eval (pip install 'gptlab[eval]')"
        elif dataset_cached(TASK_DATASETS.get(task, [task])):
            status = "available"
        else:
            status = "no dataset here"
        rows.append([scenario, kind, task or "—", status])
    return rows
