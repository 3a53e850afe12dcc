"""The decision guide as a data table: one row per case, read top to bottom.

Each row says *when* it fires (conditions on :class:`~gptlab.advise.answers.Answers`),
which way it votes, how strongly, and why. The engine (``engine.py``) adds up the votes;
the decision-flow figure in the docs is drawn from this same table (``flow.py``). To add
a case, add a row here and a test in ``tests/advise/test_rules.py``.

The guide's cases come from the section "In which tasks should we use GPT-3.5/ChatGPT?"
of the post the project is built from; the ``measured-*`` rows turn bake-off numbers into
votes.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, Callable

from gptlab.advise.answers import UNKNOWN, Answers

PROMPT, FINETUNE, HYBRID, RETRIEVAL = "prompt", "finetune", "hybrid", "retrieval"
VERDICTS = {
    PROMPT: "prompt an LLM, zero- or few-shot",
    FINETUNE: "fine-tune a smaller model",
    HYBRID: "hybrid: an LLM labels data offline, then a smaller model is fine-tuned on it",
    RETRIEVAL: "a retrieval-augmented smaller model",
}

# Below this many labels, fine-tuning rarely matches few-shot prompting (the guide's "few or no labels").
FEW_LABELS = 100
# A large hosted LLM rarely answers in under a second; a budget below that rules it out online.
LARGE_LLM_LATENCY_MS = 1000.0


# ----------------------------------------------------------------------------- conditions

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge, "in": lambda a, b: a in b,
}


@dataclass(frozen=True)
class Ref:
    """A condition value that is another answer (compare two answers with each other)."""
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Cond:
    """``answers.<name> <op> <value>``. An unknown answer never satisfies a condition."""
    name: str
    op: str
    value: Any

    def holds(self, ans: Answers) -> bool:
        got = getattr(ans, self.name)
        want = getattr(ans, self.value.name) if isinstance(self.value, Ref) else self.value
        if got is None or got == UNKNOWN or want is None or want == UNKNOWN:
            return False
        return _OPS[self.op](got, want)

    def names(self) -> set[str]:
        return {self.name} | ({self.value.name} if isinstance(self.value, Ref) else set())

    def __str__(self) -> str:
        v = self.value
        if isinstance(v, bool):
            v = "yes" if v else "no"
        elif isinstance(v, tuple):
            v = "{" + ", ".join(v) + "}"
        return f"{self.name} {self.op} {v}"


@dataclass(frozen=True)
class AllOf:
    parts: tuple

    def holds(self, ans: Answers) -> bool:
        return all(p.holds(ans) for p in self.parts)

    def names(self) -> set[str]:
        return set().union(*(p.names() for p in self.parts))

    def __str__(self) -> str:
        return " and ".join(f"({p})" if isinstance(p, AnyOf) else str(p) for p in self.parts)


@dataclass(frozen=True)
class AnyOf:
    parts: tuple

    def holds(self, ans: Answers) -> bool:
        return any(p.holds(ans) for p in self.parts)

    def names(self) -> set[str]:
        return set().union(*(p.names() for p in self.parts))

    def __str__(self) -> str:
        return " or ".join(f"({p})" if isinstance(p, AllOf) else str(p) for p in self.parts)


def is_(name: str, value: Any) -> Cond:
    return Cond(name, "==", value)


def one_of(name: str, *values: str) -> Cond:
    return Cond(name, "in", tuple(values))


def below(name: str, value: Any) -> Cond:
    return Cond(name, "<", value)


def at_least(name: str, value: Any) -> Cond:
    return Cond(name, ">=", value)


def above(name: str, value: Any) -> Cond:
    return Cond(name, ">", value)


def all_of(*parts) -> AllOf:
    return AllOf(tuple(parts))


def any_of(*parts) -> AnyOf:
    return AnyOf(tuple(parts))


# ----------------------------------------------------------------------------- the table

@dataclass(frozen=True)
class Rule:
    id: str
    verdict: str
    weight: int
    when: Cond | AllOf | AnyOf
    reason: str
    source: str = "guide"                     # "guide" (the post's cases) or "measured" (bake-off)
    supersedes: tuple[str, ...] = field(default=())   # rows whose votes this row replaces when both fire
    note: str = ""                            # extra advice shown with the recommendation


LARGE_MODEL_RULED_OUT = any_of(is_("large_model_hosting", False), below("latency_ms", LARGE_LLM_LATENCY_MS))
CREATIVE = any_of(one_of("task", "code", "summarisation", "writing"),
                  all_of(is_("task", "translation"), is_("translation", "into_english")))
EMERGENT = any_of(is_("task", "reasoning"), is_("needs_emergent", True))

RULES: tuple[Rule, ...] = (
    # ---- prompting a large LLM is the better choice
    Rule("creative-generation", PROMPT, 2, CREATIVE,
         "Creative and complex generation (code, summaries, writing, translation into English) is hard "
         "to label, and prompted LLMs match or beat fine-tuned models there.",
         supersedes=("low-resource-language",)),
    Rule("few-labels", PROMPT, 3, below("labels", FEW_LABELS),
         f"With fewer than {FEW_LABELS} labels a fine-tuned small model rarely matches zero/few-shot prompting."),
    Rule("out-of-distribution", PROMPT, 2, is_("distribution", "shifted"),
         "Fine-tuning can overfit the labelled distribution; in-context learning generalises better "
         "out of distribution."),
    Rule("many-tasks", PROMPT, 2, any_of(is_("task", "chatbot"), at_least("task_kinds", 3)),
         "One system handling many kinds of task (a chatbot) is what a general prompted LLM does well."),
    Rule("knowledge-without-retrieval", PROMPT, 2,
         all_of(any_of(is_("knowledge", "world"), is_("task", "closed_book_qa")), is_("retrieval", False)),
         "Knowledge-intensive tasks where retrieval is not possible rely on the knowledge stored in a "
         "large model's weights."),
    Rule("emergent-reasoning", PROMPT, 2, EMERGENT,
         "Multi-step reasoning (chain of thought, hard BIG-Bench tasks) needs abilities that emerge "
         "only at large scale."),
    Rule("mimic-humans", PROMPT, 2, is_("mimic_humans", True),
         "Mimicking a human across open-ended exchanges is a large LLM's design goal."),
    Rule("cloze-zero-shot", PROMPT, 2, is_("task", "cloze"),
         "Cloze- and anaphora-like tasks are close to language modelling: a large LLM does them well.",
         note="zero-shot is enough here; few-shot examples add little"),

    # ---- fine-tuning a smaller model is the better choice
    Rule("api-out-of-budget", FINETUNE, 3, is_("api_affordable", False),
         "Calling a large-LLM API for every request is out of budget."),
    Rule("data-stays-on-premises", FINETUNE, 3, is_("data_may_leave", False),
         "The data must not leave the premises, so a hosted LLM API is out."),
    Rule("latency-or-hardware", FINETUNE, 3, LARGE_MODEL_RULED_OUT,
         f"The latency budget (under {LARGE_LLM_LATENCY_MS:.0f} ms) or the hardware at hand rules out "
         "serving a large model."),
    Rule("nlu-in-distribution", FINETUNE, 2,
         all_of(is_("task", "classification"), is_("distribution", "in_distribution"),
                at_least("labels", FEW_LABELS)),
         "Traditional NLU with in-distribution labels: fine-tuned smaller models beat few-shot prompting "
         "of much larger ones (e.g. on SuperGLUE)."),
    Rule("reading-comprehension", FINETUNE, 2,
         any_of(is_("task", "reading_comprehension"), is_("knowledge", "in_context")),
         "When the knowledge is in the input (reading comprehension), a large model's stored knowledge "
         "adds little and fine-tuned models lead by large gaps."),
    Rule("low-resource-language", FINETUNE, 2, is_("language", "low_resource"),
         "Low-resource languages are thin in LLM pretraining data; a fine-tuned model does better."),
    Rule("translation-out-of-english", FINETUNE, 2,
         all_of(is_("task", "translation"), one_of("translation", "out_of_english", "between_high_resource")),
         "Translation out of English, or between high-resource languages, is still done better by "
         "fine-tuned translation models."),
    Rule("multilingual-qa-generation", FINETUNE, 2, one_of("task", "multilingual_qa", "multilingual_generation"),
         "Multilingual QA and generation show large gaps between few-shot LLMs and fine-tuned models."),
    Rule("commonsense-benchmarks", FINETUNE, 2, is_("task", "commonsense"),
         "On commonsense-reasoning benchmarks (OpenBookQA, ARC, CommonsenseQA) fine-tuned models still lead."),
    Rule("counterfactual-knowledge", FINETUNE, 2, is_("counterfactual", True),
         "Knowledge against the pretraining prior (redefined maths, modified quotes) is hard to impose by "
         "prompting; fine-tuning adapts better."),
    Rule("spurious-correlations", FINETUNE, 2, is_("spurious", True),
         "Tasks prone to spurious correlations (negation) mislead in-context learning."),
    Rule("non-lm-objective", FINETUNE, 3, is_("task", "regression"),
         "An objective unlike language modelling (regression) is a poor fit for a prompted LLM."),
    Rule("no-emergent-ability", FINETUNE, 1, is_("needs_emergent", False),
         "The task needs no emergent ability, so a smaller model has the capacity it needs."),

    # ---- the two middle roads
    Rule("hybrid-offline-labelling", HYBRID, 4,
         all_of(any_of(below("labels", FEW_LABELS), CREATIVE, EMERGENT), LARGE_MODEL_RULED_OUT),
         "The task calls for an LLM (few labels, open-ended generation or reasoning), but no large model "
         "can serve it online: let the LLM label or generate data offline, and fine-tune a smaller model "
         "on that data.",
         supersedes=("few-labels", "creative-generation", "emergent-reasoning", "latency-or-hardware")),
    Rule("retrieval-augmented", RETRIEVAL, 3,
         all_of(any_of(is_("knowledge", "world"), is_("task", "closed_book_qa")), is_("retrieval", True)),
         "Knowledge-intensive, and retrieval is possible: a retrieval-augmented smaller model (Atlas-like) "
         "can beat a closed-book LLM."),

    # ---- measured on the user's own data by `gptlab advise bakeoff`
    # A significant difference on the user's own data outweighs any two rows of the guide.
    Rule("measured-finetune-wins", FINETUNE, 6, is_("measured_winner", "finetune"),
         "On your data the fine-tuned arm scored higher, and the difference's confidence interval excludes zero.",
         source="measured"),
    Rule("measured-prompt-wins", PROMPT, 6, is_("measured_winner", "prompt"),
         "On your data the prompted arm scored higher, and the difference's confidence interval excludes zero.",
         source="measured"),
    Rule("measured-tie-finetune-cheaper", FINETUNE, 2,
         all_of(is_("measured_winner", "tie"), is_("measured_cheaper", "finetune")),
         "On your data the arms are statistically tied, and the fine-tuned arm costs less per example.",
         source="measured"),
    Rule("measured-tie-prompt-cheaper", PROMPT, 2,
         all_of(is_("measured_winner", "tie"), is_("measured_cheaper", "prompt")),
         "On your data the arms are statistically tied, and the prompted arm costs less per example.",
         source="measured"),
    Rule("measured-hybrid-keeps-quality", HYBRID, 6,
         all_of(is_("measured_hybrid", "keeps_quality"),
                any_of(above("measured_prompt_latency_ms", Ref("latency_ms")),
                       above("measured_prompt_usd_per_1k", Ref("budget_usd_per_1k")), LARGE_MODEL_RULED_OUT)),
         "On your data a small model trained on the prompted LM's labels is not significantly worse than "
         "prompting, and prompting itself does not fit your latency, budget or hardware.",
         source="measured",
         supersedes=("measured-prompt-wins", "measured-tie-prompt-cheaper", "measured-latency-over-budget",
                     "measured-cost-over-budget", "latency-or-hardware")),
    Rule("measured-latency-over-budget", FINETUNE, 3, above("measured_prompt_latency_ms", Ref("latency_ms")),
         "The prompted model's measured latency per example exceeds your latency budget.", source="measured"),
    Rule("measured-cost-over-budget", FINETUNE, 3,
         above("measured_prompt_usd_per_1k", Ref("budget_usd_per_1k")),
         "The prompted model's estimated cost per 1,000 examples exceeds your budget.", source="measured"),
)

