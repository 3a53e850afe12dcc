import json
import math
import re

import pytest
import torch

from gptlab.cli import main
from gptlab.eval.cloze import cloze_rows, write_cloze_tasks
from gptlab.eval.tasks import (
    TaskError,
    choice_metrics,
    evaluate_task,
    f1_score,
    generation_metrics,
    load_task,
    normalize_answer,
    prompts,
)
from gptlab.manifest import is_complete


class Bigram(torch.nn.Module):
    """Next-token log-probabilities that depend on the last token only: easy to hand-compute."""

    def __init__(self, tok, rules: dict[str, dict[str, float]]):
        super().__init__()
        V = tok.get_vocab_size()
        self.config = type("C", (), {"block_size": 64, "n_layer": 1})()
        self.table = torch.nn.Parameter(torch.zeros(V, V), requires_grad=False)   # uniform rows
        for prev, nxt in rules.items():
            row = torch.full((V,), math.log((1 - sum(nxt.values())) / (V - len(nxt))))
            for w, p in nxt.items():
                row[tok.token_to_id(w)] = math.log(p)
            self.table[tok.token_to_id(prev)] = row

    def forward(self, ids, cache=None):
        return self.table[ids]


def write(tmp_path, name, rows):
    p = tmp_path / f"{name}.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def test_choice_metrics_hand_computed():
    # acc takes the larger sum; per character the long answer wins; per byte "ééé" (6 bytes) wins.
    assert choice_metrics([-2.0, -3.0], ["ab", "cdefg"], 1) == {"acc": 0.0, "acc_norm": 1.0, "acc_bytes": 1.0}
    assert choice_metrics([-2.0, -3.0], ["ab", "ééé"], 1) == {"acc": 0.0, "acc_norm": 0.0, "acc_bytes": 1.0}
    assert choice_metrics([-1.0, -1.0], ["ab", "cd"], 0)["acc"] == 1.0        # ties go to the first


def test_exact_match_and_f1_hand_computed():
    assert normalize_answer("  The Cat, sat!  ") == "cat sat"
    assert generation_metrics("the cat sat.", ["Cat sat"]) == {"exact_match": 1.0, "f1": 1.0}
    assert f1_score("cat sat", "the cat") == pytest.approx(2 * 0.5 * 1 / 1.5)      # P 1/2, R 1
    assert f1_score("dog", "cat") == 0.0
    assert generation_metrics("cat", ["dog", "a cat"]) == {"exact_match": 1.0, "f1": 1.0}   # best answer


def test_multiple_choice_task_on_a_hand_built_model(tmp_path, word_tokenizer):
    model = Bigram(word_tokenizer, {"the": {"cat": 0.6, "dog": 0.3}})
    task = load_task(write(tmp_path, "mc", [
        {"query": "Q: the", "choices": ["cat", "dog"], "gold": 0},
        {"query": "Q: a", "choices": ["cat sat", "dog"], "gold": 0},   # after "a" every token is 1/V
    ]))
    r = evaluate_task(model, word_tokenizer, task)
    V = word_tokenizer.get_vocab_size()
    assert r["rows"][0]["loglikelihoods"] == pytest.approx([math.log(0.6), math.log(0.3)])
    assert r["rows"][1]["loglikelihoods"] == pytest.approx([-2 * math.log(V), -math.log(V)])
    # row 2: summed log-likelihood prefers the 1-token "dog" (wrong); per character "cat sat" wins
    assert r["metrics"] == {"acc": 0.5, "acc_norm": 1.0, "acc_bytes": 1.0}


def test_generation_task_on_a_hand_built_model(tmp_path, word_tokenizer):
    model = Bigram(word_tokenizer, {"A:": {"cat": 0.9}, "cat": {"sat": 0.9}, "sat": {".": 0.9}})
    task = load_task(write(tmp_path, "gen", [{"query": "Q: the A:", "answer": "cat sat"},
                                             {"query": "Q: a A:", "answer": ["the cat", "dog"]}]))
    r = evaluate_task(model, word_tokenizer, task, stop=["."], max_new_tokens=5)
    assert [row["prediction"].strip() for row in r["rows"]] == ["cat sat", "cat sat"]
    assert r["metrics"]["exact_match"] == 0.5
    assert r["metrics"]["f1"] == pytest.approx((1 + 2 / 3) / 2)


def test_k_shot_prompts_are_fixed_by_the_seed(tmp_path):
    rows = [{"query": f"q{i}", "answer": f"a{i}"} for i in range(6)]
    task = load_task(write(tmp_path, "t", rows))
    two = prompts(task, k=2, seed=7)
    assert two == prompts(task, k=2, seed=7)
    assert two != prompts(task, k=2, seed=8)
    for i, p in enumerate(two):
        parts = p.split("\n\n")
        assert len(parts) == 3 and parts[-1] == f"q{i}"
        assert all(re.fullmatch(r"q(\d) a\1", part) for part in parts[:2])     # solved examples
        assert f"q{i} a{i}" not in parts                     # a row never answers itself
    assert prompts(task, k=0) == [f"q{i}" for i in range(6)]
    pool = load_task(write(tmp_path, "pool", [{"query": "pq", "answer": "pa"}]))
    assert prompts(task, k=1, pool=pool)[3] == "pq pa\n\nq3"
    with pytest.raises(TaskError, match="6 other examples|5"):
        prompts(task, k=6)


@pytest.mark.parametrize("line, message", [
    ('{"query": "x", "choices": ["a", "b"], "gold": 2}', "line_bad.jsonl:2: key 'gold'"),
    ('{"query": 3, "answer": "a"}', "line_bad.jsonl:2: key 'query'"),
    ('{"query": "x"', "line_bad.jsonl:2: not JSON"),
    ('{"query": "x", "answer": "a"}', "line_bad.jsonl:2: a generation row in a multiple_choice task"),
])
def test_bad_task_lines_name_file_line_and_key(tmp_path, line, message):
    p = tmp_path / "line_bad.jsonl"
    p.write_text('{"query": "ok", "choices": ["a", "b"], "gold": 0}\n' + line + "\n")
    with pytest.raises(TaskError, match=message):
        load_task(p)


def test_cloze_rows_take_the_gold_from_the_text():
    texts = [" ".join(f"w{d}_{i}" for i in range(30)) for d in range(6)]
    mc, gen = cloze_rows(texts, n_rows=5, query_words=4, answer_words=2, n_choices=3)
    assert len(mc) == 5 and len(gen) == 5
    for m, g in zip(mc, gen):
        d = m["query"].split()[0].split("_")[0]
        gold = m["choices"][m["gold"]]
        assert len(m["choices"]) == 3 and all(c.startswith(d + "_") == (c == gold) for c in m["choices"])
        assert g["query"] == m["query"] and g["answer"] == gold.split()[0]


def test_eval_tasks_cli_writes_results_with_a_manifest_and_skips_when_complete(curated, untrained_checkpoint_dir, tmp_path):
    mc, gen = write_cloze_tasks(curated / "heldout", tmp_path / "tasks", n_rows=8)
    argv = ["eval", "--checkpoint", str(untrained_checkpoint_dir), "--out", str(tmp_path / "ev"),
            "--tasks", f"{mc},{gen}", "eval.num_fewshot=1", "eval.max_new_tokens=4"]
    assert main(argv) == 0
    out = tmp_path / "ev" / "tasks"
    assert is_complete(out)
    summary = json.loads((out / "manifest.json").read_text())["summary"]["tasks"]
    assert set(summary[mc.stem]["metrics"]) == {"acc", "acc_norm", "acc_bytes"}
    assert set(summary[gen.stem]["metrics"]) == {"exact_match", "f1"}
    rows = json.loads((out / f"{mc.stem}.json").read_text())["rows"]
    assert len(rows) == 8 and all(r["prompt"].count("\n\n") == 1 for r in rows)     # 1-shot
    before = (out / "manifest.json").stat().st_mtime_ns
    assert main(argv) == 0                                   # complete: nothing is redone
    assert (out / "manifest.json").stat().st_mtime_ns == before
    assert main(argv[:-2] + ["eval.num_fewshot=99"]) == 2    # out of range: a one-line config error
