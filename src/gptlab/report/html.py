"""`gptlab report`: one HTML page per run folder, built from the stages' manifests.

Sections: the data funnel (documents and bytes through every stage, drops by reason),
the loss curve, the held-out evaluation beside the unigram baseline, and the config.
Figures are PNG files next to the page, embedded as data URIs so the page travels alone.
"""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from gptlab.errors import UserError
from gptlab.manifest import atomic_write, read_manifest
from gptlab.report.coverage import HELM_METRICS, scenario_coverage
from gptlab.report.plots import eval_chart, funnel_chart, loss_curve
from gptlab.schema import to_toml


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


NO_VALUE = "—"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _table(headers: list[str], rows: list[list[Any]], cls: str = "") -> str:
    """An HTML table: numbers right-aligned (and their column's header), text left-aligned."""
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.3f}"
        if _is_number(v):
            return f"{v:,}"
        return html.escape(str(v))
    numeric = [bool(rows) and all(_is_number(r[i]) or r[i] == NO_VALUE for r in rows if i < len(r))
               and any(_is_number(r[i]) for r in rows if i < len(r)) for i in range(len(headers))]
    num = ' class="num"'
    head = "".join(f"<th{num if numeric[i] else ''}>{html.escape(h)}</th>" for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f"<td{num if _is_number(v) or (i < len(numeric) and numeric[i]) else ''}>"
                                    f"{cell(v)}</td>" for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:0}.sub{color:#666;margin-top:.2em}section{margin:2em 0}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left}
th{background:#f4f4f4}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}img{max-width:100%}
pre{background:#f7f7f7;padding:1em;overflow:auto;font-size:.85em}.ok{color:#1a7f37}.bad{color:#b42318}
"""


def _funnel_section(run: Path, figs: Path) -> str:
    hv, cu = read_manifest(run / "harvest"), read_manifest(run / "curate")
    if not hv or not cu:
        return ""
    hs, cs = hv["summary"], cu["summary"]
    f = cs["funnel"]
    stages = [("harvest candidates", hs["docs"] + hs["quarantined"], hs["bytes"]),
              ("harvested", hs["docs"], hs["bytes"])]
    # Curation quarantines records as it reads them, before its first step: a stage of its own,
    # so that the first step's bar shows only what that step dropped.
    q_curate = sum(f.get("quarantined", {}).values())
    first = f["steps"][0] if f["steps"] else None
    read_in = first["in_docs"] if first else cs["in_docs"] - q_curate
    stages.append((f"read by curate ({q_curate:,} quarantined)", read_in,
                   first["in_bytes"] if first else cs.get("train_bytes", 0) + cs.get("heldout_bytes", 0)))
    for s in f["steps"]:
        stages.append((f"after {s['name']}", s["out_docs"], s["out_bytes"]))
    stages.append(("train split", cs["train_docs"], cs["train_bytes"]))
    stages.append(("held-out split", cs["heldout_docs"], cs["heldout_bytes"]))
    chart = funnel_chart(stages, figs / "funnel.png")
    q_reasons = ", ".join(f"{k}: {v:,}" for k, v in sorted(f.get("quarantined", {}).items())) or NO_VALUE
    step_rows = [["quarantine (reading the inputs)", cs["in_docs"], read_in, NO_VALUE, NO_VALUE,
                  f"quarantined ({q_reasons})"]]
    for s in f["steps"]:
        reasons = ", ".join(f"{k}: {v:,}" for k, v in sorted(s["dropped"].items())) or "—"
        step_rows.append([s["name"], s["in_docs"], s["out_docs"], s["in_bytes"] / 1e6, s["out_bytes"] / 1e6, reasons])
    src_rows = []
    for name, info in hs["sources"].items():
        q = sum(info["quarantined"].values())
        src_rows.append([name, info["docs"] + q, q, info["docs"], info["bytes"] / 1e6, info["truncated"]])
    rec_rows = [[src, c.get("in", 0), c.get("kept", 0), c.get("dropped", 0), c.get("quarantined", 0),
                 "yes" if c.get("in", 0) == c.get("kept", 0) + c.get("dropped", 0) + c.get("quarantined", 0) else "NO"]
                for src, c in f["sources"].items()]
    balance = cs["in_docs"] == cs["kept_docs"] + cs["dropped_docs"] + cs["quarantined_docs"]
    recipe = cs.get("recipe") or {}
    recipe_line = ""
    if recipe:
        recipe_line = (f"<p>Recipe <b>{html.escape(recipe['name'])}</b>: {html.escape(recipe.get('description', ''))} "
                       f"Steps: {html.escape(' → '.join(s['type'] for s in recipe['steps']))}.</p>")
    quarantine = ", ".join(f"{k}: {v:,}" for k, v in sorted(f.get("quarantined", {}).items())) or "none"
    return f"""<section id="funnel"><h2>Data funnel</h2>
{_img(chart, "data funnel")}
{recipe_line}
<p class="{'ok' if balance else 'bad'}">Documents in = kept + dropped + quarantined: {cs['in_docs']:,} = {cs['kept_docs']:,} + {cs['dropped_docs']:,} + {cs['quarantined_docs']:,}
({'reconciles' if balance else 'DOES NOT RECONCILE'}). Quarantined in curation, by reason: {html.escape(quarantine)}.</p>
<h3>Harvest, by source</h3>{_table(["source", "candidates", "quarantined", "documents", "MB", "truncated"], src_rows)}
<h3>Curation steps and drop reasons</h3>{_table(["step", "docs in", "docs out", "MB in", "MB out", "dropped (reason: count)"], step_rows)}
<h3>Reconciliation, by source</h3>{_table(["source", "in", "kept", "dropped", "quarantined", "in = kept + dropped + quarantined"], rec_rows)}
{_classifier_part(cs.get("classifier") or {})}
{_dedup_part(cs.get("dedup") or {})}
<p>Held-out split: {cs['heldout_docs']:,} documents over {len(cs['heldout_domains'])} domains
({', '.join(f'{k}: {v}' for k, v in sorted(cs['heldout_domains'].items()))}). Translations of one Bible chapter share a side of the split.</p>
</section>"""


def _classifier_part(classifiers: dict[str, Any]) -> str:
    """GPT-3's quality classifier: what the reference set was and how well it separates."""
    parts = []
    for name, c in classifiers.items():
        if c.get("skipped"):
            parts.append(f"<p><b>{html.escape(name)}</b>: {html.escape(str(c['skipped']))}</p>")
            continue
        parts.append(f"<p><b>{html.escape(name)}</b>: logistic regression on {html.escape(str(c.get('features', '')))}. "
                     f"Reference set (positives): {html.escape(str(c.get('reference_set', '?')))}; negatives: "
                     f"{html.escape(str(c.get('negatives_from', '?')))}. Trained on {c.get('positives', 0):,} positives and "
                     f"{c.get('negatives', 0):,} negatives; on {c.get('heldout_docs', 0):,} held-out documents precision "
                     f"{c.get('precision', 0):.3f}, recall {c.get('recall', 0):.3f}. Documents are kept when "
                     f"pareto(9) &gt; 1 − score, seeded by document id.</p>")
    return "<h3>Quality classifier</h3>" + "".join(parts) if parts else ""


def _dedup_part(dedup: dict[str, Any]) -> str:
    """Duplicate clusters per dedup step: count, size distribution, a few samples."""
    parts = []
    for name, st in dedup.items():
        sizes = ", ".join(f"{k} docs: {v:,}" for k, v in st.get("cluster_sizes", {}).items()) or "none"
        pairs = (f" {st['confirmed_pairs']:,} of {st['candidate_pairs']:,} LSH candidate pairs confirmed by the "
                 f"signature estimate." if "candidate_pairs" in st else "")
        parts.append(f"<p><b>{html.escape(name)}</b>: {st.get('duplicates', 0):,} documents removed from "
                     f"{st.get('clusters', 0):,} clusters (one kept per cluster, the first in input order). "
                     f"Cluster sizes: {html.escape(sizes)}.{pairs}</p>")
        for i, cluster in enumerate(st.get("samples", [])[:3]):
            rows = [[m.get("id", "?"), m.get("source", "?"), m.get("chars", 0), m.get("snippet", "")] for m in cluster]
            parts.append(f"<p>Sample cluster {i + 1} (first row kept):</p>"
                         + _table(["id", "source", "chars", "beginning"], rows))
    return "<h3>Deduplication</h3>" + "".join(parts) if parts else ""


def _train_dir(run: Path) -> Path:
    """A demo run keeps training in train/; `gptlab train --out DIR` writes DIR itself."""
    return run / "train" if (run / "train" / "metrics.jsonl").exists() else run


def _train_section(run: Path, figs: Path) -> str:
    tdir = _train_dir(run)
    tr = read_manifest(tdir)
    tok, pk = read_manifest(run / "tokenizer"), read_manifest(run / "pack")
    parts = []
    if tok and pk:
        p = pk["summary"]
        parts.append(f"<p>Tokenizer: byte-level BPE, vocabulary {tok['summary']['vocab_size']:,}, trained on the "
                     f"training split only. Packed {p['n_sequences']:,} sequences of {p['seq_len']} tokens "
                     f"({p['n_tokens']:,} tokens, {p['bytes_per_token']} bytes/token) in one pre-shuffled order.</p>")
    if (tdir / "metrics.jsonl").exists():
        chart = loss_curve(tdir / "metrics.jsonl", figs / "loss.png", tdir / "events.jsonl")
        parts.append(_img(chart, "loss curve"))
        if tr and tr.get("status") == "stopped":
            parts.append(f"<p><b>Stopped by the stability guard</b>: {html.escape(str(tr.get('reason', '')))}. "
                         "The run kept its last good checkpoint; rerunning `gptlab train` resumes it.</p>")
        if tr:
            s = tr["summary"]
            parts.append(_table(["params (non-embedding)", "steps", "tokens", "first loss", "final loss", "tokens/s",
                                 "precision"], [[s["params"], s["steps"], s["tokens"], s["first_loss"],
                                                 s["final_loss"], round(s["tokens_per_s"]), s["precision"]]]))
        parts.append(_events_table(tdir / "events.jsonl"))
    if not parts:
        return ""
    return '<section id="training"><h2>Training</h2>' + "\n".join(parts) + "</section>"


def _events_table(path: Path) -> str:
    if not path.exists():
        return "<p>Stability guard: no events (no spike detected).</p>"
    rows = []
    for line in path.read_text().splitlines():
        e = json.loads(line)
        detail = {k: v for k, v in e.items() if k not in ("event", "step")}
        rows.append([e.get("step", ""), e["event"], json.dumps(detail)[:160]])
    return "<h3>Stability events</h3>" + _table(["step", "event", "detail"], rows)


def _eval_section(run: Path, figs: Path) -> str:
    ev = read_manifest(run / "eval")
    tasks, harness = read_manifest(run / "eval" / "tasks"), read_manifest(run / "eval" / "harness")
    if not (ev or tasks or harness):
        return ""
    parts = ['<section id="evaluation"><h2>Evaluation</h2>']
    if ev and "domains" in ev.get("summary", {}):
        r = ev["summary"]
        chart = eval_chart(r["domains"], figs / "eval.png")
        rows = []
        for name, d in list(r["domains"].items()) + [("overall", r["overall"])]:
            uni = d.get("unigram_bpb")
            rows.append([name, d["docs"], d["bytes"], d["bpb"], uni if uni is not None else "—",
                         f"{100 * (1 - d['bpb'] / uni):.0f}%" if uni else "—"])
        parts.append(f"""<h3>Held-out bits-per-byte, per domain</h3>{_img(chart, "eval")}
{_table(["domain", "docs", "bytes", "model bpb", "unigram bpb", "model vs unigram"], rows)}
<p>Bits per UTF-8 byte of the raw held-out text; every token predicted once from up to {r['window']} tokens of
context (stride {r['stride']}). The unigram baseline uses token frequencies of the training stream.</p>""")
    if tasks:
        rows = []
        fixed = ("acc", "acc_norm", "acc_bytes", "exact_match", "f1")
        for name, t in tasks["summary"]["tasks"].items():
            m, ci = t["metrics"], t.get("intervals", {})
            # Chain of thought (acc_answer_only, ...) and code (pass@k) report metrics of their own.
            other = ", ".join(f"{k} {v:.3f}" for k, v in m.items() if k not in fixed and isinstance(v, (int, float)))
            intervals = ", ".join(f"{k} [{lo:.3f}, {hi:.3f}]" for k, (lo, hi) in ci.items())
            rows.append([name, t["kind"].replace("_", " "), t["num_fewshot"], t["n"],
                         *(m[k] if k in m else "—" for k in fixed), other or "—", intervals or "—"])
        parts.append("<h3>Local tasks</h3>" + _table(
            ["task", "kind", "shots", "rows", "acc", "acc_norm", "acc_bytes", "exact match", "F1", "other metrics",
             "95 % intervals"], rows)
            + "<p>Small models favour short answers under the summed log-likelihood (acc); acc_norm divides "
              "by the answer's characters and acc_bytes by its UTF-8 bytes. Chain-of-thought tasks also report "
              "the answer-only accuracy with the same exemplars and the paired difference; code tasks report "
              "pass@k (the unbiased estimator) over candidates run in the sandbox.</p>")
    if harness:
        rows = [[task, ", ".join(f"{k} {v:.3f}" for k, v in m.items())]
                for task, m in harness["summary"]["tasks"].items()]
        parts.append("<h3>lm-evaluation-harness</h3>" + _table(["task", "metrics"], rows))
    cov = scenario_coverage(run)
    parts.append("<h3>Coverage of HELM's scenarios and metrics</h3>"
                 + _table(["scenario", "kind", "task", "status"], cov)
                 + _table(["metric", "status", "how"], [list(m) for m in HELM_METRICS])
                 + "<p>run: results in this report; available: an lm-evaluation-harness task exists and its "
                   "dataset is in this machine's Hugging Face cache (<code>gptlab eval --harness TASK</code> runs "
                   "it now); no dataset here: the task exists, its dataset is not on this machine (runs never "
                   "download); not covered: no task stands in for the scenario.</p>")
    parts.append("</section>")
    return "\n".join(parts)


def _config_section(run: Path) -> str:
    for stage in ("train", "eval", "pack", "curate", "harvest", "."):
        m = read_manifest(run / stage)
        if m and m.get("config"):
            try:
                text = to_toml(m["config"])
            except (TypeError, AttributeError):
                text = json.dumps(m["config"], indent=2)
            return f'<section id="config"><h2>Config</h2><p>Resolved config of the {stage} stage.</p><pre>{html.escape(text)}</pre></section>'
    return ""


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    run = Path(run_dir)
    out = Path(out) if out else run / "report.html"
    if out.is_dir():   # figures/ would land beside the user's files, and the page cannot replace a folder
        raise UserError(f"--out {out}: is a folder; name the page to write, e.g. {out / 'report.html'}")
    figs = out.parent / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    body = "\n".join(s for s in (_funnel_section(run, figs), _train_section(run, figs),
                                 _eval_section(run, figs), _config_section(run)) if s)
    if not body:
        raise FileNotFoundError(f"{run}: no finished stages to report on")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>gptlab report: {html.escape(run.name)}</title>
<style>{CSS}</style></head><body><h1>gptlab run report</h1><p class="sub">{html.escape(str(run.resolve()))}</p>
{body}</body></html>"""
    atomic_write(out, page)
    return out
