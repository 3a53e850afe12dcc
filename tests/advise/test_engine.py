from __future__ import annotations

import pytest

from gptlab.advise import Rule, advise, answers_from_dict
from gptlab.advise.rules import FINETUNE, PROMPT, Cond, Ref, all_of, any_of, is_


def test_nothing_known_gives_a_zero_confidence_first_try():
    advice = advise(answers_from_dict({}))
    assert advice.recommendation == PROMPT and advice.confidence == 0.0 and advice.level == "none"
    assert advice.fired == [] and "bakeoff" in advice.notes[-1]


def test_confidence_grows_with_agreeing_evidence_and_drops_when_split():
    one = advise(answers_from_dict({"spurious": True}))                      # finetune 2
    three = advise(answers_from_dict({"spurious": True, "counterfactual": True, "data_may_leave": False}))
    split = advise(answers_from_dict({"spurious": True, "mimic_humans": True}))  # 2 vs 2
    assert one.confidence == pytest.approx(2 / 4)
    assert three.confidence == pytest.approx(7 / 9, abs=1e-3) and three.level == "high"
    assert split.confidence == pytest.approx(2 / 6, abs=1e-3) and split.level == "low"
    assert split.recommendation == FINETUNE  # a tie goes to the cheaper option to run


def test_the_heavier_side_wins():
    advice = advise(answers_from_dict({"labels": 10, "spurious": True}))    # prompt 3 vs finetune 2
    assert advice.recommendation == PROMPT and advice.summary == "prompt an LLM, few-shot"
    assert advice.scores["prompt"] == 3 and advice.scores["finetune"] == 2


def test_zero_shot_when_there_are_no_labels_or_for_cloze():
    assert advise(answers_from_dict({"labels": 0})).summary == "prompt an LLM, zero-shot"
    cloze = advise(answers_from_dict({"task": "cloze"}))
    assert cloze.summary == "prompt an LLM, zero-shot" and "zero-shot is enough" in cloze.notes[0]


def test_conditions_never_fire_on_unknown_answers_and_compare_answers():
    ans = answers_from_dict({"latency_ms": 100.0})
    assert not Cond("measured_prompt_latency_ms", ">", Ref("latency_ms")).holds(ans)
    ans = answers_from_dict({"latency_ms": 100.0, "measured_prompt_latency_ms": 150.0})
    assert Cond("measured_prompt_latency_ms", ">", Ref("latency_ms")).holds(ans)
    assert not is_("task", "unknown").holds(ans)
    assert any_of(is_("latency_ms", 1.0), is_("latency_ms", 100.0)).holds(ans)
    assert not all_of(is_("latency_ms", 100.0), is_("spurious", True)).holds(ans)


def test_a_new_row_extends_the_table_without_touching_the_engine():
    extra = Rule("always-prompt-for-poems", PROMPT, 5, is_("task", "writing"), "poems")
    advice = advise(answers_from_dict({"task": "writing", "data_may_leave": False}), rules=(extra,))
    assert [f.id for f in advice.fired] == ["always-prompt-for-poems"] and advice.recommendation == PROMPT


MEASURED = {"measured_winner": "finetune", "measured_cheaper": "finetune", "measured_difference": 0.533,
            "measured_difference_low": 0.367, "measured_difference_high": 0.7,
            "measured_prompt_latency_ms": 161.4, "measured_prompt_usd_per_1k": 0.0045, "latency_ms": 100.0}


def test_the_recommendation_quotes_the_bake_off_numbers():
    advice = advise(answers_from_dict(MEASURED))
    assert advice.recommendation == FINETUNE
    assert advice.summary == ("fine-tune a smaller model (measured on your data: winner finetune, "
                              "fine-tuned − prompted score +0.533 [+0.367, +0.700], "
                              "prompting 161.4 ms per example and 0.0045 USD per 1,000 examples)")
    reasons = {f.id: f.reason for f in advice.fired}
    assert reasons["measured-finetune-wins"].endswith("(fine-tuned minus prompted per-example score +0.533, "
                                                      "95% interval [+0.367, +0.700])")
    assert reasons["measured-latency-over-budget"].endswith("(measured 161.4 ms per example, budget 100 ms)")


def test_reasons_stay_plain_when_their_numbers_are_unknown():
    # A verdict given by hand, without the difference: the row fires, its reason quotes nothing.
    advice = advise(answers_from_dict({"measured_winner": "prompt"}))
    (fired,) = advice.fired
    assert fired.reason.endswith("excludes zero.") and "+" not in fired.reason
    assert advice.summary == "prompt an LLM, few-shot (measured on your data: winner prompt)"
    assert advise(answers_from_dict({"spurious": True})).summary == "fine-tune a smaller model"
