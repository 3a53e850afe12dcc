"""Chain-of-thought k-shot prompting (Wei et al. 2022) with answer extraction, against answer-only prompting.

A CoT task row (one JSONL line; see docs/eval.md):

    {"kind": "cot", "question": "Tom has 3 apples and buys 2. How many now?",
     "rationale": "He starts with 3 and adds 2, so 3 + 2 = 5.", "answer": "5"}

``answer`` may be a list of accepted answers. Rows with a ``rationale`` can serve as
exemplars; the rationale of the row being asked is never shown. The prompt shows k exemplars,
each ``Q: question`` / ``A: rationale The answer is answer.``, separated by blank lines, then
``Q: question`` / ``A:``; the model continues greedily up to a blank line (the exemplar
separator) or the token limit. The answer-only baseline shows the *same* exemplars without
their rationales (``A: The answer is answer.``), so the two prompts differ only by the
reasoning and one extraction rule reads both. With k = 0 the CoT prompt ends
``A: Let's think step by step.`` (zero-shot CoT, Kojima et al. 2022).

Extraction (``"extract"`` on any row of the file; every row that names it must agree):

* ``answer_is`` (default): the text after the first "the answer is", up to a full stop,
  newline or the end;
* ``last_number``: the last number in the output (``1,234`` reads 1234);
* ``label``: with ``"labels": [...]``, the label that occurs first (whole words, any case)
  after "the answer is", or anywhere when the phrase is absent;
* ``regex``: with ``"pattern": "..."``, the first match's group 1 (or the whole match).

An extracted answer is correct if it equals an accepted answer as numbers (when both
parse as numbers) or else after SQuAD's normalisation. No extractable answer is wrong.
Accuracy gets a 95 % Wilson interval; the CoT − answer-only difference, measured on the
same rows, a paired percentile bootstrap over rows.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from gptlab.eval.generate import Sampling
from gptlab.eval.taskbase import TaskError, bootstrap_mean, draw_shots, lm_generate, normalize_answer, wilson

EXTRACT_MODES = ("answer_is", "last_number", "label", "regex")
STOP = ["\n\n", "\nQ:"]            # the blank line between exemplars, or a new question
ZERO_SHOT_COT = "Let's think step by step."

_ANSWER_IS = re.compile(r"the answer is\s*:?\s*(.*?)\s*(?:\.(?=\s|$)|\n|$)", re.IGNORECASE)
_NUMBER = re.compile(r"[-+]?\d+(?:,\d{3})*(?:\.\d+)?|[-+]?\.\d+")


@dataclass
class CotItem:
    question: str
    answers: list[str]
    rationale: str | None = None

    @classmethod
    def of(cls, x: CotItem | Mapping[str, Any]) -> CotItem:
        """A CotItem, or one from a ``{"question", "answer", "rationale"}`` mapping."""
        if isinstance(x, CotItem):
            return x
        ans = x["answer"] if isinstance(x["answer"], list) else [x["answer"]]
        return cls(x["question"], [str(a) for a in ans], x.get("rationale"))


@dataclass(frozen=True)
class Extractor:
    mode: str = "answer_is"
    labels: tuple[str, ...] = field(default_factory=tuple)
    pattern: str | None = None

    def __post_init__(self):
        if self.mode not in EXTRACT_MODES:
            raise ValueError(f"extract {self.mode!r} is not one of {', '.join(EXTRACT_MODES)}")
        if self.mode == "label" and not self.labels:
            raise ValueError("extract 'label' needs a non-empty label set")
        if self.mode == "regex":
            if not self.pattern:
                raise ValueError("extract 'regex' needs a pattern")
            re.compile(self.pattern)

    def __call__(self, text: str) -> str | None:
        return extract_answer(text, self)


# ----------------------------------------------------------------------------- extraction

def _after_answer_is(text: str) -> str | None:
    m = _ANSWER_IS.search(text)
    return m.group(1).strip() if m else None


def _number(s: str) -> float | None:
    s = s.strip().replace(",", "").rstrip(".")
    try:
        v = float(s)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def extract_answer(text: str, ex: Extractor = Extractor()) -> str | None:
    """The answer in a model's output under ``ex``, or None when there is none."""
    if ex.mode == "answer_is":
        got = _after_answer_is(text)
        return got or None
    if ex.mode == "last_number":
        found = _NUMBER.findall(text)
        return found[-1].replace(",", "") if found else None
    if ex.mode == "label":
        region = _after_answer_is(text)
        region = text if region is None else region
        best = None                                # (position, -length, label)
        for lab in ex.labels:
            m = re.search(r"(?<!\w)" + re.escape(lab) + r"(?!\w)", region, re.IGNORECASE)
            if m and (best is None or (m.start(), -len(lab)) < best[:2]):
                best = (m.start(), -len(lab), lab)
        return best[2] if best else None
    m = re.search(ex.pattern, text)
    if not m:
        return None
    return (m.group(1) if m.re.groups else m.group(0)).strip() or None


def is_correct(extracted: str | None, answers: Sequence[str]) -> bool:
    if extracted is None:
        return False
    for a in answers:
        x, y = _number(extracted), _number(a)
        if x is not None and y is not None:
            if abs(x - y) <= 1e-9 * max(1.0, abs(y)):
                return True
        elif normalize_answer(extracted) == normalize_answer(a):
            return True
    return False


# ----------------------------------------------------------------------------- prompts

def format_exemplar(item: CotItem, rationale: bool = True) -> str:
    reason = f"{item.rationale.strip()} " if rationale and item.rationale else ""
    return f"Q: {item.question.strip()}\nA: {reason}The answer is {item.answers[0]}."


def cot_prompt(shots: Sequence[CotItem], item: CotItem, rationale: bool = True) -> str:
    """The k-shot prompt of ``item``: with the exemplars' rationales (CoT) or without (answer-only)."""
    tail = f"Q: {item.question.strip()}\nA:"
    if rationale and not shots:
        tail += " " + ZERO_SHOT_COT
    return "\n\n".join([format_exemplar(s, rationale) for s in shots] + [tail])


def shot_candidates(pool: Sequence[CotItem], i: int | None) -> list[int]:
    """Pool rows that can be exemplars: those with a rationale, never row ``i`` itself."""
    return [j for j, e in enumerate(pool) if e.rationale and j != i]


# ----------------------------------------------------------------------------- statistics

def paired_difference(a: Sequence[float], b: Sequence[float], level: float = 0.95,
                      seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``a - b`` over the same rows, with its percentile bootstrap interval: (diff, low, high)."""
    d = [x - y for x, y in zip(a, b)]
    lo, hi = bootstrap_mean(d, level, seed)
    return (sum(d) / len(d) if d else 0.0), lo, hi


# ----------------------------------------------------------------------------- runner

def greedy_generator(model, tokenizer, max_new_tokens: int = 128) -> Callable[[str], str]:
    """prompt -> the model's greedy continuation up to a blank line (the prompt keeps room for it)."""
    def generate(prompt: str) -> str:
        return lm_generate(model, tokenizer, prompt, max_new_tokens, Sampling(temperature=0), stop=STOP)
    return generate


def evaluate_cot(generate: Callable[[str], str], items: Sequence[CotItem], pool: Sequence[CotItem] | None = None,
                 k: int = 0, extractor: Extractor = Extractor(), seed: int = 1234, answer_only: bool = True,
                 progress=None) -> dict:
    """CoT accuracy of ``items`` (and the answer-only baseline on the same exemplars).

    ``generate(prompt) -> text`` is the model (a fake one in tests). The k exemplars of row
    i are drawn, with (seed, i), from ``pool``'s rows that have a rationale; without a pool,
    from ``items``' other rows."""
    same = pool is None
    pool = items if same else pool
    modes = ("cot", "answer_only") if answer_only else ("cot",)
    rows = []
    for i, item in enumerate(items):
        shots = [pool[j] for j in draw_shots(i, shot_candidates(pool, i if same else None), k, seed)]
        row: dict[str, Any] = {"question": item.question, "answers": item.answers}
        for mode in modes:
            prompt = cot_prompt(shots, item, rationale=mode == "cot")
            out = generate(prompt)
            got = extractor(out)
            row[mode] = {"prompt": prompt, "output": out, "extracted": got, "correct": is_correct(got, item.answers)}
        rows.append(row)
        if progress is not None:
            progress(len(modes))
    n = len(rows)
    right = {m: [float(r[m]["correct"]) for r in rows] for m in modes}
    metrics = {"acc": sum(right["cot"]) / n if n else 0.0,
               "extracted": sum(r["cot"]["extracted"] is not None for r in rows) / n if n else 0.0}
    intervals = {"acc": list(wilson(int(sum(right["cot"])), n))}
    if answer_only:
        metrics["acc_answer_only"] = sum(right["answer_only"]) / n if n else 0.0
        intervals["acc_answer_only"] = list(wilson(int(sum(right["answer_only"])), n))
        diff, lo, hi = paired_difference(right["cot"], right["answer_only"], seed=seed)
        metrics["cot_minus_answer_only"] = diff
        intervals["cot_minus_answer_only"] = [lo, hi]
    return {"kind": "cot", "num_fewshot": k, "seed": seed, "n": n, "extract": extractor.mode,
            "metrics": metrics, "intervals": intervals, "rows": rows}


def cot_accuracy(model, tokenizer, exemplars: Sequence[CotItem | Mapping[str, Any]],
                 items: Sequence[CotItem | Mapping[str, Any]], k: int, *, extractor: Extractor = Extractor(),
                 max_new_tokens: int = 128, seed: int = 1234, answer_only: bool = True) -> dict:
    """For callers outside ``gptlab eval`` (the advisor's bake-off): k-shot CoT accuracy of a
    gptlab/HF causal LM on ``items``, exemplars drawn from ``exemplars`` (rows with a rationale).
    Items and exemplars are CotItems or ``{"question", "answer", "rationale"}`` dicts.

    Returns ``evaluate_cot``'s record: ``metrics`` (acc, acc_answer_only,
    cot_minus_answer_only, extracted), ``intervals`` (95 %), ``rows``."""
    pool = [CotItem.of(e) for e in exemplars]
    return evaluate_cot(greedy_generator(model, tokenizer, max_new_tokens), [CotItem.of(x) for x in items],
                        pool, k, extractor, seed, answer_only)


# ----------------------------------------------------------------------------- task-file rows

def parse_row(obj: Mapping[str, Any], where: str) -> CotItem:
    if not isinstance(obj.get("question"), str) or not obj["question"].strip():
        raise TaskError(f"{where}: key 'question' must be a non-empty string")
    if "answer" not in obj:
        raise TaskError(f"{where}: a cot row needs key 'answer'")
    ans = obj["answer"] if isinstance(obj["answer"], list) else [obj["answer"]]
    if not ans or not all(isinstance(a, (str, int, float)) and not isinstance(a, bool) and str(a).strip()
                          for a in ans):
        raise TaskError(f"{where}: key 'answer' must be a non-empty string or number, or a list of them")
    rationale = obj.get("rationale")
    if rationale is not None and not (isinstance(rationale, str) and rationale.strip()):
        raise TaskError(f"{where}: key 'rationale' must be a non-empty string")
    return CotItem(obj["question"], [str(a) for a in ans], rationale)


def parse_extractor(obj: Mapping[str, Any], where: str) -> Extractor | None:
    """The extraction rule a row names (None when it names none)."""
    if not any(key in obj for key in ("extract", "labels", "pattern")):
        return None
    mode = obj.get("extract", "answer_is")
    if mode not in EXTRACT_MODES:
        raise TaskError(f"{where}: key 'extract' must be one of {', '.join(EXTRACT_MODES)}")
    labels = obj.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(x, str) and x.strip() for x in labels):
        raise TaskError(f"{where}: key 'labels' must be a list of non-empty strings")
    if mode == "label" and not labels:
        raise TaskError(f"{where}: extract 'label' needs key 'labels' (the label set)")
    pattern = obj.get("pattern")
    if mode == "regex":
        if not isinstance(pattern, str) or not pattern:
            raise TaskError(f"{where}: extract 'regex' needs key 'pattern' (a regular expression)")
        try:
            re.compile(pattern)
        except re.error as e:
            raise TaskError(f"{where}: key 'pattern' is not a regular expression ({e})") from None
    return Extractor(mode, tuple(labels), pattern if mode == "regex" else None)
