"""What the advisor asks about a task, and the three ways to answer: YAML, flags, or prompts.

Every answer may stay unknown (``None`` or ``"unknown"``); a rule whose conditions touch an
unknown answer simply does not fire. The ``measured_*`` answers are normally filled in by
``gptlab advise bakeoff`` from the user's own labelled data, but can be given by hand.
"""
from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

from rich.console import Console
from rich.prompt import Prompt

from gptlab.schema import ConfigError, apply, bounded, choices_of, validate

UNKNOWN = "unknown"

Task = Literal["unknown", "classification", "reading_comprehension", "closed_book_qa", "reasoning", "commonsense",
               "code", "summarisation", "writing", "translation", "cloze", "chatbot", "multilingual_qa",
               "multilingual_generation", "regression", "other"]
TASKS = typing.get_args(Task)


@dataclass
class Answers:
    # --- the task itself
    task: Task = UNKNOWN
    translation: Literal["unknown", "into_english", "out_of_english", "between_high_resource"] = UNKNOWN
    tests_available: bool | None = None
    language: Literal["unknown", "english", "high_resource", "low_resource"] = UNKNOWN
    task_kinds: int | None = bounded(1, None, default=None)
    multimodal: bool | None = None
    knowledge: Literal["unknown", "none", "in_context", "world"] = UNKNOWN
    retrieval: bool | None = None
    needs_emergent: bool | None = None
    flat_scaling: bool | None = None
    mimic_humans: bool | None = None
    counterfactual: bool | None = None
    spurious: bool | None = None
    # --- the data
    labels: int | None = bounded(0, None, default=None)
    distribution: Literal["unknown", "in_distribution", "shifted"] = UNKNOWN
    # --- deployment constraints
    api_affordable: bool | None = None
    data_may_leave: bool | None = None
    large_model_hosting: bool | None = None
    llm_may_label: bool | None = None
    latency_ms: float | None = bounded(0.0, None, default=None)
    budget_usd_per_1k: float | None = bounded(0.0, None, default=None)
    # --- beyond accuracy (HELM measures these beside it)
    harmful_content: bool | None = None
    toxicity_matters: bool | None = None
    fairness_matters: bool | None = None
    # --- measured by the bake-off
    measured_winner: Literal["unknown", "prompt", "finetune", "tie"] = UNKNOWN
    measured_cheaper: Literal["unknown", "prompt", "finetune"] = UNKNOWN
    measured_hybrid: Literal["unknown", "keeps_quality", "loses_quality"] = UNKNOWN
    measured_prompt_latency_ms: float | None = bounded(0.0, None, default=None)
    measured_prompt_usd_per_1k: float | None = bounded(0.0, None, default=None)
    # per-example score of the best fine-tuned arm minus the prompted arm's, with its 95% interval
    measured_difference: float | None = bounded(-1.0, 1.0, default=None)
    measured_difference_low: float | None = bounded(-1.0, 1.0, default=None)
    measured_difference_high: float | None = bounded(-1.0, 1.0, default=None)
    # the same for the hybrid arm (a small model trained on the prompted LM's labels) minus the prompted arm
    measured_hybrid_difference: float | None = bounded(-1.0, 1.0, default=None)
    measured_hybrid_difference_low: float | None = bounded(-1.0, 1.0, default=None)
    measured_hybrid_difference_high: float | None = bounded(-1.0, 1.0, default=None)


# One question per answer, in the order the interactive mode asks them.
QUESTIONS: dict[str, str] = {
    "task": "What kind of task is it?",
    "translation": "If it is translation: which direction?",
    "tests_available": "If it is code: can a candidate be checked automatically (unit tests)?",
    "language": "Which language are the inputs in (for translation, the source; mid-resource counts as low)?",
    "task_kinds": "How many different kinds of task must one system handle?",
    "multimodal": "Do the inputs or outputs include images, audio or video, not only text?",
    "knowledge": "Where does the knowledge to solve it live (none needed, in the input, the world)?",
    "retrieval": "Could a retrieval step (search, a document store) supply that knowledge?",
    "needs_emergent": "Does it need multi-step reasoning (chain of thought, hard BIG-Bench-like tasks)?",
    "flat_scaling": "Is it like the BIG-Bench tasks where larger models did no better (navigate, mathematical "
                    "induction from false premises)?",
    "mimic_humans": "Must the system mimic a human (open conversation, persona)?",
    "counterfactual": "Does the task contradict common world knowledge (redefined maths, modified quotes)?",
    "spurious": "Is the task prone to spurious correlations (negation, shortcut cues)?",
    "labels": "How many labelled examples do you have?",
    "distribution": "Will the inputs at use look like your labelled data (in_distribution) or drift (shifted)?",
    "api_affordable": "Is calling a large-LLM API for every request within budget?",
    "data_may_leave": "May the data leave your premises (be sent to an API)?",
    "large_model_hosting": "Can you host or reach a large model with the hardware and engineering you have?",
    "llm_may_label": "May a large model label or generate training data offline (hosted or local), even if it "
                     "cannot serve requests?",
    "latency_ms": "Latency budget per request, in milliseconds (blank if none)?",
    "budget_usd_per_1k": "Budget in USD per 1,000 requests (blank if none)?",
    "harmful_content": "Would harmful generated content (unsafe advice, abuse) reaching users be a serious risk?",
    "toxicity_matters": "Must the outputs' toxicity be measured and kept low?",
    "fairness_matters": "Must it work equally well for different groups of people (fairness, bias)?",
}

# Asked interactively only when an earlier answer makes them relevant (flags and YAML may always give them).
ASK_ONLY_IF: dict[str, Callable[[dict[str, Any]], bool]] = {
    "translation": lambda d: d.get("task") == "translation",
    "tests_available": lambda d: d.get("task") == "code",
    "retrieval": lambda d: d.get("knowledge") == "world" or d.get("task") == "closed_book_qa",
}


def _hints() -> dict[str, Any]:
    return typing.get_type_hints(Answers)


def answers_from_dict(data: dict[str, Any], source: str = "answers") -> Answers:
    """Validate a mapping into Answers; errors are one line naming the source and key."""

    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of answers, got {type(data).__name__}")
    ans = Answers()
    try:
        apply(ans, {k: v for k, v in data.items() if v is not None})
        validate(ans)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    return ans


def load_answers(path: str | Path) -> Answers:
    import yaml  # noqa: PLC0415  (optional extra (gptlab[advise]): YAML answers)

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{p}: answers file not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: invalid YAML ({str(e).splitlines()[0]})") from None
    return answers_from_dict(data, source=str(p))


def to_dict(ans: Answers) -> dict[str, Any]:
    return dataclasses.asdict(ans)


def merge_answers(base: Answers, **known: Any) -> Answers:
    """``base`` with the given answers filled in (``None`` values are ignored)."""
    data = {k: v for k, v in to_dict(base).items() if v is not None and v != UNKNOWN}
    data.update({k: v for k, v in known.items() if v is not None})
    return answers_from_dict(data)


# ----------------------------------------------------------------------------- flags

def _base_type(tp: Any) -> Any:
    if choices_of(tp):
        return str
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if args else tp


def _parse_bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("yes", "y", "true", "1"):
        return True
    if t in ("no", "n", "false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected yes or no, got {text!r}")


MEASURED = tuple(f.name for f in dataclasses.fields(Answers) if f.name.startswith("measured_"))


def add_answer_arguments(parser: argparse.ArgumentParser, exclude: tuple[str, ...] = ()) -> None:
    """One ``--flag`` per answer (``--task classification --labels 5000 --data-may-leave no``)."""
    hints = _hints()
    group = parser.add_argument_group("answers (each one optional)")
    for f in dataclasses.fields(Answers):
        if f.name in exclude:
            continue
        tp = _base_type(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        help_text = QUESTIONS.get(f.name, "filled in by the bake-off; may be given by hand")
        kwargs: dict[str, Any] = {"dest": f"answer_{f.name}", "default": None, "help": help_text}
        if choices_of(hints[f.name]):
            kwargs["choices"] = [c for c in choices_of(hints[f.name]) if c != UNKNOWN]
        elif tp is bool:
            kwargs["type"], kwargs["metavar"] = _parse_bool, "yes|no"
        elif tp in (int, float):
            kwargs["type"], kwargs["metavar"] = tp, "N"
        group.add_argument(flag, **kwargs)


def answers_from_args(args: argparse.Namespace) -> dict[str, Any]:
    return {f.name: getattr(args, f"answer_{f.name}") for f in dataclasses.fields(Answers)
            if getattr(args, f"answer_{f.name}", None) is not None}


# ----------------------------------------------------------------------------- interactive

def ask_interactive(console=None, stream=None) -> Answers:
    """Ask every question with rich prompts; Enter keeps an answer unknown."""

    console = console or Console()
    hints = _hints()
    data: dict[str, Any] = {}
    for name, question in QUESTIONS.items():
        tp = _base_type(hints[name])
        if name in ASK_ONLY_IF and not ASK_ONLY_IF[name](data):
            continue
        choices = list(choices_of(hints[name]))
        if tp is bool:
            choices = [UNKNOWN, "yes", "no"]
        while True:
            raw = Prompt.ask(question, console=console, stream=stream, choices=choices or None,
                             default=UNKNOWN if choices else "", show_default=bool(choices))
            raw = raw.strip()
            if raw in ("", UNKNOWN):
                break
            try:
                data[name] = _parse_bool(raw) if tp is bool else tp(raw)
                answers_from_dict({name: data[name]})
                break
            except (ValueError, argparse.ArgumentTypeError, ConfigError) as e:
                data.pop(name, None)
                console.print(f"[red]{e}[/red]")
    return answers_from_dict(data, source="interactive answers")
