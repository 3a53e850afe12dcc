"""Draw the rule table as a decision flow, so the figure can never drift from the rules.

``gptlab advise --flow`` prints it as mermaid; ``python -m gptlab.advise.flow docs`` writes
``docs/advise-flow.mmd`` and ``docs/advise-flow.png`` (tests check both are current).
"""
from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path

from gptlab.advise.rules import OUTCOMES, RULES, VERDICTS, Rule
from gptlab.manifest import atomic_path, atomic_write

COLOURS = {"prompt": "#dbe9f6", "finetune": "#e3f1dc", "hybrid": "#fbe8c8", "retrieval": "#eadff3",
           "check": "#eeeeee"}


def _escape(text: str) -> str:
    return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def _node(rule: Rule) -> str:
    return "r_" + rule.id.replace("-", "_")


def mermaid(rules: tuple[Rule, ...] = RULES) -> str:
    lines = ["flowchart LR", '  start(["your task, data and constraints"])']
    groups = [("guide", "the guide"), ("measured", "measured by the bake-off")]
    for verdict, label in OUTCOMES.items():
        lines.append(f'  v_{verdict}[["{_escape(label)}"]]')
    for source, title in groups:
        for verdict in OUTCOMES:
            rows = [r for r in rules if r.source == source and r.verdict == verdict]
            if not rows:
                continue
            sub = f"g_{source}_{verdict}"
            what = f"for {verdict}" if verdict in VERDICTS else "to measure, no vote"
            lines.append(f'  subgraph {sub} ["{_escape(title)}: {what}"]')
            lines.append("    direction TB")
            for r in rows:
                lines.append(f'    {_node(r)}{{{{"{r.id} (+{r.weight})<br/>{_escape(str(r.when))}"}}}}')
            lines.append("  end")
            lines.append(f"  start --> {sub}")
            lines.append(f"  {sub} --> v_{verdict}")
    for r in rules:
        for other in r.supersedes:
            lines.append(f"  {_node(r)} -. supersedes .-> r_{other.replace('-', '_')}")
    return "\n".join(lines) + "\n"


def markdown_table(rules: tuple[Rule, ...] = RULES) -> str:
    """The rule table as markdown, for the docs."""
    lines = ["| rule | votes for | weight | fires when | because |", "|---|---|---|---|---|"]
    for r in rules:
        when = str(r.when).replace("|", "\\|")
        lines.append(f"| `{r.id}` | {r.verdict} | {r.weight} | `{when}` | {r.reason} |")
    return "\n".join(lines) + "\n"


def table_hash(rules: tuple[Rule, ...] = RULES) -> str:
    """A fingerprint of the table, stored in the PNG so a test can tell a stale figure."""
    rows = [[r.id, r.verdict, r.weight, str(r.when), r.source, list(r.supersedes)] for r in rules]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]


def png(path: str | Path, rules: tuple[Rule, ...] = RULES) -> Path:
    """The flow as a picture: one box per row, grouped by the verdict its arrow points to."""

    import matplotlib  # noqa: PLC0415  (optional and slow to import; only for plots)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415  (optional and slow to import; only for plots)


    order = sorted(rules, key=lambda r: (list(OUTCOMES).index(r.verdict), r.source != "guide"))
    texts = [textwrap.fill(f"{r.id} (+{r.weight}):  {r.when}", 96, subsequent_indent="    ") for r in order]
    heights = [t.count("\n") + 1.6 for t in texts]          # in text lines, with a gap between boxes
    group_gap = 2.5                                           # between verdicts, so their boxes never touch
    total = sum(heights) + 2 + group_gap * (len({r.verdict for r in order}) - 1)
    fig, ax = plt.subplots(figsize=(12, 0.16 * total + 0.6))
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    box = dict(boxstyle="round,pad=0.3", lw=0.8)
    ax.text(0.0, 1.0, "Prompt a large LLM or fine-tune a smaller model?  (+weight; dashed rows are measured "
            "by `gptlab advise bakeoff`)", fontsize=10, weight="bold", va="top")
    ys: dict[str, list[float]] = {v: [] for v in OUTCOMES}
    used = 2.0
    for i, (r, text, h) in enumerate(zip(order, texts, heights)):
        if i and r.verdict != order[i - 1].verdict:
            used += group_gap
        y = 1.0 - (used + h / 2) / total
        used += h
        ys[r.verdict].append(y)
        ax.text(0.0, y, text, fontsize=7.5, va="center", family="monospace",
                bbox=dict(box, fc=COLOURS[r.verdict], ls="--" if r.source == "measured" else "-"))
    for verdict, label in OUTCOMES.items():
        if not ys[verdict]:
            continue
        vy = sum(ys[verdict]) / len(ys[verdict])
        ax.text(0.75, vy, textwrap.fill(label, 28), fontsize=9, weight="bold", va="center",
                bbox=dict(box, fc=COLOURS[verdict], lw=1.5))
        for y in ys[verdict]:
            ax.annotate("", xy=(0.745, vy), xytext=(0.64, y), arrowprops=dict(arrowstyle="->", lw=0.6, color="#777777"))
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90, bbox_inches="tight",
                    metadata={"Description": f"rule-table {table_hash(rules)}"})
    plt.close(fig)
    return path


def _replace_generated(text: str, name: str, body: str) -> str:
    start, end = f"<!-- generated: {name} -->\n", "<!-- end generated -->"
    a = text.index(start) + len(start)
    return text[:a] + body + text[text.index(end, a):]


def write_docs(docs_dir: str | Path) -> None:
    """Regenerate every copy of the flow: the .mmd and .png files and the parts of advise.md."""
    docs = Path(docs_dir)
    atomic_write(docs / "advise-flow.mmd", mermaid())
    png(docs / "advise-flow.png")
    page = (docs / "advise.md").read_text(encoding="utf-8")
    page = _replace_generated(page, "flow", f"```mermaid\n{mermaid()}```\n")
    page = _replace_generated(page, "table", markdown_table())
    atomic_write(docs / "advise.md", page)


if __name__ == "__main__":
    import sys
    if len(sys.argv) > 1:
        write_docs(sys.argv[1])
    else:
        print(mermaid(), end="")
