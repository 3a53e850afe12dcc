"""pass@k: the estimator by hand, and code tasks run end to end on hand-made problems with a fake model."""
from __future__ import annotations

import json
import math
from itertools import combinations
from pathlib import Path

import pytest

from gptlab.eval.code import CodeProblem, check_solutions, code_prompt, evaluate_code, first_block, pass_at_k
from gptlab.eval.sandbox import Limits
from gptlab.eval.tasks import TaskError, load_task

ROOT = Path(__file__).resolve().parents[2]
QUICK = Limits(wall_s=3.0, cpu_s=60.0, memory_mb=256)
ADD = CodeProblem('def add(a, b):\n    """Return a + b."""\n', "def check(f):\n    assert f(2, 3) == 5\n",
                  entry_point="add", solution="    return a + b\n", task_id="add")


def test_pass_at_k_by_hand_and_by_enumeration():
    assert pass_at_k(10, 0, 1) == 0.0 and pass_at_k(10, 10, 5) == 1.0
    assert pass_at_k(10, 1, 1) == pytest.approx(0.1)
    assert pass_at_k(10, 3, 2) == pytest.approx(1 - 21 / 45)            # 1 - C(7,2)/C(10,2)
    assert pass_at_k(5, 4, 2) == 1.0                                     # n - c < k: any 2 include a pass
    # The definition: the fraction of k-subsets of the n samples holding at least one pass.
    samples = [True] * 3 + [False] * 5
    for k in range(1, 9):
        subsets = list(combinations(samples, k))
        assert pass_at_k(8, 3, k) == pytest.approx(sum(any(s) for s in subsets) / len(subsets))
    # Chen et al.'s numerically stable product form agrees.
    n, c, k = 200, 13, 50
    assert pass_at_k(n, c, k) == pytest.approx(1 - math.prod(1 - k / i for i in range(n - c + 1, n + 1)))
    for bad in [(5, 6, 1), (5, 1, 0), (5, 1, 6)]:
        with pytest.raises(ValueError):
            pass_at_k(*bad)


@pytest.mark.timeout(180)
def test_each_kind_of_candidate_is_classified_and_counted():
    completions = ["    return a + b\n",                                  # correct
                   "    return a - b\n",                                  # wrong
                   "    while True:\n        pass\n",                     # loops forever
                   "    x = bytearray(4 << 30)\n    return a + b\n",      # too much memory
                   "    import socket\n    socket.socket()\n    return a + b\n"]  # the network

    def fake(prompt, n):
        assert prompt == ADD.prompt and n == 5
        return completions
    r = evaluate_code(fake, [ADD], n=5, ks=[1, 2], limits=QUICK)
    assert [s["status"] for s in r["rows"][0]["samples"]] == ["passed", "failed", "timeout", "memory", "blocked"]
    assert r["rows"][0]["c"] == 1
    assert r["metrics"] == {"pass@1": pytest.approx(0.2), "pass@2": pytest.approx(0.4), "pass@5": 1.0}
    assert r["statuses"] == {"passed": 1, "failed": 1, "timeout": 1, "memory": 1, "blocked": 1}
    assert r["sandbox"]["isolation"] in ("namespace+guard", "guard")


@pytest.mark.timeout(180)
def test_pass_at_k_over_problems_with_parallel_workers():
    sub = CodeProblem("def sub(a, b):\n", "assert sub(5, 3) == 2\n", solution="    return a - b\n")
    answers = {ADD.prompt: ["    return a + b\n"] * 2 + ["    return 0\n"] * 2,
               sub.prompt: ["    return b - a\n"] * 4}
    r = evaluate_code(lambda p, n: answers[p], [ADD, sub], n=4, ks=[1], limits=QUICK, workers=3)
    assert [row["c"] for row in r["rows"]] == [2, 0]
    assert r["metrics"]["pass@1"] == pytest.approx((0.5 + 0) / 2)
    assert r["metrics"]["pass@4"] == pytest.approx(0.5)
    lo, hi = r["intervals"]["pass@1"]
    assert 0.0 <= lo <= 0.25 <= hi <= 0.5


def test_completions_stop_at_a_new_top_level_statement_and_shots_show_solutions():
    assert first_block("    return a + b\n\ndef other():\n    pass") == "    return a + b\n"
    assert first_block("    return 1\n\nprint(add(1, 2))") == "    return 1\n"
    assert first_block("    if a:\n        return 1\n") == "    if a:\n        return 1\n"   # indented: kept
    p = code_prompt([ADD], CodeProblem("def sub(a, b):\n", "assert True"))
    assert p == ADD.prompt + "    return a + b" + "\n\n\n" + "def sub(a, b):\n"
    seen = []
    probs = [CodeProblem(f"def f{i}():\n", "assert True\n", solution=f"    return {i}\n") for i in range(4)]
    evaluate_code(lambda p, n: seen.append(p) or ["    return 0\n"], probs, n=1, k_shot=2, limits=QUICK)
    for i, p in enumerate(seen):
        assert p.endswith(f"def f{i}():\n") and p.count("def ") == 3 and f"return {i}" not in p   # never itself


def test_the_sample_code_task_loads_and_its_solutions_pass():
    task = load_task(ROOT / "configs" / "tasks" / "tiny_code.jsonl")
    assert task.kind == "code" and len(task.examples) == 5
    assert [o.status for o in check_solutions(task.examples, QUICK)] == ["passed"] * 5


@pytest.mark.parametrize("row, message", [
    ({"kind": "code", "tests": "assert True"}, "bad.jsonl:1: key 'prompt'"),
    ({"kind": "code", "prompt": "def f():\n", "tests": "assert (("}, "bad.jsonl:1: key 'tests' is not valid Python"),
    ({"kind": "code", "prompt": "def f():\n", "tests": "assert 1", "entry_point": "f()"}, "key 'entry_point'"),
    ({"kind": "kode", "prompt": "x", "tests": "y"}, "bad.jsonl:1: key 'kind' must be one of"),
])
def test_bad_code_rows_name_file_line_and_key(tmp_path, row, message):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps(row) + "\n")
    with pytest.raises(TaskError, match=message):
        load_task(p)
