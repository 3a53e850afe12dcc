"""The decision guide as a data table: one row per case, read top to bottom.

Each row says *when* it fires (conditions on :class:`~gptlab.advise.answers.Answers`),
which way it votes, how strongly, and why. The engine (``engine.py``) adds up the votes;
the decision-flow figure in the docs is drawn from this same table (``flow.py``). To add
a case, add a row here and a test in ``tests/advise/test_rules.py``.

The guide's cases come from the section "In which tasks should we use GPT-3.5/ChatGPT?"
of the post the project is built from; the ``measured-*`` rows turn bake-off numbers into
votes. A ``check`` row votes for nothing: it names something to measure on every candidate
before choosing (HELM's dimensions beside accuracy, such as toxicity and fairness).
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
# Not a recommendation: a row of this kind (weight 0) only adds a thing to measure before choosing.
CHECK = "check"
OUTCOMES = {**VERDICTS, CHECK: "measure on every candidate before choosing (no vote)"}

# Below this many labels, fine-tuning rarely matches few-shot prompting (the guide's "few or no labels").
FEW_LABELS = 100
# From about this many labels on, studies find fine-tuned small models at least match few-shot prompting.
ENOUGH_LABELS = 1000
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
    # The numbers behind a fired row, as a format string over the answers (``{measured_difference:+.3f}``);
    # the engine appends it to the reason when every answer it names is known.
    evidence: str = ""


LARGE_MODEL_RULED_OUT = any_of(is_("large_model_hosting", False), below("latency_ms", LARGE_LLM_LATENCY_MS))
# LLMs write English well, so they beat fine-tuned MT only from low- or mid-resource languages into English.
INTO_ENGLISH_FROM_LOW = all_of(is_("task", "translation"), is_("translation", "into_english"),
                               is_("language", "low_resource"))
FINETUNED_MT_DIRECTION = all_of(is_("task", "translation"),
                                any_of(one_of("translation", "out_of_english", "between_high_resource"),
                                       all_of(is_("translation", "into_english"), is_("language", "high_resource"))))
CREATIVE = any_of(one_of("task", "code", "summarisation", "writing"), INTO_ENGLISH_FROM_LOW)
EMERGENT = any_of(is_("task", "reasoning"), is_("needs_emergent", True))
# Every hybrid row needs this: the road runs through a large model that sees the training data.
LLM_MAY_LABEL = is_("llm_may_label", True)
DIFFERENCE = ("fine-tuned minus prompted per-example score {measured_difference:+.3f}, 95% interval "
              "[{measured_difference_low:+.3f}, {measured_difference_high:+.3f}]")

RULES: tuple[Rule, ...] = (
    # ---- prompting a large LLM is the better choice
    Rule("creative-generation", PROMPT, 2, CREATIVE,
         "Creative and complex generation (code, summaries, writing, translation from a low- or "
         "mid-resource language into English) is hard to label, and prompted LLMs match or beat "
         "fine-tuned models there.",
         supersedes=("low-resource-language",)),
    Rule("code-pass-at-k", PROMPT, 1, all_of(is_("task", "code"), is_("tests_available", True)),
         "Code that tests can check suits a prompted LLM best when it may sample many candidates and "
         "keep one that passes; even Codex and PaLM need that to do well (pass@k).",
         note="for code, draw k samples per problem, keep one that passes the tests, and measure pass@k "
              "rather than a single greedy answer"),
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
    Rule("harmful-content", FINETUNE, 2, is_("harmful_content", True),
         "A hosted LLM may generate harmful content, which the post counts with data leakage among the "
         "security reasons not to call one; a smaller model trained on reviewed outputs, or one that "
         "only picks from a fixed label set, is easier to constrain and to audit.",
         note="whichever model serves, filter or review what it generates before it reaches users"),
    Rule("latency-or-hardware", FINETUNE, 3, LARGE_MODEL_RULED_OUT,
         f"The latency budget (under {LARGE_LLM_LATENCY_MS:.0f} ms) or the hardware at hand rules out "
         "serving a large model.",
         note="a large model that may still label data offline (--llm-may-label yes) opens the hybrid road "
              "for tasks that call for an LLM"),
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
    Rule("translation-mt-models", FINETUNE, 2, FINETUNED_MT_DIRECTION,
         "Translation out of English, from a high-resource language into English, or between "
         "high-resource languages is still done better by fine-tuned translation models than by "
         "prompted PaLM or ChatGPT."),
    Rule("multilingual-qa-generation", FINETUNE, 2, one_of("task", "multilingual_qa", "multilingual_generation"),
         "Multilingual QA and generation show large gaps between few-shot LLMs and fine-tuned models."),
    Rule("commonsense-benchmarks", FINETUNE, 2, is_("task", "commonsense"),
         "On commonsense-reasoning benchmarks (OpenBookQA, ARC, CommonsenseQA) fine-tuned models still lead."),
    Rule("scaling-does-not-help", FINETUNE, 2, is_("flat_scaling", True),
         "On some BIG-Bench tasks (navigate, mathematical induction) larger models did no better, and "
         "PaLM stumbled on false premises (\"2 is an odd integer\"): a large model's size buys nothing "
         "there, while a fine-tuned smaller model can adapt to the task.",
         supersedes=("emergent-reasoning",)),
    Rule("counterfactual-knowledge", FINETUNE, 2, is_("counterfactual", True),
         "Knowledge against the pretraining prior (redefined maths, modified quotes) is hard to impose by "
         "prompting; fine-tuning adapts better."),
    Rule("spurious-correlations", FINETUNE, 2, is_("spurious", True),
         "Tasks prone to spurious correlations (negation) mislead in-context learning."),
    Rule("non-lm-objective", FINETUNE, 3, is_("task", "regression"),
         "An objective unlike language modelling (regression) is a poor fit for a prompted LLM."),
    Rule("multimodal-inputs", FINETUNE, 3, is_("multimodal", True),
         "A text-only LLM cannot take images, audio or video; fine-tune a pretrained multimodal model "
         "instead (large pretrained multimodal models may change this)."),
    Rule("instruction-tuned-first", FINETUNE, 1, at_least("labels", ENOUGH_LABELS),
         f"With enough labels ({ENOUGH_LABELS:,} or more), the post's advice is to fine-tune an "
         "instruction-tuned small model (FLAN-T5) first: instruction tuning gives a small model part of "
         "what scale gives, and a later study finds few-shot GPT at best matching fine-tuned BERT at "
         "about that many labels.",
         note="start from an instruction-tuned checkpoint (FLAN-T5-class), not a base model, and compare it "
              "with prompting on your own data (`gptlab advise bakeoff`)"),
    Rule("no-emergent-ability", FINETUNE, 1, is_("needs_emergent", False),
         "The task needs no emergent ability, so a smaller model has the capacity it needs."),

    # ---- the two middle roads
    Rule("hybrid-offline-labelling", HYBRID, 4,
         all_of(any_of(below("labels", FEW_LABELS), CREATIVE, EMERGENT), LARGE_MODEL_RULED_OUT, LLM_MAY_LABEL),
         "The task calls for an LLM (few labels, open-ended generation or reasoning), but no large model "
         "can serve it online, and one may label offline: let it label or generate data, and fine-tune a "
         "smaller model on that data.",
         supersedes=("few-labels", "creative-generation", "emergent-reasoning", "latency-or-hardware")),
    Rule("distil-chain-of-thought", HYBRID, 1, all_of(EMERGENT, LARGE_MODEL_RULED_OUT, LLM_MAY_LABEL),
         "The reasoning the task needs can be distilled: a smaller model trained on a large model's "
         "step-by-step rationales picks up some of its chain-of-thought ability.",
         note="have the labelling LLM write its reasoning before each answer, and train the small model on "
              "reasoning plus answer"),
    Rule("retrieval-augmented", RETRIEVAL, 3,
         all_of(any_of(is_("knowledge", "world"), is_("task", "closed_book_qa")), is_("retrieval", True)),
         "Knowledge-intensive, and retrieval is possible: a retrieval-augmented smaller model (Atlas-like) "
         "can beat a closed-book LLM."),

    # ---- measured on the user's own data by `gptlab advise bakeoff`
    # A significant difference on the user's own data outweighs any two rows of the guide.
    # ---- beyond accuracy: no vote, something to measure on every candidate (HELM's other dimensions)
    Rule("measure-toxicity", CHECK, 0, any_of(is_("toxicity_matters", True), is_("harmful_content", True)),
         "Accuracy is not the only axis: HELM reports toxicity beside it for every model, and the post "
         "says such dimensions belong in the decision.",
         note="measure how often each candidate's outputs are toxic on inputs like yours, and prefer the "
              "one that stays within your bound"),
    Rule("measure-fairness", CHECK, 0, is_("fairness_matters", True),
         "Accuracy is not the only axis: HELM reports fairness and bias beside it for every model, and the "
         "post says such dimensions belong in the decision.",
         note="score each candidate separately for each group of people it will serve (and on inputs "
              "rewritten across dialects or names), not only on the whole test set"),

    # ---- measured on the user's own data by `gptlab advise bakeoff`
    # A significant difference on the user's own data outweighs any two rows of the guide.
    Rule("measured-finetune-wins", FINETUNE, 6, is_("measured_winner", "finetune"),
         "On your data the fine-tuned arm scored higher, and the difference's confidence interval excludes zero.",
         source="measured", evidence=DIFFERENCE),
    Rule("measured-prompt-wins", PROMPT, 6, is_("measured_winner", "prompt"),
         "On your data the prompted arm scored higher, and the difference's confidence interval excludes zero.",
         source="measured", evidence=DIFFERENCE),
    Rule("measured-tie-finetune-cheaper", FINETUNE, 2,
         all_of(is_("measured_winner", "tie"), is_("measured_cheaper", "finetune")),
         "On your data the arms are statistically tied, and the fine-tuned arm costs less per example.",
         source="measured", evidence=DIFFERENCE),
    Rule("measured-tie-prompt-cheaper", PROMPT, 2,
         all_of(is_("measured_winner", "tie"), is_("measured_cheaper", "prompt")),
         "On your data the arms are statistically tied, and the prompted arm costs less per example.",
         source="measured", evidence=DIFFERENCE),
    Rule("measured-hybrid-keeps-quality", HYBRID, 6,
         all_of(is_("measured_hybrid", "keeps_quality"), LLM_MAY_LABEL,
                any_of(above("measured_prompt_latency_ms", Ref("latency_ms")),
                       above("measured_prompt_usd_per_1k", Ref("budget_usd_per_1k")), LARGE_MODEL_RULED_OUT)),
         "On your data a small model trained on the prompted LM's labels is not significantly worse than "
         "prompting, and prompting itself does not fit your latency, budget or hardware.",
         source="measured",
         supersedes=("measured-prompt-wins", "measured-tie-prompt-cheaper", "measured-latency-over-budget",
                     "measured-cost-over-budget", "latency-or-hardware"),
         evidence="hybrid minus prompted per-example score {measured_hybrid_difference:+.3f}, 95% interval "
                  "[{measured_hybrid_difference_low:+.3f}, {measured_hybrid_difference_high:+.3f}]"),
    Rule("measured-latency-over-budget", FINETUNE, 3, above("measured_prompt_latency_ms", Ref("latency_ms")),
         "The prompted model's measured latency per example exceeds your latency budget.", source="measured",
         evidence="measured {measured_prompt_latency_ms:.1f} ms per example, budget {latency_ms:g} ms"),
    Rule("measured-cost-over-budget", FINETUNE, 3,
         above("measured_prompt_usd_per_1k", Ref("budget_usd_per_1k")),
         "The prompted model's estimated cost per 1,000 examples exceeds your budget.", source="measured",
         evidence="estimated {measured_prompt_usd_per_1k:.3g} USD per 1,000 examples, budget "
                  "{budget_usd_per_1k:g} USD"),
)

