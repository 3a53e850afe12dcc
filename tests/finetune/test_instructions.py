"""FLAN-style instruction tuning: the mixture, and a held-out task's zero-shot accuracy."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from finetune_tasks import HELD_OUT

from gptlab.cli import main
from gptlab.finetune.data import Row, read_rows
from gptlab.finetune.mixture import build_mixture, mixing_weights
from gptlab.finetune.templates import ANSWER_CUE, INSTRUCTION_TEMPLATES, extract_answer, render, render_prompt


def test_mixing_is_proportional_up_to_the_cap_and_weighted():
    w = mixing_weights({"big": 10_000, "mid": 300, "small": 100}, cap=1000)
    assert w["big"] == pytest.approx(1000 / 1400) and w["small"] == pytest.approx(100 / 1400)
    w = mixing_weights({"a": 100, "b": 100}, cap=1000, task_weights={"b": 3.0})
    assert w["b"] == pytest.approx(0.75)


def test_every_task_is_rendered_through_every_template_zero_and_few_shot():
    rows = [Row(f"text {i}", "yes" if i % 2 else "no", task=t, instruction=f"Question {t}?", options=["yes", "no"])
            for t in ("a", "b") for i in range(20)]
    mix = build_mixture(rows, cap=5, few_shot_fraction=1.0, max_shots=2, seed=0)
    assert mix.tasks == ["a", "b"] and mix.weights == [0.5, 0.5]
    # Capped at 5 examples per task: each through the 4 templates zero-shot, and once few-shot.
    assert [len(mix.pools[t]) for t in mix.tasks] == [5 * (len(INSTRUCTION_TEMPLATES) + 1)] * 2
    prompts = [p for p, _ in mix.pools["a"]]
    assert {t.prompt.split("{")[0] for t in INSTRUCTION_TEMPLATES} <= {p[:len(t.prompt.split("{")[0])]
                                                                       for p in prompts
                                                                       for t in INSTRUCTION_TEMPLATES}
    few = [p for p in prompts if p.count("Options: yes, no") > 1]
    assert len(few) == 5 and all("Question b?" not in p for p in prompts)      # exemplars from the same task
    assert all(target in (" yes\n", " no\n") for _, target in mix.pools["a"])


def test_a_rationale_is_trained_before_the_answer_and_extracted_back():
    row = Row("3 apples and 4 more", "7", rationale="3 + 4 = 7.")
    prompt, target = render(INSTRUCTION_TEMPLATES[2], row)
    assert prompt.startswith("Instruction: ") and target == f" 3 + 4 = 7. {ANSWER_CUE} 7.\n"
    assert extract_answer(target) == "7" and extract_answer(" no\nmore") == "no"


def _task_files(heldout: Path, out: Path) -> tuple[Path, Path]:
    """The held-out task, zero-shot in the first template: generation (exact match) and multiple choice."""
    rows = read_rows(heldout, "instructions")
    queries = [render_prompt(INSTRUCTION_TEMPLATES[0], r) for r in rows]
    gen, mc = out / "gen.jsonl", out / "mc.jsonl"
    gen.write_text("".join(json.dumps({"query": q, "answer": r.target}) + "\n" for q, r in zip(queries, rows)))
    mc.write_text("".join(json.dumps({"query": q, "choices": r.options, "gold": r.options.index(r.target)}) + "\n"
                          for q, r in zip(queries, rows)))
    return gen, mc


def _eval(checkpoint: Path, tasks: list[Path], out: Path) -> dict[str, dict]:
    assert main(["eval", "--checkpoint", str(checkpoint), "--tasks", ",".join(map(str, tasks)), "--out", str(out),
                 "eval.max_new_tokens=4"]) == 0
    return {t.stem: json.loads((out / "tasks" / f"{t.stem}.json").read_text()) for t in tasks}


@pytest.mark.slow
def test_instruction_tuning_improves_zero_shot_accuracy_on_a_held_out_task(instruction_mixture, trained_checkpoint,
                                                                           tmp_path, capsys):
    gen, mc = _task_files(instruction_mixture["heldout"], tmp_path)
    base = _eval(trained_checkpoint, [gen, mc], tmp_path / "ev-base")
    out = tmp_path / "flan"
    assert main(["finetune", "--model", str(trained_checkpoint), "--train", str(instruction_mixture["train"]),
                 "--task", "instructions", "--out", str(out), "--max-steps", "100", "--lr", "2e-3",
                 "--eval-every", "25", "--batch-size", "8", "--threads", "1", "--device", "cpu", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert sorted(summary["mixture"]) == ["domain", "is-bible", "is-code"] and HELD_OUT not in summary["mixture"]
    tuned = _eval(out, [gen, mc], tmp_path / "ev-tuned")
    # Zero-shot, the base model does not answer the question at all; the tuned one answers
    # with one of the options of a task it never saw, and gets the exact answer far more often.
    answered = [r["prediction"].strip() in ("yes", "no") for r in tuned["gen"]["rows"]]
    assert sum(answered) / len(answered) >= 0.9
    before, after = base["gen"]["metrics"]["exact_match"], tuned["gen"]["metrics"]["exact_match"]
    assert after >= before + 0.3, (before, after)
    # Scored as multiple choice (no format to learn) it is no worse than the base model.
    assert tuned["mc"]["metrics"]["acc"] >= base["mc"]["metrics"]["acc"] - 0.05
