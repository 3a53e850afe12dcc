"""Code tasks scored by pass@k (Chen et al. 2021): n samples per problem, each run against its tests.

A code task row (one JSONL line; HumanEval's layout, see docs/eval.md):

    {"kind": "code", "task_id": "add", "prompt": "def add(a, b):\\n    \\"\\"\\"a plus b\\"\\"\\"\\n",
     "tests": "def check(f):\\n    assert f(2, 3) == 5\\n", "entry_point": "add",
     "solution": "    return a + b\\n"}

The model continues ``prompt``; the program run is ``prompt + completion``, a blank line,
``tests``, and ``check(entry_point)`` when ``entry_point`` is given (without it, ``tests``
are plain statements such as asserts). A candidate passes if that program runs to its end
in the sandbox (``eval/sandbox.py``: time, memory, output and no-network limits); every
outcome is one of ``passed``, ``failed``, ``timeout``, ``memory``, ``blocked``.
``solution`` (optional) is the reference completion: rows with one serve as k-shot
exemplars (``prompt + solution``, separated by blank lines), and ``check_solutions`` runs
them to test a task file. Completions stop where HumanEval's do: at a new top-level
``def``, ``class``, ``if``, ``print`` or comment.

pass@k is the unbiased estimator: with n samples of which c pass,
pass@k = 1 − C(n−c, k) / C(n, k), the chance that k samples drawn without replacement from
the n include one that passes; averaged over problems, with a percentile bootstrap
interval over problems. Sampling at temperature 0 makes the n samples one sample n times.
"""
from __future__ import annotations

import math
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from gptlab.eval.generate import Sampling
from gptlab.eval.sandbox import STATUSES, Limits, Outcome, network_isolation, run_python
from gptlab.eval.taskbase import TaskError, bootstrap_mean, draw_shots, lm_generate

STOP = ["\ndef ", "\nclass ", "\nif ", "\nprint(", "\n#"]     # HumanEval's stop sequences
DEFAULT_KS = (1, 10, 100)


@dataclass
class CodeProblem:
    prompt: str
    tests: str
    entry_point: str | None = None
    solution: str | None = None
    task_id: str = ""

    @classmethod
    def of(cls, x: CodeProblem | Mapping[str, Any]) -> CodeProblem:
        return x if isinstance(x, CodeProblem) else cls(x["prompt"], x["tests"], x.get("entry_point"),
                                                      x.get("solution"), str(x.get("task_id", "")))

    def program(self, completion: str) -> str:
        """The program a candidate is judged by: the prompt, the completion, then the tests."""
        tail = f"\n\ncheck({self.entry_point})\n" if self.entry_point else "\n"
        return self.prompt + completion + "\n\n" + self.tests + tail


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chen et al.'s unbiased pass@k from n samples with c correct: 1 - C(n-c, k) / C(n, k)."""
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:                 # every draw of k includes a correct sample
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def reported_ks(n: int, ks: Sequence[int] | None = None) -> list[int]:
    """The k of pass@k worth reporting for n samples: the requested ones up to n, and n itself."""
    return sorted({k for k in (ks or DEFAULT_KS) if 1 <= k <= n} | {n})


def code_prompt(shots: Sequence[CodeProblem], problem: CodeProblem) -> str:
    solved = [s.prompt + (s.solution or "").rstrip("\n") for s in shots]
    return "\n\n\n".join(solved + [problem.prompt]) if solved else problem.prompt


def first_block(completion: str) -> str:
    """The completion up to HumanEval's first stop sequence (a new top-level statement)."""
    cut = len(completion)
    for st in STOP:
        at = completion.find(st)
        if at != -1:
            cut = min(cut, at)
    return completion[:cut]


def run_candidates(problem: CodeProblem, completions: Sequence[str], limits: Limits = Limits(),
                   workers: int = 1) -> list[Outcome]:
    """Each completion's outcome against the problem's tests, each in its own sandboxed child."""
    programs = [problem.program(c) for c in completions]
    if workers <= 1:
        return [run_python(p, limits) for p in programs]
    with ThreadPoolExecutor(max_workers=workers) as pool:   # the work is in the children
        return list(pool.map(lambda p: run_python(p, limits), programs))


def check_solutions(problems: Sequence[CodeProblem], limits: Limits = Limits()) -> list[Outcome]:
    """The reference solutions' outcomes: a task file whose solutions do not pass is broken."""
    return [run_python(p.program(p.solution or ""), limits) for p in problems]


# ----------------------------------------------------------------------------- runner

def model_sampler(model, tokenizer, max_new_tokens: int = 128, temperature: float = 0.8, top_p: float | None = 0.95,
                  seed: int = 1234) -> Callable[[str, int], list[str]]:
    """(prompt, n) -> n sampled completions. Sample j of a prompt has a seed made from the
    prompt's text and j, so it does not depend on which other problems are run."""
    def sample(prompt: str, n: int) -> list[str]:
        base = zlib.crc32(prompt.encode("utf-8")) ^ seed
        return [lm_generate(model, tokenizer, prompt, max_new_tokens,
                            Sampling(temperature, top_p=top_p, seed=(base + j) % 2**62), stop=STOP)
                for j in range(n)]
    return sample


def evaluate_code(sample: Callable[[str, int], list[str]], problems: Sequence[CodeProblem], n: int = 10,
                  ks: Sequence[int] | None = None, k_shot: int = 0, pool: Sequence[CodeProblem] | None = None,
                  seed: int = 1234, limits: Limits = Limits(), workers: int = 1, progress=None) -> dict:
    """pass@k of ``sample(prompt, n) -> completions`` (the model; a fake in tests) on ``problems``."""
    if n < 1:
        raise ValueError("n (samples per problem) must be at least 1")
    same = pool is None
    pool = problems if same else pool
    ks = reported_ks(n, ks)
    rows = []
    for i, prob in enumerate(problems):
        candidates = [j for j, p in enumerate(pool) if p.solution and not (same and j == i)]
        shots = [pool[j] for j in draw_shots(i, candidates, k_shot, seed)]
        prompt = code_prompt(shots, prob)
        completions = [first_block(c) for c in sample(prompt, n)]
        if len(completions) != n:
            raise ValueError(f"the sampler returned {len(completions)} completions, not {n}")
        outcomes = run_candidates(prob, completions, limits, workers)
        c = sum(o.status == "passed" for o in outcomes)
        rows.append({"task_id": prob.task_id or str(i), "prompt": prompt, "n": n, "c": c,
                     **{f"pass@{k}": pass_at_k(n, c, k) for k in ks},
                     "samples": [{"completion": comp, "status": o.status, "detail": o.detail}
                                 for comp, o in zip(completions, outcomes)]})
        if progress is not None:
            progress(1)
    names = [f"pass@{k}" for k in ks]
    metrics = {m: sum(r[m] for r in rows) / len(rows) if rows else 0.0 for m in names}
    intervals = {m: list(bootstrap_mean([r[m] for r in rows], seed=seed)) for m in names}
    statuses = {s: sum(smp["status"] == s for r in rows for smp in r["samples"]) for s in STATUSES}
    return {"kind": "code", "num_fewshot": k_shot, "seed": seed, "n": len(rows), "samples_per_problem": n,
            "metrics": metrics, "intervals": intervals, "statuses": statuses,
            "sandbox": {"isolation": network_isolation(limits), "wall_s": limits.wall_s, "cpu_s": limits.cpu_s,
                        "memory_mb": limits.memory_mb},
            "rows": rows}


def code_pass_at_k(model, tokenizer, problems: Sequence[CodeProblem | Mapping[str, Any]], n: int = 10,
                   ks: Sequence[int] | None = None, *, temperature: float = 0.8, top_p: float | None = 0.95,
                   max_new_tokens: int = 128, limits: Limits = Limits(), seed: int = 1234, workers: int = 1) -> dict:
    """For callers outside ``gptlab eval`` (the advisor's bake-off): pass@k of a gptlab/HF
    causal LM on ``problems`` (CodeProblems or task-row dicts), n samples each, every one run
    in the sandbox. Returns ``evaluate_code``'s record: ``metrics`` ({"pass@1": ..}),
    ``intervals``, ``statuses`` (counts of passed/failed/timeout/memory/blocked), ``rows``."""
    sample = model_sampler(model, tokenizer, max_new_tokens, temperature, top_p, seed)
    return evaluate_code(sample, [CodeProblem.of(p) for p in problems], n, ks, seed=seed, limits=limits,
                         workers=workers)


# ----------------------------------------------------------------------------- task-file rows

def parse_row(obj: Mapping[str, Any], where: str) -> CodeProblem:
    for key in ("prompt", "tests"):
        if not isinstance(obj.get(key), str) or not obj[key].strip():
            raise TaskError(f"{where}: key {key!r} must be a non-empty string (a code row needs 'prompt' and 'tests')")
    entry = obj.get("entry_point")
    if entry is not None and not (isinstance(entry, str) and entry.isidentifier()):
        raise TaskError(f"{where}: key 'entry_point' must be a Python identifier (the function the tests check)")
    solution = obj.get("solution")
    if solution is not None and not isinstance(solution, str):
        raise TaskError(f"{where}: key 'solution' must be a string")
    task_id = obj.get("task_id", "")
    if not isinstance(task_id, (str, int)) or isinstance(task_id, bool):
        raise TaskError(f"{where}: key 'task_id' must be a string")
    try:
        compile(obj["tests"], "tests", "exec")
    except SyntaxError as e:
        raise TaskError(f"{where}: key 'tests' is not valid Python (line {e.lineno}: {e.msg})") from None
    return CodeProblem(obj["prompt"], obj["tests"], entry, solution, str(task_id))
