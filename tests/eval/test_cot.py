"""Chain-of-thought k-shot prompting: prompts, answer extraction and accuracy, with a fake model."""
from __future__ import annotations

import json
import re
import types
from pathlib import Path

import pytest
import torch

from gptlab.advise.labelled import Example
from gptlab.advise.prompting import cot_generation_prompt, cot_predict
from gptlab.eval.cot import CotItem, Extractor, cot_prompt, evaluate_cot, extract_answer, is_correct
from gptlab.eval.generate import Sampling
from gptlab.eval.taskbase import lm_generate, wilson
from gptlab.eval.tasks import TaskError, load_task

ROOT = Path(__file__).resolve().parents[2]
ITEMS = [CotItem(f"What is {a} + {b}?", [str(a + b)], f"{a} plus {b} makes {a + b}.") for a, b in
         [(1, 2), (3, 4), (5, 6), (7, 8), (2, 2), (9, 1)]]


@pytest.mark.parametrize("text, ex, want", [
    ("3 + 2 = 5. The answer is 5.", Extractor(), "5"),
    ("so the answer is: 3.5. Next", Extractor(), "3.5"),
    ("The Answer Is Paris\nQ: more", Extractor(), "Paris"),
    ("no conclusion here", Extractor(), None),
    ("We had 1,200 and sold 7, leaving 1,193", Extractor("last_number"), "1193"),
    ("-4 degrees", Extractor("last_number"), "-4"),
    ("nothing numeric", Extractor("last_number"), None),
    ("It is not negative, so the answer is positive.", Extractor("label", ("positive", "negative")), "positive"),
    ("sounds negative to me", Extractor("label", ("positive", "negative")), "negative"),
    ("nonpositive", Extractor("label", ("positive", "negative")), None),       # whole words only
    ("Final: [B] because", Extractor("regex", pattern=r"\[([A-D])\]"), "B"),
])
def test_answer_extraction(text, ex, want):
    assert extract_answer(text, ex) == want


def test_correctness_compares_numbers_as_numbers_and_text_after_normalisation():
    assert is_correct("5.0", ["5"]) and is_correct("1,000", ["1000"]) and not is_correct("6", ["5"])
    assert is_correct("the Paris.", ["paris"]) and is_correct("b", ["a", "B"]) and not is_correct(None, ["5"])


def test_prompts_show_rationales_only_in_cot_mode_and_never_the_row_itself():
    shots, item = ITEMS[:2], ITEMS[2]
    cot = cot_prompt(shots, item)
    assert cot == ("Q: What is 1 + 2?\nA: 1 plus 2 makes 3. The answer is 3.\n\n"
                   "Q: What is 3 + 4?\nA: 3 plus 4 makes 7. The answer is 7.\n\n"
                   "Q: What is 5 + 6?\nA:")
    plain = cot_prompt(shots, item, rationale=False)
    assert plain == ("Q: What is 1 + 2?\nA: The answer is 3.\n\nQ: What is 3 + 4?\nA: The answer is 7.\n\n"
                     "Q: What is 5 + 6?\nA:")
    assert cot_prompt([], item).endswith("A: Let's think step by step.")      # zero-shot CoT
    assert cot_prompt([], item, rationale=False).endswith("A:")


def _fake_model(prompt: str) -> str:
    """Answers right only when the prompt shows reasoning (a rationale), wrong otherwise."""
    a, b = map(int, re.findall(r"What is (\d+) \+ (\d+)\?\nA:[^\n]*$", prompt)[0])
    return f" {a} plus {b} makes {a + b}. The answer is {a + b}." if "makes" in prompt else " The answer is 0."


def test_cot_accuracy_against_answer_only_on_the_same_exemplars():
    r = evaluate_cot(_fake_model, ITEMS, k=2, seed=3)
    assert r["metrics"] == {"acc": 1.0, "extracted": 1.0, "acc_answer_only": 0.0, "cot_minus_answer_only": 1.0}
    assert r["intervals"]["acc"] == pytest.approx(list(wilson(6, 6)))
    assert r["intervals"]["cot_minus_answer_only"] == [1.0, 1.0]
    for i, row in enumerate(r["rows"]):
        shots_cot = row["cot"]["prompt"].split("\n\n")[:-1]
        shots_plain = row["answer_only"]["prompt"].split("\n\n")[:-1]
        assert len(shots_cot) == 2 and ITEMS[i].rationale not in row["cot"]["prompt"]
        # the same exemplars, less their rationales
        assert [s.split("\n")[0] for s in shots_cot] == [s.split("\n")[0] for s in shots_plain]
    assert evaluate_cot(_fake_model, ITEMS, k=2, seed=3)["rows"] == r["rows"]       # fixed by the seed


def test_exemplars_come_only_from_rows_with_a_rationale():
    items = ITEMS[:3] + [CotItem("What is 1 + 1?", ["2"])]
    r = evaluate_cot(_fake_model, items, k=2, seed=0, answer_only=False)
    assert "acc_answer_only" not in r["metrics"]
    assert all("What is 1 + 1?" not in row["cot"]["prompt"].split("\n\n")[0] for row in r["rows"])
    with pytest.raises(TaskError, match="3-shot needs 3"):
        evaluate_cot(_fake_model, items, k=3)      # row 0 has only 2 others with a rationale


def test_wilson_interval_by_hand():
    lo, hi = wilson(5, 10)
    assert (lo, hi) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)


def test_sample_cot_tasks_load_with_their_extraction_rule():
    arith = load_task(ROOT / "configs" / "tasks" / "arith_cot.jsonl")
    senti = load_task(ROOT / "configs" / "tasks" / "sentiment_cot.jsonl")
    assert (arith.kind, arith.extractor.mode) == ("cot", "last_number")
    assert senti.extractor == Extractor("label", ("positive", "negative"))
    assert all(x.rationale for x in arith.examples + senti.examples)


ROW = {"kind": "cot", "question": "q?", "rationale": "r.", "answer": "a"}


@pytest.mark.parametrize("second, message", [
    ({**ROW, "question": ""}, "bad.jsonl:2: key 'question'"),
    ({"kind": "cot", "question": "q?"}, "bad.jsonl:2: a cot row needs key 'answer'"),
    ({**ROW, "extract": "first_word"}, "bad.jsonl:2: key 'extract' must be one of"),
    ({**ROW, "extract": "label"}, "bad.jsonl:2: extract 'label' needs key 'labels'"),
    ({**ROW, "extract": "regex", "pattern": "(unclosed"}, "bad.jsonl:2: key 'pattern' is not a regular expression"),
    ({**ROW, "extract": "answer_is"}, "bad.jsonl:2: extraction differs from .*bad.jsonl:1's"),
    ({"query": "q", "answer": "a"}, "bad.jsonl:2: a generation row in a cot task"),
])
def test_bad_cot_rows_name_file_line_and_key(tmp_path, second, message):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps({**ROW, "extract": "last_number"}) + "\n" + json.dumps(second) + "\n")
    with pytest.raises(TaskError, match=message):
        load_task(p)


class _HFStyle(torch.nn.Module):
    """A causal LM the way Hugging Face models look to gptlab: logits in ``.logits``, no KV cache."""

    def __init__(self, gpt):
        super().__init__()
        self.gpt = gpt
        self.config = types.SimpleNamespace(n_positions=gpt.config.block_size)

    def forward(self, ids):
        return types.SimpleNamespace(logits=self.gpt(ids))


@pytest.mark.parametrize("sampling", [Sampling(temperature=0), Sampling(temperature=1.0, seed=5)])
def test_any_causal_lm_decodes_like_a_gptlab_model(tiny_gpt, word_tokenizer, sampling):
    gpt = tiny_gpt(vocab_size=word_tokenizer.get_vocab_size())
    prompt = "Q: the cat sat on a mat ? A: the dog ran on the mat . the cat"     # longer than the context
    ours = lm_generate(gpt, word_tokenizer, prompt, 6, sampling, stop=["?"])
    assert lm_generate(_HFStyle(gpt), word_tokenizer, prompt, 6, sampling, stop=["?"]) == ours


def test_the_advisor_builds_the_same_cot_prompt_and_reads_the_answer(tiny_gpt, word_tokenizer):
    demos = [Example("What is 1 + 2?", "3"), Example("What is 3 + 4?", "7")]
    p = cot_generation_prompt(demos, ["1 plus 2 makes 3.", "3 plus 4 makes 7."], "What is 5 + 6?", 500)
    assert p == cot_prompt(ITEMS[:2], ITEMS[2])
    got, text = cot_predict(tiny_gpt(vocab_size=word_tokenizer.get_vocab_size()), word_tokenizer,
                            "Q: the cat A:", 4, Extractor("label", ("cat", "dog", "mat")))
    assert got == extract_answer(text, Extractor("label", ("cat", "dog", "mat")))
