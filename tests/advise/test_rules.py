"""One test per row of the rule table: it fires on its case, stays silent on a near miss,
and (alone or with the rows it brings along) decides the recommendation."""
from __future__ import annotations

import pytest

from gptlab.advise import RULES, advise, answers_from_dict
from gptlab.advise.engine import fired_rules
from gptlab.advise.rules import FINETUNE, HYBRID, PROMPT, RETRIEVAL

# rule id: (answers where it fires, near-miss answers where it must not, expected recommendation)
CASES = {
    "creative-generation": ({"task": "code"}, {"task": "translation", "translation": "out_of_english"}, PROMPT),
    "few-labels": ({"labels": 20}, {"labels": 100}, PROMPT),
    "out-of-distribution": ({"distribution": "shifted"}, {"distribution": "in_distribution"}, PROMPT),
    "many-tasks": ({"task_kinds": 5}, {"task_kinds": 2}, PROMPT),
    "knowledge-without-retrieval": ({"knowledge": "world", "retrieval": False}, {"knowledge": "world"}, PROMPT),
    "emergent-reasoning": ({"needs_emergent": True}, {"needs_emergent": False}, PROMPT),
    "mimic-humans": ({"mimic_humans": True}, {"mimic_humans": False}, PROMPT),
    "cloze-zero-shot": ({"task": "cloze"}, {"task": "classification"}, PROMPT),
    "api-out-of-budget": ({"api_affordable": False}, {"api_affordable": True}, FINETUNE),
    "data-stays-on-premises": ({"data_may_leave": False}, {"data_may_leave": True}, FINETUNE),
    "latency-or-hardware": ({"latency_ms": 200.0}, {"latency_ms": 5000.0}, FINETUNE),
    "nlu-in-distribution": ({"task": "classification", "distribution": "in_distribution", "labels": 5000},
                            {"task": "classification", "distribution": "shifted", "labels": 5000}, FINETUNE),
    "reading-comprehension": ({"task": "reading_comprehension"}, {"task": "closed_book_qa"}, FINETUNE),
    "low-resource-language": ({"language": "low_resource"}, {"language": "english"}, FINETUNE),
    "translation-out-of-english": ({"task": "translation", "translation": "between_high_resource"},
                                   {"task": "translation", "translation": "into_english"}, FINETUNE),
    "multilingual-qa-generation": ({"task": "multilingual_generation"}, {"task": "summarisation"}, FINETUNE),
    "commonsense-benchmarks": ({"task": "commonsense"}, {"task": "reasoning"}, FINETUNE),
    "counterfactual-knowledge": ({"counterfactual": True}, {"counterfactual": False}, FINETUNE),
    "spurious-correlations": ({"spurious": True}, {"spurious": False}, FINETUNE),
    "non-lm-objective": ({"task": "regression"}, {"task": "classification"}, FINETUNE),
    "no-emergent-ability": ({"needs_emergent": False}, {"needs_emergent": True}, FINETUNE),
    "hybrid-offline-labelling": ({"labels": 30, "latency_ms": 100.0}, {"labels": 30}, HYBRID),
    "retrieval-augmented": ({"knowledge": "world", "retrieval": True}, {"knowledge": "world", "retrieval": False},
                            RETRIEVAL),
    "measured-finetune-wins": ({"measured_winner": "finetune"}, {"measured_winner": "tie"}, FINETUNE),
    "measured-prompt-wins": ({"measured_winner": "prompt"}, {"measured_winner": "finetune"}, PROMPT),
    "measured-tie-finetune-cheaper": ({"measured_winner": "tie", "measured_cheaper": "finetune"},
                                      {"measured_winner": "tie", "measured_cheaper": "prompt"}, FINETUNE),
    "measured-tie-prompt-cheaper": ({"measured_winner": "tie", "measured_cheaper": "prompt"},
                                    {"measured_winner": "prompt", "measured_cheaper": "prompt"}, PROMPT),
    "measured-hybrid-keeps-quality": ({"measured_hybrid": "keeps_quality", "measured_winner": "prompt",
                                       "measured_prompt_latency_ms": 2500.0, "latency_ms": 2000.0},
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


@pytest.mark.parametrize("rule_id", list(CASES))
def test_rule_row(rule_id):
    fires, near_miss, expected = CASES[rule_id]
    hit = _fired(fires)
    assert rule_id in hit and hit[rule_id].superseded_by is None
    assert rule_id not in _fired(near_miss)
    advice = advise(answers_from_dict(fires))
    assert advice.recommendation == expected
    assert advice.confidence > 0
    assert any(f.id == rule_id and f.reason for f in advice.fired)


def test_chatbot_and_closed_book_alternatives_fire_their_rows():
    assert "many-tasks" in _fired({"task": "chatbot"})
    assert "knowledge-without-retrieval" in _fired({"task": "closed_book_qa", "retrieval": False})
    assert "retrieval-augmented" in _fired({"task": "closed_book_qa", "retrieval": True})
    assert "creative-generation" in _fired({"task": "translation", "translation": "into_english"})
    assert "latency-or-hardware" in _fired({"large_model_hosting": False})


def test_translation_from_a_low_resource_language_into_english_is_for_the_llm():
    answers = {"task": "translation", "translation": "into_english", "language": "low_resource"}
    hit = _fired(answers)
    assert hit["low-resource-language"].superseded_by == "creative-generation"
    assert advise(answers_from_dict(answers)).recommendation == PROMPT


def test_hybrid_supersedes_the_rows_it_reconciles():
    advice = advise(answers_from_dict({"labels": 30, "large_model_hosting": False}))
    by_id = {f.id: f for f in advice.fired}
    assert by_id["few-labels"].superseded_by == "hybrid-offline-labelling"
    assert by_id["latency-or-hardware"].superseded_by == "hybrid-offline-labelling"
    assert advice.scores == {"prompt": 0, "finetune": 0, "hybrid": 4, "retrieval": 0}


@pytest.mark.parametrize("answers", [{"task": "code"}, {"needs_emergent": True}])
def test_llm_shaped_tasks_under_a_latency_budget_go_hybrid(answers):
    advice = advise(answers_from_dict({**answers, "latency_ms": 300.0}))
    assert advice.recommendation == HYBRID
    assert [f.id for f in advice.fired if f.superseded_by is None] == ["hybrid-offline-labelling"]
