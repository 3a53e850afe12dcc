"""One test per row of the rule table: it fires on its case, stays silent on a near miss,
and (alone or with the rows it brings along) decides the recommendation."""
from __future__ import annotations

import pytest

from gptlab.advise import RULES, advise, answers_from_dict
from gptlab.advise.engine import fired_rules
from gptlab.advise.rules import CHECK, FINETUNE, HYBRID, OUTCOMES, PROMPT, RETRIEVAL

# rule id: (answers where it fires, near-miss answers where it must not, expected recommendation;
# CHECK: the row votes for nothing and only adds its note)
CASES = {
    "creative-generation": ({"task": "code"}, {"task": "translation", "translation": "out_of_english"}, PROMPT),
    "code-pass-at-k": ({"task": "code", "tests_available": True}, {"task": "code", "tests_available": False},
                       PROMPT),
    "few-labels": ({"labels": 20}, {"labels": 100}, PROMPT),
    "out-of-distribution": ({"distribution": "shifted"}, {"distribution": "in_distribution"}, PROMPT),
    "many-tasks": ({"task_kinds": 5}, {"task_kinds": 2}, PROMPT),
    "knowledge-without-retrieval": ({"knowledge": "world", "retrieval": False}, {"knowledge": "world"}, PROMPT),
    "emergent-reasoning": ({"needs_emergent": True}, {"needs_emergent": False}, PROMPT),
    "mimic-humans": ({"mimic_humans": True}, {"mimic_humans": False}, PROMPT),
    "cloze-zero-shot": ({"task": "cloze"}, {"task": "classification"}, PROMPT),
    "api-out-of-budget": ({"api_affordable": False}, {"api_affordable": True}, FINETUNE),
    "data-stays-on-premises": ({"data_may_leave": False}, {"data_may_leave": True}, FINETUNE),
    "harmful-content": ({"harmful_content": True}, {"harmful_content": False}, FINETUNE),
    "latency-or-hardware": ({"latency_ms": 200.0}, {"latency_ms": 5000.0}, FINETUNE),
    "nlu-in-distribution": ({"task": "classification", "distribution": "in_distribution", "labels": 5000},
                            {"task": "classification", "distribution": "shifted", "labels": 5000}, FINETUNE),
    "reading-comprehension": ({"task": "reading_comprehension"}, {"task": "closed_book_qa"}, FINETUNE),
    "low-resource-language": ({"language": "low_resource"}, {"language": "english"}, FINETUNE),
    "translation-mt-models": ({"task": "translation", "translation": "between_high_resource"},
                              {"task": "translation", "translation": "into_english"}, FINETUNE),
    "multilingual-qa-generation": ({"task": "multilingual_generation"}, {"task": "summarisation"}, FINETUNE),
    "commonsense-benchmarks": ({"task": "commonsense"}, {"task": "reasoning"}, FINETUNE),
    "scaling-does-not-help": ({"flat_scaling": True}, {"flat_scaling": False}, FINETUNE),
    "counterfactual-knowledge": ({"counterfactual": True}, {"counterfactual": False}, FINETUNE),
    "spurious-correlations": ({"spurious": True}, {"spurious": False}, FINETUNE),
    "non-lm-objective": ({"task": "regression"}, {"task": "classification"}, FINETUNE),
    "multimodal-inputs": ({"multimodal": True}, {"multimodal": False}, FINETUNE),
    "instruction-tuned-first": ({"labels": 1000}, {"labels": 999}, FINETUNE),
    "no-emergent-ability": ({"needs_emergent": False}, {"needs_emergent": True}, FINETUNE),
    "hybrid-offline-labelling": ({"labels": 30, "latency_ms": 100.0, "llm_may_label": True},
                                 {"labels": 30, "latency_ms": 100.0, "llm_may_label": False}, HYBRID),
    "distil-chain-of-thought": ({"needs_emergent": True, "latency_ms": 300.0, "llm_may_label": True},
                                {"needs_emergent": True, "latency_ms": 300.0}, HYBRID),
    "retrieval-augmented": ({"knowledge": "world", "retrieval": True}, {"knowledge": "world", "retrieval": False},
                            RETRIEVAL),
    "measure-toxicity": ({"toxicity_matters": True}, {"toxicity_matters": False}, CHECK),
    "measure-fairness": ({"fairness_matters": True}, {"fairness_matters": False}, CHECK),
    "measured-finetune-wins": ({"measured_winner": "finetune"}, {"measured_winner": "tie"}, FINETUNE),
    "measured-prompt-wins": ({"measured_winner": "prompt"}, {"measured_winner": "finetune"}, PROMPT),
    "measured-tie-finetune-cheaper": ({"measured_winner": "tie", "measured_cheaper": "finetune"},
                                      {"measured_winner": "tie", "measured_cheaper": "prompt"}, FINETUNE),
    "measured-tie-prompt-cheaper": ({"measured_winner": "tie", "measured_cheaper": "prompt"},
                                    {"measured_winner": "prompt", "measured_cheaper": "prompt"}, PROMPT),
    "measured-hybrid-keeps-quality": ({"measured_hybrid": "keeps_quality", "measured_winner": "prompt",
                                       "measured_prompt_latency_ms": 2500.0, "latency_ms": 2000.0,
                                       "llm_may_label": True},
                                      {"measured_hybrid": "loses_quality", "measured_prompt_latency_ms": 2500.0,
                                       "latency_ms": 2000.0}, HYBRID),
    "measured-latency-over-budget": ({"measured_prompt_latency_ms": 2500.0, "latency_ms": 2000.0},
                                     {"measured_prompt_latency_ms": 1500.0, "latency_ms": 2000.0}, FINETUNE),
    "measured-cost-over-budget": ({"measured_prompt_usd_per_1k": 3.0, "budget_usd_per_1k": 1.0},
                                  {"measured_prompt_usd_per_1k": 3.0}, FINETUNE),
}


def _fired(answers: dict) -> dict[str, object]:
    return {f.id: f for f in fired_rules(answers_from_dict(answers))}


def test_every_row_has_a_case_and_ids_are_unique():
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))
    assert set(ids) == set(CASES), "each rule row needs its own case here"
    for r in RULES:
        for other in r.supersedes:
            assert other in ids, f"{r.id} supersedes unknown row {other}"
        assert r.verdict in OUTCOMES and (r.weight == 0) == (r.verdict == CHECK), r.id


@pytest.mark.parametrize("rule_id", list(CASES))
def test_rule_row(rule_id):
    fires, near_miss, expected = CASES[rule_id]
    hit = _fired(fires)
    assert rule_id in hit and hit[rule_id].superseded_by is None
    assert rule_id not in _fired(near_miss)
    advice = advise(answers_from_dict(fires))
    assert any(f.id == rule_id and f.reason for f in advice.fired)
    if expected == CHECK:
        rule = next(r for r in RULES if r.id == rule_id)
        assert sum(advice.scores.values()) == 0 and rule.note in advice.notes
        assert advice.notes[-1].startswith("no rule voted")
        return
    assert advice.recommendation == expected
    assert advice.confidence > 0


def test_chatbot_and_closed_book_alternatives_fire_their_rows():
    assert "many-tasks" in _fired({"task": "chatbot"})
    assert "knowledge-without-retrieval" in _fired({"task": "closed_book_qa", "retrieval": False})
    assert "retrieval-augmented" in _fired({"task": "closed_book_qa", "retrieval": True})
    assert "creative-generation" in _fired({"task": "translation", "translation": "into_english",
                                            "language": "low_resource"})
    assert "latency-or-hardware" in _fired({"large_model_hosting": False})


def test_translation_from_a_low_resource_language_into_english_is_for_the_llm():
    answers = {"task": "translation", "translation": "into_english", "language": "low_resource"}
    hit = _fired(answers)
    assert hit["low-resource-language"].superseded_by == "creative-generation"
    assert advise(answers_from_dict(answers)).recommendation == PROMPT


def test_hybrid_supersedes_the_rows_it_reconciles():
    advice = advise(answers_from_dict({"labels": 30, "large_model_hosting": False, "llm_may_label": True}))
    by_id = {f.id: f for f in advice.fired}
    assert by_id["few-labels"].superseded_by == "hybrid-offline-labelling"
    assert by_id["latency-or-hardware"].superseded_by == "hybrid-offline-labelling"
    assert advice.scores == {"prompt": 0, "finetune": 0, "hybrid": 4, "retrieval": 0}


@pytest.mark.parametrize("answers, voting", [
    ({"task": "code"}, ["hybrid-offline-labelling"]),
    ({"needs_emergent": True}, ["hybrid-offline-labelling", "distil-chain-of-thought"])])
def test_llm_shaped_tasks_under_a_latency_budget_go_hybrid(answers, voting):
    advice = advise(answers_from_dict({**answers, "latency_ms": 300.0, "llm_may_label": True}))
    assert advice.recommendation == HYBRID
    assert [f.id for f in advice.fired if f.superseded_by is None] == voting


# ---- the hybrid road needs a large model that may label the data offline

NO_LARGE_MODEL = {"task": "classification", "labels": 0, "latency_ms": 30.0, "data_may_leave": False,
                  "large_model_hosting": False}


def test_no_hybrid_when_no_large_model_may_see_the_data():
    # Before the llm_may_label question this was hybrid 4 against finetune 3.
    for extra in ({}, {"llm_may_label": False}):
        advice = advise(answers_from_dict({**NO_LARGE_MODEL, **extra}))
        assert advice.recommendation == FINETUNE and advice.scores == {"prompt": 3, "finetune": 6, "hybrid": 0,
                                                                       "retrieval": 0}
        assert not any(f.verdict == HYBRID for f in advice.fired)
        assert any("label more first" in n for n in advice.notes)
    allowed = advise(answers_from_dict({**NO_LARGE_MODEL, "llm_may_label": True}))
    assert allowed.recommendation == HYBRID


def test_every_hybrid_row_depends_on_offline_labelling():
    for r in RULES:
        if r.verdict != HYBRID:
            continue
        assert "llm_may_label" in r.when.names(), r.id
        fires = CASES[r.id][0]
        assert fires["llm_may_label"] is True
        assert r.id not in _fired({**fires, "llm_may_label": False})


# ---- translation: the LLM wins only from a low/mid-resource language into English

@pytest.mark.parametrize("answers, expected", [
    ({"translation": "into_english", "language": "low_resource"}, PROMPT),
    ({"translation": "into_english", "language": "high_resource"}, FINETUNE),
    ({"translation": "out_of_english"}, FINETUNE),
    ({"translation": "out_of_english", "language": "english"}, FINETUNE),
    ({"translation": "between_high_resource", "language": "high_resource"}, FINETUNE)])
def test_translation_direction_decides(answers, expected):
    answers = {"task": "translation", **answers}
    hit = _fired(answers)
    assert ("creative-generation" in hit) == (expected == PROMPT)
    assert ("translation-mt-models" in hit) == (expected == FINETUNE)
    assert advise(answers_from_dict(answers)).recommendation == expected


def test_high_resource_into_english_under_latency_is_not_an_llm_task():
    answers = {"task": "translation", "translation": "into_english", "language": "high_resource",
               "latency_ms": 200.0, "llm_may_label": True}
    assert "hybrid-offline-labelling" not in _fired(answers)
    assert advise(answers_from_dict(answers)).recommendation == FINETUNE


# ---- the post's further cases

def test_flat_scaling_replaces_the_emergent_argument():
    hit = _fired({"task": "reasoning", "flat_scaling": True})
    assert hit["emergent-reasoning"].superseded_by == "scaling-does-not-help"
    assert advise(answers_from_dict({"task": "reasoning", "flat_scaling": True})).recommendation == FINETUNE
    assert advise(answers_from_dict({"task": "reasoning"})).recommendation == PROMPT


def test_instruction_tuned_first_is_a_soft_prior():
    # Enough labels tips a bare question to fine-tuning, but not against a drifting input distribution.
    assert advise(answers_from_dict({"labels": 5000})).recommendation == FINETUNE
    assert advise(answers_from_dict({"labels": 5000, "distribution": "shifted"})).recommendation == PROMPT
    assert any("FLAN-T5" in n for n in advise(answers_from_dict({"labels": 5000})).notes)


def test_pass_at_k_note_comes_with_code_that_tests_can_check():
    advice = advise(answers_from_dict({"task": "code", "tests_available": True}))
    assert advice.scores["prompt"] == 3 and any("pass@k" in n for n in advice.notes)


def test_checks_add_notes_but_never_change_the_votes():
    base = advise(answers_from_dict({"spurious": True}))
    checked = advise(answers_from_dict({"spurious": True, "toxicity_matters": True, "fairness_matters": True}))
    assert checked.scores == base.scores and checked.confidence == base.confidence
    assert {"measure-toxicity", "measure-fairness"} <= {f.id for f in checked.fired}
    assert len(checked.notes) == len(base.notes) + 2
    # Harmful content is a reason to vote (the post's security case) and a reason to measure toxicity.
    assert {"harmful-content", "measure-toxicity"} <= set(_fired({"harmful_content": True}))
