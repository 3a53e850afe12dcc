"""The bake-off's hybrid road for generation: the labelling LM's outputs (and rationales) train the small model."""
from __future__ import annotations

import pytest

from gptlab.advise import arms
from gptlab.advise.bakeoff import BakeoffSettings, run_bakeoff
from gptlab.advise.labelled import Example, read_examples, write_examples
from gptlab.manifest import verify

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]


@pytest.mark.slow
def test_hybrid_generation_distils_the_labelling_models_rationales(untrained_checkpoint_dir, tmp_path, monkeypatch):
    real = arms.greedy_generate
    labelled = []

    def teacher(model, tokenizer, prompt, max_new_tokens, stop="\n"):
        """A labelling LM that reasons before it answers (the small model's own decoding is real)."""
        if prompt.count("Output:") > 1 and "The answer is" in prompt:
            word = prompt.rsplit("Input: say ", 1)[1].split("\n")[0]
            labelled.append(word)
            return f"the input names {word}. The answer is {word}."
        return real(model, tokenizer, prompt, max_new_tokens, stop)
    monkeypatch.setattr(arms, "greedy_generate", teacher)
    rows = [Example(f"say {w}", w, f"the input names {w}.") for w in WORDS * 2]
    write_examples(tmp_path / "train.jsonl", rows, "generation")
    write_examples(tmp_path / "test.jsonl", rows[:4], "generation")
    assert read_examples(tmp_path / "train.jsonl", "generation")[0].r == "the input names alpha."
    s = BakeoffSettings(task="generation", shots=2, finetune_steps=6, hybrid=True, max_new_tokens=4)
    report = run_bakeoff(tmp_path / "train.jsonl", tmp_path / "test.jsonl", s, model_path=untrained_checkpoint_dir,
                         out_dir=tmp_path / "out")
    by_name = {a["name"]: a for a in report["arms"]}
    assert list(by_name) == ["prompt-k-shot", "prompt-cot", "finetune-lm", "hybrid-llm-labels"]
    hybrid = by_name["hybrid-llm-labels"]
    assert hybrid["distilled_rationales"] and hybrid["llm_label_token_f1"] == 1.0 and len(labelled) >= 6
    # The small model was fine-tuned on the teacher's outputs, its reasoning before each answer.
    taught = read_examples(tmp_path / "out" / "finetune" / "hybrid" / "train.jsonl", "generation")
    pool = [e for e in taught if e.x.split()[-1] in labelled]
    assert pool and all(e.r == f"the input names {e.y}." for e in pool)
    for arm in (by_name["finetune-lm"], hybrid):
        assert verify(arm["model_path"])[0] and "saved at" in arm["method"]
    assert report["comparison"]["hybrid"] in ("keeps_quality", "loses_quality")
