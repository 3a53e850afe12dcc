"""The ablation report: one HTML page (figures as PNG beside it, embedded) from ``results.json``
and the runs' own metrics.

Sections: overlaid training-loss curves with a band over seeds per arm; final metrics per arm
with their spread over seeds; spikes, rollbacks and skipped batches; tokens/s; and the claims
table (claim → ablation → effect ± interval → verdict → seeds → scale). Every verdict is
computed by :mod:`gptlab.lab.verdict` and holds at the scale the page names, and only there.
"""
from __future__ import annotations

import base64
import html
import json
import statistics
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from gptlab.errors import UserError  # noqa: E402
from gptlab.lab.runner import run_dir  # noqa: E402
from gptlab.lab.spec import METRICS  # noqa: E402
from gptlab.manifest import atomic_path, atomic_write  # noqa: E402
from gptlab.schema import to_toml  # noqa: E402

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1050px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}img{max-width:100%}
.supported{color:#1a7f37;font-weight:600}.contradicted{color:#b42318;font-weight:600}.inconclusive{color:#8a6d00}
.note{background:#fff8e1;border-left:4px solid #e0b000;padding:.6em 1em}pre{background:#f7f7f7;padding:1em;font-size:.85em}
"""


def _esc(v: Any) -> str:
    return html.escape(str(v))


def _num(v: Any, digits: int = 3) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.{digits}f}" if abs(v) < 1e5 else f"{v:,.0f}"
    return f"{v:,}" if isinstance(v, int) else _esc(v)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(path: Path, alt: str) -> str:
    return f'<img alt="{_esc(alt)}" src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}">'


def _spread(values: list[Any], digits: int = 3) -> str:
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return "—"
    if len(vals) == 1:
        return _num(vals[0], digits)
    return f"{_num(statistics.mean(vals), digits)} ± {_num(statistics.stdev(vals), digits)}"


def loss_curves(out: Path, doc: dict[str, Any]) -> dict[str, dict[int, list[float]]]:
    """arm → step → training loss of each seed (from every run's metrics.jsonl)."""
    curves: dict[str, dict[int, list[float]]] = {}
    for r in doc["runs"]:
        f = run_dir(out, r["arm"], r["seed"]) / "train" / "metrics.jsonl"
        if not f.exists():
            continue
        per_step: dict[int, float] = {}
        for line in f.read_text().splitlines():
            rec = json.loads(line)
            per_step[rec["step"]] = rec["loss"]        # a rolled-back step: its replay wins
        for step, loss in per_step.items():
            curves.setdefault(r["arm"], {}).setdefault(step, []).append(loss)
    return curves


def plot_curves(curves: dict[str, dict[int, list[float]]], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for arm, by_step in curves.items():
        steps = sorted(by_step)
        vals = [[v for v in by_step[s] if v == v and abs(v) < 1e6] or [float("nan")] for s in steps]
        mean = [sum(v) / len(v) for v in vals]
        line, = ax.plot(steps, mean, label=arm, lw=1.2)
        ax.fill_between(steps, [min(v) for v in vals], [max(v) for v in vals], color=line.get_color(), alpha=0.2)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (nats)")
    ax.set_title("training loss: mean over seeds, band = min..max over seeds")
    ax.legend()
    ax.grid(alpha=0.3)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_metric(doc: dict[str, Any], metric: str, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for i, arm in enumerate(doc["arms"]):
        vals = [r[metric] for r in doc["runs"] if r["arm"] == arm and r[metric] is not None]
        ax.scatter([i] * len(vals), vals, s=18, alpha=0.8)
        if vals:
            ax.hlines(sum(vals) / len(vals), i - 0.25, i + 0.25, color="k")
    ax.set_xticks(range(len(doc["arms"])), doc["arms"])
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per seed (bar = mean)")
    ax.grid(alpha=0.3, axis="y")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _claims_table(doc: dict[str, Any]) -> str:
    rows = []
    for c in doc["claims"]:
        v = c["verdict"]
        label = "inconclusive at this scale" if v == "inconclusive" else v
        if v == "inconclusive":
            label += f" (≈{c['seeds_to_decide']} seeds would likely decide)" if c["seeds_to_decide"] else \
                " (the observed effect is below the smallest that counts)"
        lo, hi = c["low"], c["high"]
        interval = f"[{_num(lo)}, {_num(hi)}]" if lo is not None and hi is not None else "no interval (one seed)"
        rows.append([f"{_esc(c['id'])}: {_esc(c['claim'])}",
                     f"{_esc(c['arm'])} vs {_esc(c['baseline'])}",
                     f"{_esc(c['metric'])} {_esc(c['direction'])} by ≥ {_num(c['min_effect'])}",
                     f"{_num(c['effect'])} {interval}",
                     f'<span class="{v}">{_esc(label)}</span>', str(c["seeds"]), _esc(doc["scale"])])
    return _table(["claim", "ablation", "predicted", "effect (arm − baseline), 95 % t interval", "verdict",
                   "seeds", "scale"], rows)


def _precision(run: dict[str, Any]) -> str:
    return f"{run['precision']} (emulated)" if run.get("emulated") else str(run["precision"])


# Said beside every emulated arm: what the emulation is, and how it differs from the real precision.
EMULATION_NOTE = (
    "Arms marked (emulated) ran on a device without fast kernels for that precision: the arithmetic is fp32, "
    "and every input and output of a matmul (linear layers, attention) is rounded through the precision, forward "
    "and backward, where autocast would cast it, with its range (fp16 overflows past 65504 to inf, so the loss "
    "scaler has to act as it does on a GPU). It differs from the real thing in three ways: products accumulate "
    "in fp32 and are rounded once per output; elementwise ops between matmuls (activations, residual adds, the "
    "softmax) run in fp32 and are rounded only where they next enter a matmul; and no fp16/bf16 kernel runs, so "
    "tokens/s says nothing about that precision's speed. On a GPU the same file runs the real precision.")


SHOWN = ("final_loss", "bpb", "max_logit", "spikes", "rollbacks", "skipped_batches", "overflow_skips", "tokens_per_s")


def _arms_table(doc: dict[str, Any]) -> str:
    # the metrics the claims name beyond the fixed columns (bpb_2x, memorisation, ...), and the
    # data each arm had (a data ablation's packs differ)
    extra = list(dict.fromkeys(c["metric"] for c in doc["claims"] if c["metric"] not in SHOWN))
    packs = len({r.get("pack") for r in doc["runs"]}) > 1
    rows = []
    for arm in doc["arms"]:
        rs = [r for r in doc["runs"] if r["arm"] == arm]
        stopped = sum(1 for r in rs if r.get("stopped"))
        rows.append([_esc(arm), _num(rs[0]["params"]) if rs else "—", _num(rs[0]["tokens"]) if rs else "—",
                     *([_num(rs[0].get("pack_tokens")) if rs else "—"] if packs else []),
                     _esc(_precision(rs[0])) if rs else "—",
                     *[_spread([r[m] for r in rs]) for m in ("final_loss", "bpb", "max_logit")],
                     *[_spread([r.get(m) for r in rs], 1) for m in ("spikes", "rollbacks", "skipped_batches",
                                                                      "overflow_skips")],
                     *[_spread([r.get(m) for r in rs]) for m in extra],
                     _spread([r["tokens_per_s"] for r in rs], 0), f"{len(rs)}" + (f" ({stopped} stopped)" if stopped else "")])
    return _table(["arm", "params", "tokens", *(["pack tokens"] if packs else []), "precision", "final loss",
                   "held-out bpb", "max logit", "spikes", "rollbacks", "skipped batches", "loss-scale skips",
                   *extra, "tokens/s", "seeds"], rows)


def write_ablation_report(out: str | Path) -> Path:
    """``OUT/report.html`` (figures in ``OUT/figures/``) from a finished or partial ablation."""
    out = Path(out)
    try:
        doc = json.loads((out / "results.json").read_text())
    except FileNotFoundError:
        raise UserError(f"{out}: no results.json (run `gptlab ablate ... --out {out}` first)") from None
    figs = out / "figures"
    figs.mkdir(exist_ok=True)
    curves = plot_curves(loss_curves(out, doc), figs / "loss.png")
    metric_figs = [plot_metric(doc, m, figs / f"{m}.png") for m in ("final_loss", "bpb")
                   if any(r[m] is not None for r in doc["runs"])]
    warnings = "".join(f'<p class="note">{_esc(w)}</p>' for w in doc.get("warnings", []))
    if any(r.get("emulated") for r in doc["runs"]):
        warnings += f'<p class="note">{_esc(EMULATION_NOTE)}</p>'
    planned = f'<p class="note">Planned, not run yet: {_esc(doc["planned"])}</p>' if doc.get("planned") else ""
    metric_list = "".join(f"<li><b>{_esc(k)}</b>: {_esc(v)}</li>" for k, v in METRICS.items())
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>ablation {_esc(doc['name'])}</title>
<style>{CSS}</style></head><body>
<h1>Ablation: {_esc(doc['name'])}</h1><p>{_esc(doc.get('description', ''))}</p>
<p class="note">Scale: {_esc(doc['scale'])}; {doc['seeds']} paired seeds per arm. Every verdict here holds at
this scale only: an effect found (or not found) on a model this small may vanish, grow or reverse at
the scale of the runs the post discusses.</p>{warnings}{planned}
<section><h2>Claims</h2>{_claims_table(doc)}
<p>Verdict rule: the per-seed paired difference (arm − baseline) gets a 95 % Student-t interval; the
claim is <i>supported</i> when the whole interval clears the smallest effect in the predicted
direction, <i>contradicted</i> when it clears it in the opposite direction, and <i>inconclusive</i>
otherwise.</p></section>
<section><h2>Loss curves</h2>{_img(curves, 'loss curves')}</section>
<section><h2>Arms</h2>{_arms_table(doc)}{''.join(_img(f, f.stem) for f in metric_figs)}
<ul>{metric_list}</ul></section>
<section><h2>Overrides</h2><p>The demo size's settings, then <code>[common]</code>, then each arm:</p>
<pre>{_esc(_overrides_toml(doc['overrides']))}</pre></section>
</body></html>"""
    atomic_write(out / "report.html", page)
    return out / "report.html"


def _overrides_toml(overrides: dict[str, Any]) -> str:
    parts = []
    for name, frag in overrides.items():
        parts.append(f"# {name}\n" + (to_toml(frag) if frag else "(none)\n"))
    return "\n".join(parts)
