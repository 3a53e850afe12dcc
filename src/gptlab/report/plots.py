"""Matplotlib figures for the report (Agg backend: no display needed)."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _save(fig, path: Path) -> Path:
    from gptlab.manifest import atomic_path
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def loss_curve(metrics_file: Path, path: Path, eval_bpb: float | None = None) -> Path:
    rows = [json.loads(l) for l in metrics_file.read_text().splitlines() if l.strip()]
    steps = [r["step"] for r in rows]
    loss = [r["loss"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.plot(steps, loss, lw=0.8, alpha=0.45, color="tab:blue", label="loss per step")
    k = max(1, len(loss) // 40)
    smooth = [sum(loss[max(0, i - k):i + 1]) / len(loss[max(0, i - k):i + 1]) for i in range(len(loss))]
    ax.plot(steps, smooth, lw=1.8, color="tab:blue", label=f"running mean ({k + 1} steps)")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (nats/token)")
    ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot(steps, [r["lr"] for r in rows], color="tab:orange", lw=1, alpha=0.7, label="learning rate")
    ax2.set_ylabel("learning rate", color="tab:orange")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("Training loss")
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
