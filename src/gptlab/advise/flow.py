"""Draw the rule table as a mermaid decision flow, so the figure can never drift from the rules.

``python -m gptlab.advise.flow`` (or ``gptlab advise --flow``) prints it; the docs embed it.
"""
from __future__ import annotations

from gptlab.advise.rules import RULES, VERDICTS, Rule


def _escape(text: str) -> str:
    return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def _node(rule: Rule) -> str:
    return "r_" + rule.id.replace("-", "_")


def mermaid(rules: tuple[Rule, ...] = RULES) -> str:
    lines = ["flowchart LR", '  start(["your task, data and constraints"])']
    groups = [("guide", "the guide"), ("measured", "measured by the bake-off")]
    for verdict, label in VERDICTS.items():
        lines.append(f'  v_{verdict}[["{_escape(label)}"]]')
    for source, title in groups:
        for verdict in VERDICTS:
            rows = [r for r in rules if r.source == source and r.verdict == verdict]
            if not rows:
                continue
            sub = f"g_{source}_{verdict}"
            lines.append(f'  subgraph {sub} ["{_escape(title)}: for {verdict}"]')
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


if __name__ == "__main__":
    print(mermaid(), end="")
