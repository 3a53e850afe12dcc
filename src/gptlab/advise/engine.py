"""The small engine that turns answers into a recommendation, using the rule table.

1. Every row whose condition holds *fires*.
2. A fired row that another fired row supersedes keeps its place in the explanation but
   loses its vote (e.g. the hybrid row replaces "few labels" + "latency").
3. Each remaining row adds its weight to its verdict; the heaviest verdict wins. Ties go
   to the option that is cheaper to run: fine-tune, then retrieval, hybrid, prompt.
4. Confidence is the winner's share of all votes, damped when there is little evidence:
   ``winner / (total + 2)``. One weight-2 row alone gives 0.5; several agreeing rows
   approach 1; a split vote stays low.
5. ``check`` rows vote for nothing; they add what to measure to the notes.

When the bake-off has run, its numbers (the ``measured_*`` answers) are quoted in the
reasons of the rows they made fire and in the recommendation itself.
"""
from __future__ import annotations

import string
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from gptlab.advise.answers import UNKNOWN, Answers, to_dict
from gptlab.advise.rules import FEW_LABELS, FINETUNE, HYBRID, PROMPT, RETRIEVAL, RULES, VERDICTS, Rule

TIE_ORDER = (FINETUNE, RETRIEVAL, HYBRID, PROMPT)
EVIDENCE_DAMPING = 2.0


@dataclass
class Fired:
    id: str
    verdict: str
    weight: int
    reason: str
    condition: str
    source: str
    superseded_by: str | None = None


@dataclass
class Advice:
    recommendation: str
    summary: str
    confidence: float
    level: str
    scores: dict[str, int]
    fired: list[Fired]
    notes: list[str] = field(default_factory=list)
    answers: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _known(value: Any) -> bool:
    return value is not None and value != UNKNOWN


def reason_with_evidence(rule: Rule, ans: Answers) -> str:
    """The row's reason, followed by its numbers when every answer they quote is known."""
    if not rule.evidence:
        return rule.reason
    values = to_dict(ans)
    names = {name for _, name, _, _ in string.Formatter().parse(rule.evidence) if name}
    if not all(_known(values[n]) for n in names):
        return rule.reason
    return f"{rule.reason} ({rule.evidence.format(**values)})"


def measured_numbers(ans: Answers) -> str:
    """What the bake-off measured, in one phrase ("" when it has not run)."""
    parts = []
    if _known(ans.measured_winner):
        parts.append(f"winner {ans.measured_winner}")
    for label, name in (("fine-tuned", "measured_difference"), ("hybrid", "measured_hybrid_difference")):
        diff, lo, hi = (getattr(ans, name + tail) for tail in ("", "_low", "_high"))
        if diff is not None:
            interval = f" [{lo:+.3f}, {hi:+.3f}]" if lo is not None and hi is not None else ""
            parts.append(f"{label} − prompted score {diff:+.3f}{interval}")
    cost = []
    if ans.measured_prompt_latency_ms is not None:
        cost.append(f"{ans.measured_prompt_latency_ms:.1f} ms per example")
    if ans.measured_prompt_usd_per_1k is not None:
        cost.append(f"{ans.measured_prompt_usd_per_1k:.3g} USD per 1,000 examples")
    if cost:
        parts.append("prompting " + " and ".join(cost))
    return ", ".join(parts)


def fired_rules(ans: Answers, rules: tuple[Rule, ...] = RULES) -> list[Fired]:
    hits = [r for r in rules if r.when.holds(ans)]
    ids = {r.id for r in hits}
    out = []
    for r in hits:
        by = next((o.id for o in hits if r.id in o.supersedes and o.id in ids), None)
        out.append(Fired(r.id, r.verdict, r.weight, reason_with_evidence(r, ans), str(r.when), r.source,
                         superseded_by=by))
    return out


def _level(confidence: float) -> str:
    return "high" if confidence >= 0.7 else "medium" if confidence >= 0.45 else "low"


def advise(ans: Answers, rules: tuple[Rule, ...] = RULES) -> Advice:
    fired = fired_rules(ans, rules)
    scores = {v: 0 for v in VERDICTS}
    for f in fired:
        if f.superseded_by is None and f.verdict in scores:     # check rows have no verdict to vote for
            scores[f.verdict] += f.weight
    total = sum(scores.values())
    notes = [r.note for r in rules if r.note and any(f.id == r.id and f.superseded_by is None for f in fired)]
    measured = measured_numbers(ans)
    if total == 0:
        # Nothing known yet: prompting needs no labels and no training, so it is the cheapest first try.
        what = "no rule voted" if fired else "no rule fired"
        summary = VERDICTS[PROMPT] + (f" (measured on your data: {measured})" if measured else "")
        return Advice(PROMPT, summary, 0.0, "none", scores, fired,
                      notes + [f"{what}: answer more questions, or measure with `gptlab advise bakeoff`"],
                      to_dict(ans))
    best = max(TIE_ORDER, key=lambda v: (scores[v], -TIE_ORDER.index(v)))
    confidence = scores[best] / (total + EVIDENCE_DAMPING)
    summary = VERDICTS[best]
    if best == PROMPT:
        zero = any(f.id == "cloze-zero-shot" and f.superseded_by is None for f in fired) or ans.labels == 0
        summary = "prompt an LLM, " + ("zero-shot" if zero else "few-shot")
    if measured:
        summary += f" (measured on your data: {measured})"
    if best in (FINETUNE, RETRIEVAL) and ans.labels is not None and ans.labels < FEW_LABELS:
        # The constraints rule the LLM out, but the small model still has to learn from something.
        notes.append(f"fine-tuning needs labelled examples and you have {ans.labels}: label more first "
                     "(by hand, or with a large model where one may see the data)")
    return Advice(best, summary, round(confidence, 3), _level(confidence), scores, fired, notes, to_dict(ans))


def render(advice: Advice, console=None) -> None:
    """A readable rich rendering: the verdict, its confidence, and every rule that fired."""

    console = console or Console()
    console.print(f"[bold]Recommendation:[/bold] {advice.summary}  "
                  f"[dim](confidence {advice.confidence:.2f}, {advice.level})[/dim]")
    votes = ", ".join(f"{k} {v}" for k, v in advice.scores.items() if v)
    if votes:
        console.print(f"[dim]votes: {votes}[/dim]")
    if advice.fired:
        t = Table(show_lines=False)
        t.add_column("rule", no_wrap=True)
        t.add_column("votes for", no_wrap=True)
        t.add_column("+", justify="right")
        t.add_column("because", ratio=1)
        for f in advice.fired:
            rule = f.id + (" (measured)" if f.source == "measured" else "")
            if f.superseded_by is None:
                t.add_row(rule, f.verdict, str(f.weight), f.reason)
            else:
                t.add_row(f"[dim]{rule}[/dim]", f"[dim]{f.verdict}[/dim]", "0",
                          f"[dim](superseded by {f.superseded_by})[/dim] {f.reason}")
        console.print(t)
    for n in advice.notes:
        console.print(f"note: {n}")
