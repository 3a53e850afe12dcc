"""Local few-shot tasks: multiple choice, short-answer generation, chain of thought and code, from JSONL files.

A task is one ``NAME.jsonl`` file, one example per line (see docs/eval.md):

* multiple choice: ``{"query": "...", "choices": ["...", "..."], "gold": 1}``
* generation:      ``{"query": "...", "answer": "..."}`` (``answer`` may be a list of accepted answers)
* chain of thought: ``{"kind": "cot", "question": "...", "rationale": "...", "answer": "..."}`` (``cot.py``)
* code:            ``{"kind": "code", "prompt": "...", "tests": "...", "entry_point": "..."}`` (``code.py``,
  pass@k with every candidate run in ``sandbox.py``)

A row may name its kind (``"kind"``); without one, ``choices`` means multiple choice and
``answer`` generation. All rows of a file have one kind.

The prompt follows lm-evaluation-harness's layout, so a task scores the same here and in
the harness (``harness.write_harness_task`` writes the matching YAML): k solved examples
``query + " " + answer`` joined by blank lines, then the query; each choice is scored as
the continuation ``" " + choice``. The k examples are drawn from the task's other rows (or
from a separate pool file) by a generator seeded with (seed, row), so a row's prompt does
not depend on which other rows are evaluated, or in what order.

Multiple-choice metrics: ``acc`` picks the choice with the highest summed log-likelihood;
small models favour short answers under that rule, so ``acc_norm`` divides by the choice's
length in characters and ``acc_bytes`` by its length in UTF-8 bytes (lm-eval's definitions).
Generation metrics: greedy decoding up to a stop string, then ``exact_match`` and token
``f1`` after SQuAD's normalisation (lower case, no punctuation or articles, single spaces),
the best over the accepted answers.

Task text must never be in the tokenizer's or the model's training data: build tasks from
held-out documents or from text outside the corpus.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass, field
from pathlib import Path

from gptlab.api import load_model
from gptlab.console import log, progress_task
from gptlab.eval import code as code_tasks
from gptlab.eval import cot as cot_tasks
from gptlab.eval.config import EvalConfig
from gptlab.eval.generate import Sampling, generate_text
from gptlab.eval.sandbox import Limits
from gptlab.eval.scoring import context_length, loglikelihood
from gptlab.eval.taskbase import TaskError, bootstrap_mean, fewshot_indices, normalize_answer, wilson
from gptlab.jsonl import jsonl_objects
from gptlab.manifest import Stage, atomic_write_json, file_checksum, stage_key
from gptlab.tokenizer import load_tokenizer

QUERY_ANSWER = " "          # lm-eval's target_delimiter
BETWEEN_EXAMPLES = "\n\n"   # lm-eval's fewshot_delimiter
KINDS = ("multiple_choice", "generation", "cot", "code")


@dataclass
class Example:
    query: str
    choices: list[str] | None = None      # multiple choice
    gold: int | None = None
    answers: list[str] = field(default_factory=list)   # generation

    @property
    def target(self) -> str:
        """The solved answer shown when this row is a few-shot example."""
        return self.choices[self.gold] if self.choices is not None else self.answers[0]


@dataclass
class Task:
    name: str
    kind: str                              # one of KINDS
    examples: list                         # Example; cot.CotItem; code.CodeProblem
    path: Path | None = None
    extractor: cot_tasks.Extractor | None = None   # cot: how the answer is read from the output


def _example(obj, where: str):
    if not isinstance(obj, dict):
        raise TaskError(f"{where}: expected a JSON object")
    kind = obj.get("kind")
    if kind is not None and kind not in KINDS:
        raise TaskError(f"{where}: key 'kind' must be one of {', '.join(KINDS)}")
    if kind == "cot":
        return "cot", cot_tasks.parse_row(obj, where)
    if kind == "code":
        return "code", code_tasks.parse_row(obj, where)
    if not isinstance(obj.get("query"), str):
        raise TaskError(f"{where}: key 'query' must be a string")
    if kind == "multiple_choice" and "choices" not in obj:
        raise TaskError(f"{where}: a multiple_choice row needs 'choices' and 'gold'")
    if kind == "generation" and "answer" not in obj:
        raise TaskError(f"{where}: a generation row needs 'answer'")
    if "choices" in obj and kind != "generation":
        ch, gold = obj["choices"], obj.get("gold")
        if not (isinstance(ch, list) and len(ch) >= 2 and all(isinstance(c, str) and c for c in ch)):
            raise TaskError(f"{where}: key 'choices' must be a list of at least 2 non-empty strings")
        if not isinstance(gold, int) or isinstance(gold, bool) or not 0 <= gold < len(ch):
            raise TaskError(f"{where}: key 'gold' must be an index into 'choices' (0..{len(ch) - 1})")
        return "multiple_choice", Example(obj["query"], choices=ch, gold=gold)
    if "answer" in obj:
        ans = obj["answer"] if isinstance(obj["answer"], list) else [obj["answer"]]
        if not ans or not all(isinstance(a, str) and a for a in ans):
            raise TaskError(f"{where}: key 'answer' must be a non-empty string or list of strings")
        return "generation", Example(obj["query"], answers=ans)
    raise TaskError(f"{where}: needs 'choices' + 'gold' (multiple choice) or 'answer' (generation)")


def load_task(path: str | Path) -> Task:
    path = Path(path)
    kind, examples, extractor, extractor_at = None, [], None, None
    for where, obj in jsonl_objects(path, TaskError, "task file"):
        k, ex = _example(obj, where)
        if kind is not None and k != kind:
            raise TaskError(f"{where}: a {k} row in a {kind} task (one kind per file)")
        kind = k
        examples.append(ex)
        if k == "cot" and (e := cot_tasks.parse_extractor(obj, where)) is not None:
            if extractor is not None and e != extractor:
                raise TaskError(f"{where}: extraction differs from {extractor_at}'s (one rule per file)")
            extractor, extractor_at = e, where
    if not examples:
        raise TaskError(f"{path}: no examples")
    if kind == "cot" and extractor is None:
        extractor = cot_tasks.Extractor()
    return Task(path.stem, kind, examples, path, extractor)


# ----------------------------------------------------------------------------- prompts

def build_prompt(ex: Example, shots: list[Example]) -> str:
    solved = [s.query + QUERY_ANSWER + s.target for s in shots]
    return BETWEEN_EXAMPLES.join(solved + [ex.query])


def prompts(task: Task, k: int = 0, seed: int = 1234, pool: Task | None = None) -> list[str]:
    src = pool or task
    return [build_prompt(ex, [src.examples[j] for j in
                              fewshot_indices(i, len(src.examples), k, seed, exclude_self=pool is None)])
            for i, ex in enumerate(task.examples)]


# ----------------------------------------------------------------------------- metrics

def choice_metrics(lls: list[float], choices: list[str], gold: int) -> dict[str, float]:
    """acc, acc_norm (per character) and acc_bytes (per UTF-8 byte) of one row."""
    def best(scores):                      # first index on ties, like numpy.argmax
        return max(range(len(scores)), key=lambda j: (scores[j], -j))
    return {"acc": float(best(lls) == gold),
            "acc_norm": float(best([ll / len(c) for ll, c in zip(lls, choices)]) == gold),
            "acc_bytes": float(best([ll / len(c.encode("utf-8")) for ll, c in zip(lls, choices)]) == gold)}


def f1_score(prediction: str, answer: str) -> float:
    p, a = normalize_answer(prediction).split(), normalize_answer(answer).split()
    if not p or not a:
        return float(p == a)
    same = sum((collections.Counter(p) & collections.Counter(a)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(a)
    return 2 * precision * recall / (precision + recall)


def generation_metrics(prediction: str, answers: list[str]) -> dict[str, float]:
    return {"exact_match": max(float(normalize_answer(prediction) == normalize_answer(a)) for a in answers),
            "f1": max(f1_score(prediction, a) for a in answers)}


# ----------------------------------------------------------------------------- runner

def _check_pool(task: Task, pool: Task | None) -> None:
    if pool is None:
        return
    special = {"cot", "code"}
    if (task.kind in special or pool.kind in special) and pool.kind != task.kind:
        raise TaskError(f"--fewshot-pool {pool.path}: a {pool.kind} task cannot give examples to "
                        f"{task.name} (a {task.kind} task)")


def _eligible(task: Task) -> int:
    """How many rows of ``task`` can be a few-shot example: CoT rows need a rationale, code rows a solution."""
    if task.kind == "cot":
        return sum(bool(e.rationale) for e in task.examples)
    if task.kind == "code":
        return sum(bool(e.solution) for e in task.examples)
    return len(task.examples)


def _check_shots(task: Task, pool: Task | None, k: int) -> None:
    """Refuse a k no row can be given, before the model is loaded."""
    src = pool or task
    n = _eligible(src)
    available = n - 1 if pool is None and n else n       # a row is never its own example
    if k > available:
        what = {"cot": " with a rationale", "code": " with a solution"}.get(src.kind, "")
        raise TaskError(f"{src.path}: {k}-shot needs {k} example rows{what} besides the row asked; "
                        f"it has {available} (eval.num_fewshot)")


def sandbox_limits(ecfg: EvalConfig) -> Limits:
    return Limits(wall_s=ecfg.code_time_limit_s, cpu_s=ecfg.code_time_limit_s, memory_mb=ecfg.code_memory_mb)


def evaluate_task(model, tokenizer, task: Task, k: int = 0, seed: int = 1234, pool: Task | None = None,
                  batch_size: int = 16, max_new_tokens: int = 32, stop: list[str] | None = None,
                  progress=None, ecfg: EvalConfig | None = None) -> dict:
    """Metrics of ``task`` (means over rows) and one record per row. ``ecfg`` gives the code
    tasks' sampling and sandbox settings (defaults: ``EvalConfig()``)."""

    _check_pool(task, pool)
    if task.kind == "cot":
        gen = cot_tasks.greedy_generator(model, tokenizer, max_new_tokens)
        r = cot_tasks.evaluate_cot(gen, task.examples, pool.examples if pool else None, k, task.extractor, seed,
                                   progress=progress)
        return {"task": task.name, **r}
    if task.kind == "code":
        e = ecfg or EvalConfig()
        sample = code_tasks.model_sampler(model, tokenizer, max_new_tokens, e.code_temperature, e.code_top_p, seed)
        r = code_tasks.evaluate_code(sample, task.examples, e.code_samples, k_shot=k,
                                     pool=pool.examples if pool else None, seed=seed, limits=sandbox_limits(e),
                                     workers=e.code_workers, progress=progress)
        return {"task": task.name, **r}
    texts = prompts(task, k, seed, pool)
    rows = []
    if task.kind == "multiple_choice":
        requests = [(p, QUERY_ANSWER + c) for p, ex in zip(texts, task.examples) for c in ex.choices]
        scores = loglikelihood(model, tokenizer, requests, batch_size=batch_size, progress=progress)
        at = 0
        for p, ex in zip(texts, task.examples):
            lls = [s for s, _ in scores[at:at + len(ex.choices)]]
            at += len(ex.choices)
            rows.append({"prompt": p, "loglikelihoods": lls, "gold": ex.gold,
                         **choice_metrics(lls, ex.choices, ex.gold)})
        names = ["acc", "acc_norm", "acc_bytes"]
    else:
        stop = ["\n"] if stop is None else stop
        for p, ex in zip(texts, task.examples):
            # The prompt keeps room for the answer, as lm-eval (and the adapter) truncate it.
            pred = generate_text(model, tokenizer, p, max_new_tokens, Sampling(temperature=0), stop=stop,
                                 max_length=context_length(model))
            rows.append({"prompt": p, "prediction": pred, "answers": ex.answers,
                         **generation_metrics(pred, ex.answers)})
            if progress is not None:
                progress(1)
        names = ["exact_match", "f1"]
    metrics = {m: sum(r[m] for r in rows) / len(rows) for m in names}
    # 95 % intervals: Wilson for the 0/1 scores, a bootstrap over rows for F1.
    intervals = {m: list(wilson(int(sum(r[m] for r in rows)), len(rows))) if m != "f1"
                 else list(bootstrap_mean([r[m] for r in rows], seed=seed)) for m in names}
    return {"task": task.name, "kind": task.kind, "num_fewshot": k, "seed": seed, "n": len(rows),
            "metrics": metrics, "intervals": intervals, "rows": rows}


def _work(task: Task) -> int:
    """Progress-bar units of a task: scored choices, generations or problems."""
    if task.kind == "multiple_choice":
        return sum(len(ex.choices) for ex in task.examples)
    return 2 * len(task.examples) if task.kind == "cot" else len(task.examples)


def _with_interval(name: str, value: float, interval: list[float] | None) -> str:
    return f"{name} {value:.3f}" + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")


def run_tasks(checkpoint, task_files: list[str | Path], out_dir: str | Path, num_fewshot: int = 0,
              seed: int = 1234, pool: str | Path | None = None, batch_size: int = 16,
              max_new_tokens: int = 32, device: str = "cpu", *, force: bool = False,
              ecfg: EvalConfig | None = None) -> dict:
    """`gptlab eval --tasks`: run local JSONL tasks on a checkpoint; results in OUT/tasks/.
    ``ecfg`` (the eval config section) gives the code tasks' samples and sandbox limits."""
    ecfg = ecfg or EvalConfig()
    tasks = [load_task(f) for f in task_files]          # fail on a bad file before any work
    pool_task = load_task(pool) if pool else None
    for t in tasks:
        _check_pool(t, pool_task)
        _check_shots(t, pool_task, num_fewshot)
    model, ckpt = load_model(checkpoint, return_path=True, device=device)
    settings = {"num_fewshot": num_fewshot, "seed": seed, "max_new_tokens": max_new_tokens,
                "pool": file_checksum(pool) if pool else None,
                "tasks": {t.name: file_checksum(t.path) for t in tasks}}
    if any(t.kind == "code" for t in tasks):     # only then, so other tasks' finished stages stay valid
        settings["code"] = {k: getattr(ecfg, k) for k in ("code_samples", "code_temperature", "code_top_p",
                                                           "code_time_limit_s", "code_memory_mb")}
    key = stage_key(settings, upstream=[ckpt])
    with Stage(Path(out_dir) / "tasks", "eval-tasks", key, force=force) as st:
        if st.complete:
            return st.summary
        tok = load_tokenizer(ckpt)
        summary, outputs = {}, []
        for task in tasks:
            with progress_task(f"task {task.name}", _work(task)) as advance:
                r = evaluate_task(model, tok, task, num_fewshot, seed, pool_task, batch_size, max_new_tokens,
                                  progress=advance, ecfg=ecfg)
            atomic_write_json(st.dir / f"{task.name}.json", r)       # rows, for error analysis
            outputs.append(f"{task.name}.json")
            summary[task.name] = {k: r[k] for k in ("kind", "num_fewshot", "seed", "n", "metrics", "intervals",
                                                    "statuses", "sandbox", "extract", "samples_per_problem")
                                  if k in r}
            log(f"task {task.name} ({num_fewshot}-shot, {r['n']} rows): "
                + ", ".join(_with_interval(m, v, r["intervals"].get(m)) for m, v in r["metrics"].items()))
        return st.done(outputs, {"checkpoint": str(ckpt), "tasks": summary}, config=settings)
