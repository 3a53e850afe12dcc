"""Matplotlib figures for the report (Agg backend: no display needed)."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from gptlab.manifest import atomic_path


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def trajectories(rows: list[dict]) -> list[list[dict]]:
    """The run's attempts, in order: one per rollback epoch (``rollback_epoch`` in each
    record; files without it are split where the step number goes back)."""
    attempts: list[list[dict]] = [[]]
    for r in rows:
        prev = attempts[-1][-1] if attempts[-1] else None
        if prev is not None and ("rollback_epoch" in r and r["rollback_epoch"] != prev.get("rollback_epoch")
                                 or "rollback_epoch" not in r and r["step"] <= prev["step"]):
            attempts.append([])
        attempts[-1].append(r)
    return attempts


def split_attempts(attempts: list[list[dict]]) -> list[tuple[list[dict], list[dict]]]:
    """For each attempt, (kept, abandoned): a record is abandoned when a later attempt went
    back to its step or before it (the run rolled back over it)."""
    out: list[tuple[list[dict], list[dict]]] = []
    floor = float("inf")                          # the earliest step any later attempt restarted from
    for seg in reversed(attempts):
        out.append(([r for r in seg if r["step"] < floor], [r for r in seg if r["step"] >= floor]))
        if seg:
            floor = min(floor, seg[0]["step"])
    return out[::-1]


def kept_and_abandoned(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """The trajectory the run kept (each step once) and the records a rollback abandoned."""
    parts = split_attempts(trajectories(rows))
    return [r for k, _ in parts for r in k], [r for _, a in parts for r in a]


def loss_curve(metrics_file: Path, path: Path, events_file: Path | None = None) -> Path:
    """Loss per step. After a stability rollback the run continues from an earlier step:
    the kept trajectory is drawn in blue, each abandoned stretch in grey, with the spike, the
    rollback and the skipped window marked from events.jsonl. Periodic held-out bpb
    (``eval_bpb``, train.eval_every) is overlaid on a second axis."""
    rows = [json.loads(l) for l in metrics_file.read_text().splitlines() if l.strip()]
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    first = True
    for i, (kept, dropped) in enumerate(split_attempts(trajectories(rows))):
        ax.plot([r["step"] for r in kept], [r["loss"] for r in kept], lw=1.0, color="tab:blue",
                label="training loss (kept)" if i == 0 else None)
        if dropped:
            ax.plot([r["step"] for r in dropped], [r["loss"] for r in dropped], lw=1.0, color="0.6",
                    label="abandoned by a rollback" if first else None)
            first = False
    finite = [r["loss"] for r in rows if isinstance(r["loss"], (int, float)) and r["loss"] == r["loss"]]
    if finite:
        lo, hi = min(finite), sorted(finite)[int(0.98 * (len(finite) - 1))]
        ax.set_ylim(lo - 0.1 * (hi - lo + 1e-9), hi + 0.35 * (hi - lo + 1e-9))
    events = []
    if events_file is not None and events_file.exists():
        events = [json.loads(l) for l in events_file.read_text().splitlines() if l.strip()]
    for e in events:
        if e["event"] == "detect":
            ax.axvline(e["step"], color="tab:red", lw=1, ls="--")
            ax.annotate(e["detector"], (e["step"], ax.get_ylim()[1]), fontsize=7, color="tab:red",
                        ha="right", va="top", rotation=90)
        elif e["event"] == "rollback":
            ax.axvline(e["to_step"], color="tab:orange", lw=1, ls=":")
        elif e["event"] == "skip":
            ax.axvspan(e["from_step"], e["from_step"] + e["batches"], color="tab:orange", alpha=0.15,
                       label="skipped batches")
    handles, labels = ax.get_legend_handles_labels()
    evals = [r for r in kept_and_abandoned(rows)[0] if isinstance(r.get("eval_bpb"), (int, float))]
    if evals:
        ax2 = ax.twinx()
        ax2.plot([r["step"] for r in evals], [r["eval_bpb"] for r in evals], "o-", ms=3, lw=1.0,
                 color="tab:green", label="held-out bpb")
        ax2.set_ylabel("held-out bits per byte")
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend(handles, labels, loc="upper right", fontsize=8)
    ax.set_title("Training loss" + (" and held-out bpb" if evals else "")
                 + (" (stability events marked)" if events else ""))
    return _save(fig, path)


def funnel_chart(stages: list[tuple[str, int, int]], path: Path) -> Path:
    """stages: (label, documents, bytes) in pipeline order."""
    labels = [s[0] for s in stages]
    fig, axes = plt.subplots(1, 2, figsize=(9, 0.45 * len(stages) + 1.2), sharey=True)
    for ax, idx, title in ((axes[0], 1, "documents"), (axes[1], 2, "MB")):
        vals = [s[idx] / (1e6 if idx == 2 else 1) for s in stages]
        ax.barh(range(len(stages)), vals, color="tab:green", alpha=0.8)
        for i, v in enumerate(vals):
            ax.text(v, i, f" {v:,.0f}" if idx == 1 else f" {v:,.1f}", va="center", fontsize=8)
        ax.set_title(title)
        ax.set_xlim(0, max(vals) * 1.25 if vals and max(vals) > 0 else 1)
    axes[0].set_yticks(range(len(stages)), labels)
    axes[0].invert_yaxis()  # shared y axis: invert once, so the pipeline reads top to bottom
    fig.suptitle("Data funnel")
    return _save(fig, path)


def eval_chart(domains: dict[str, dict], path: Path) -> Path:
    names = list(domains)
    model = [domains[n]["bpb"] for n in names]
    uni = [domains[n].get("unigram_bpb", float("nan")) for n in names]
    fig, ax = plt.subplots(figsize=(7, 3.4))
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], uni, width=0.4, label="unigram baseline", color="tab:gray")
    ax.bar([x + 0.2 for x in xs], model, width=0.4, label="model", color="tab:blue")
    ax.set_xticks(list(xs), names, rotation=30, ha="right")
    ax.set_ylabel("bits per byte (lower is better)")
    ax.legend(fontsize=8)
    ax.set_title("Held-out bits-per-byte by domain")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)
