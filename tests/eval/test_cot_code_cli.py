"""`gptlab eval --tasks` with chain-of-thought and code tasks, on the session's tiny trained model.

The tiny model scores about nothing on real questions; what is checked is the machinery:
results and intervals in the manifest, every code sample run and classified in the sandbox."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from gptlab.cli import main
from gptlab.eval.harness import write_harness_task
from gptlab.eval.sandbox import STATUSES
from gptlab.eval.taskbase import wilson
from gptlab.eval.tasks import TaskError, evaluate_task, load_task
from gptlab.manifest import is_complete

TASKS = Path(__file__).resolve().parents[2] / "configs" / "tasks"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_eval_tasks_runs_cot_and_code_tasks(trained_checkpoint, tmp_path, capsys):
    files = [TASKS / "arith_cot.jsonl", TASKS / "sentiment_cot.jsonl", TASKS / "tiny_code.jsonl"]
    argv = ["eval", "--checkpoint", str(trained_checkpoint), "--out", str(tmp_path / "ev"),
            "--tasks", ",".join(map(str, files)), "eval.num_fewshot=1", "eval.max_new_tokens=12",
            "eval.code_samples=3", "eval.code_time_limit_s=5", "eval.code_memory_mb=512"]
    assert main(argv) == 0
    out = tmp_path / "ev" / "tasks"
    assert is_complete(out)
    summary = json.loads((out / "manifest.json").read_text())["summary"]["tasks"]
    for name in ("arith_cot", "sentiment_cot"):
        s = summary[name]
        assert s["kind"] == "cot" and s["n"] == len(files[0 if name == "arith_cot" else 1].read_text().splitlines())
        assert set(s["metrics"]) == {"acc", "acc_answer_only", "cot_minus_answer_only", "extracted"}
        lo, hi = s["intervals"]["acc"]
        assert 0.0 <= lo <= s["metrics"]["acc"] <= hi <= 1.0
        rows = json.loads((out / f"{name}.json").read_text())["rows"]
        assert all(r["cot"]["prompt"].count("Q: ") == 2 for r in rows)        # 1 exemplar + the question
    code = summary["tiny_code"]
    assert code["kind"] == "code" and code["samples_per_problem"] == 3
    assert set(code["metrics"]) == {"pass@1", "pass@3"}
    assert sum(code["statuses"].values()) == 5 * 3 and set(code["statuses"]) == set(STATUSES)
    rows = json.loads((out / "tiny_code.json").read_text())["rows"]
    assert all(len(r["samples"]) == 3 and all(s["status"] in STATUSES for s in r["samples"]) for r in rows)
    assert "pass@1" in capsys.readouterr().err
    # A cot task cannot take its exemplars from a code task: one line, exit 2.
    bad = argv[:6] + [str(files[0]), "--fewshot-pool", str(files[2])] + argv[7:]
    assert main(bad) == 2
    assert "a code task cannot give examples to arith_cot" in capsys.readouterr().err


def test_too_many_shots_for_the_rows_with_a_rationale_is_refused_before_the_model_loads(tmp_path, capsys):
    rows = [{"kind": "cot", "question": f"q{i}?", "answer": str(i), **({"rationale": "r."} if i < 3 else {})}
            for i in range(6)]
    task = tmp_path / "few.jsonl"
    task.write_text("".join(json.dumps(r) + "\n" for r in rows))
    argv = ["eval", "--checkpoint", str(tmp_path / "no-such-checkpoint"), "--out", str(tmp_path / "ev"),
            "--tasks", str(task), "eval.num_fewshot=3"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "few.jsonl: 3-shot needs 3 example rows with a rationale besides the row asked; it has 2" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "ev").exists()


def test_multiple_choice_and_generation_tasks_report_intervals_too(tmp_path, tiny_gpt, word_tokenizer):
    model = tiny_gpt(vocab_size=word_tokenizer.get_vocab_size())
    mc = tmp_path / "mc.jsonl"
    mc.write_text("".join(json.dumps({"query": f"Q: the {w}", "choices": ["cat", "dog", "mat"], "gold": i % 3}) + "\n"
                          for i, w in enumerate(["cat", "dog", "sat", "ran", "on", "mat", "a"])))
    r = evaluate_task(model, word_tokenizer, load_task(mc))
    for m in ("acc", "acc_norm", "acc_bytes"):
        assert r["intervals"][m] == pytest.approx(list(wilson(round(r["metrics"][m] * 7), 7)))
    gen = tmp_path / "gen.jsonl"
    gen.write_text("".join(json.dumps({"query": f"Q: a {w} A:", "answer": "the cat"}) + "\n" for w in ["cat", "dog"]))
    r = evaluate_task(model, word_tokenizer, load_task(gen), max_new_tokens=3)
    lo, hi = r["intervals"]["f1"]
    assert lo <= r["metrics"]["f1"] <= hi and set(r["intervals"]) == {"exact_match", "f1"}


@pytest.mark.parametrize("name", ["arith_cot", "tiny_code"])
def test_cot_and_code_tasks_have_no_lm_eval_twin(tmp_path, name):
    with pytest.raises(TaskError, match=f"{name}.jsonl: a (cot|code) task has no lm-eval twin"):
        write_harness_task(TASKS / f"{name}.jsonl", tmp_path)
    assert not list(tmp_path.iterdir())
