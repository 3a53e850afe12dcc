"""gptlab's task runner and its lm-eval adapter cut a long generation prompt the same way.

Both keep the last ``max_length - max_new_tokens`` tokens (``scoring.generation_context``),
as lm-eval's ``hf`` model does, so the answer fits in the context. The data is fixed: a
word-level tokenizer and a seeded tiny model, built in-process.
"""
import pytest

import gptlab.eval.generate as generate
from gptlab.errors import InputError
from gptlab.eval.generate import Sampling
from gptlab.eval.scoring import generation_context, prompt_ids
from gptlab.eval.tasks import Example, Task, evaluate_task

BLOCK = 16
MAX_NEW = 4
LONG = " ".join(["the cat sat on a mat ."] * 5) + " Q: the dog ran on the"      # 41 words
SHORT = "the dog sat on the"


class _Req:
    def __init__(self, *args):
        self.args = args


def test_generation_context_keeps_room_for_the_answer():
    ids = list(range(30))
    assert generation_context(ids, 16, 4) == list(range(18, 30))        # 12 = 16 - 4 tokens
    assert generation_context(ids[:5], 16, 4) == ids[:5]
    with pytest.raises(InputError, match="fewer than the model's context of 16"):
        generation_context(ids, 16, 16)


def _recorded_prompts(monkeypatch, model, tokenizer) -> dict[str, list[list[int]]]:
    """The prompt ids that the runner and the adapter hand to the decoder, for SHORT and LONG."""
    harness = pytest.importorskip("gptlab.eval.harness")
    seen: dict[str, list[list[int]]] = {"runner": [], "adapter": []}

    def recorder(route):
        def fake_generate_ids(model, ids, max_new_tokens, *args, **kwargs):
            seen[route].append(list(ids))
            return []
        return fake_generate_ids

    monkeypatch.setattr(generate, "generate_ids", recorder("runner"))
    monkeypatch.setattr(harness, "generate_ids", recorder("adapter"))
    task = Task("fixed", "generation", [Example(SHORT, answers=["mat"]), Example(LONG, answers=["mat"])])
    evaluate_task(model, tokenizer, task, max_new_tokens=MAX_NEW)
    lm = harness.GptlabLM(model=model, tokenizer=tokenizer)
    lm.generate_until([_Req(q, {"until": ["\n"], "max_gen_toks": MAX_NEW}) for q in (SHORT, LONG)])
    return seen


def test_runner_and_adapter_give_the_decoder_the_same_prompt(monkeypatch, word_tokenizer, tiny_gpt):
    model = tiny_gpt(vocab_size=word_tokenizer.get_vocab_size(), block_size=BLOCK)
    seen = _recorded_prompts(monkeypatch, model, word_tokenizer)
    full_short, full_long = (prompt_ids(word_tokenizer, q) for q in (SHORT, LONG))
    assert len(full_long) > BLOCK                   # the long prompt must be cut, on every machine
    assert seen["runner"] == seen["adapter"] == [full_short, full_long[-(BLOCK - MAX_NEW):]]


def test_runner_and_adapter_generate_the_same_answer_to_a_long_prompt(word_tokenizer, tiny_gpt):
    harness = pytest.importorskip("gptlab.eval.harness")
    model = tiny_gpt(vocab_size=word_tokenizer.get_vocab_size(), block_size=BLOCK)
    task = Task("fixed", "generation", [Example(SHORT, answers=["mat"]), Example(LONG, answers=["mat"])])
    own = [r["prediction"] for r in evaluate_task(model, word_tokenizer, task, max_new_tokens=MAX_NEW)["rows"]]
    lm = harness.GptlabLM(model=model, tokenizer=word_tokenizer)
    theirs = lm.generate_until([_Req(q, {"until": ["\n"], "max_gen_toks": MAX_NEW}) for q in (SHORT, LONG)])
    assert theirs == own
    direct = generate.generate_text(model, word_tokenizer, LONG, MAX_NEW, Sampling(temperature=0), stop=["\n"],
                                    max_length=BLOCK)
    assert own[1] == direct
