from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from data_corpora import write_jsonl

from gptlab.cli import main
from gptlab.data import steps
from gptlab.data.classifier import QualityModel, keep_probability, pareto_keep, train_quality_model
from gptlab.data.documents import Document
from gptlab.data.recipe import BUILTIN, load_recipe
from gptlab.data.steps import _ngram_stats
from gptlab.schema import ConfigError


def _doc(text, source="web"):
    return Document(id="d", text=text, source=source, domain=source)


def _step(spec):
    return load_recipe({"steps": [spec]}).steps[0].build()


def test_gopher_quality_keeps_prose_and_names_failed_rule(prose):
    g = _step({"type": "gopher_quality"})
    assert g(_doc(prose[0])) is None
    assert g(_doc("Too short to be a document.")) == "gopher_min_words"
    assert g(_doc(" ".join(["the internationalization"] * 40))) == "gopher_mean_word_length"
    bullets = "\n".join(f"- item number {i} of the list with the words" for i in range(60))
    assert g(_doc(bullets)) == "gopher_bullet_lines"
    nostop = " ".join(f"word{i % 7}x alpha beta gamma" for i in range(40))
    assert g(_doc(nostop)) == "gopher_stop_words"
    # each rule can be switched off by name
    assert _step({"type": "gopher_quality", "disable": ["gopher_stop_words"]})(_doc(nostop)) is None


def test_gopher_repetition_flags_repeated_lines(prose):
    r = _step({"type": "gopher_repetition"})
    assert r(_doc(prose[1])) is None
    spam = "\n".join(["Buy cheap watches online today now."] * 20 + prose[1].split(". ")[:5])
    assert r(_doc(spam)).startswith("gopher_")


def test_c4_uses_its_own_constants_and_cleans_lines():
    c4 = _step({"type": "c4"})
    assert c4.p.min_sentences == 3 and c4.p.min_words_per_line == 5
    good = ("The first line has enough words in it.\nMenu\nThe second line also has enough words.\n"
            "A third line with five words.\nWe use cookies to improve your experience here.")
    d = _doc(good)
    assert c4(d) is None
    assert d.text == ("The first line has enough words in it.\nThe second line also has enough words.\n"
                      "A third line with five words.")
    assert c4(_doc("Only four words here.\nOne line with enough words in it.")) == "c4_min_sentences"
    assert c4(_doc("Lorem ipsum dolor sit amet, consectetur.")) == "c4_lorem_ipsum"
    assert c4(_doc("int main() { return 0; } is what they wrote.")) == "c4_curly_bracket"
    assert _step({"type": "c4", "disable": ["c4_curly_bracket", "c4_min_sentences"]})(
        _doc("int main() { return 0; } is what they wrote.")) is None


def test_langid_tags_language_and_score():
    step = _step({"type": "langid", "languages": ["en"], "min_score": 0.9})
    en = _doc("The committee will publish its annual report on the state of the economy next week.")
    de = _doc("Der Ausschuss wird seinen Jahresbericht über die Lage der Wirtschaft nächste Woche veröffentlichen.")
    assert step(en) is None and en.meta["tags"]["langid"]["lang"] == "en"
    assert step(de) == "language" and de.meta["tags"]["langid"]["lang"] == "de"


def test_scores_are_reused_when_only_a_threshold_changes(monkeypatch, prose):
    calls = []
    real = steps.GopherQuality.scores
    monkeypatch.setattr(steps.GopherQuality, "scores", lambda self, d: calls.append(1) or real(self, d))
    d = _doc(prose[0])
    assert _step({"type": "gopher_quality", "mode": "tag"})(d) is None
    words = d.meta["tags"]["gopher_quality"]["words"]
    assert _step({"type": "gopher_quality", "min_words": words + 1})(d) == "gopher_min_words"
    assert _step({"type": "gopher_quality", "min_words": words})(d) is None
    assert len(calls) == 1  # scored once, decided three times
    d.text += " changed"
    _step({"type": "gopher_quality"})(d)
    assert len(calls) == 2  # new text, new scores
    # a parameter that changes the scores themselves (C4's line rule) is not a threshold: rescore
    c4 = "Five words are on this line.\nFour words on this.\nAnd a third line of text here."
    d = _doc(c4)
    _step({"type": "c4", "mode": "tag"})(d)
    assert d.meta["tags"]["c4"]["lines_kept"] == 2
    _step({"type": "c4", "mode": "tag", "min_words_per_line": 4})(d)
    assert d.meta["tags"]["c4"]["lines_kept"] == 3


def test_recipe_config_errors_are_one_line():
    with pytest.raises(ConfigError, match=r"steps\[0\].type: unknown step 'nope'"):
        load_recipe({"steps": [{"type": "nope"}]})
    with pytest.raises(ConfigError, match=r"steps\[1\] \(gopher_quality\).max_symbol_word_ratio: -1.0 is below"):
        load_recipe({"steps": [{"type": "normalize"}, {"type": "gopher_quality", "max_symbol_word_ratio": -1.0}]})
    with pytest.raises(ConfigError, match=r"\(minhash\).bogus: unknown key"):
        load_recipe({"steps": [{"type": "minhash", "bogus": 1}]})
    with pytest.raises(ConfigError, match="bands x rows = 160 exceeds num_perm = 112"):
        load_recipe({"steps": [{"type": "minhash", "bands": 20}]})
    with pytest.raises(ConfigError, match="unknown recipe 'webby'"):
        load_recipe("webby")


def test_builtin_recipes_match_their_toml_files():
    folder = Path(__file__).resolve().parents[2] / "configs" / "data"
    for name in BUILTIN:
        assert load_recipe(str(folder / f"{name}.toml")).to_dict()["steps"] == load_recipe(name).to_dict()["steps"], name


def test_pareto_rule_matches_closed_form_and_is_deterministic():
    ids = [f"doc-{i}" for i in range(20000)]
    for s in (0.5, 0.9):
        kept = np.mean([pareto_keep(s, i, 9.0, seed=0) for i in ids])
        assert abs(kept - keep_probability(s)) < 0.01, (s, kept, keep_probability(s))
    assert keep_probability(0.9) == pytest.approx(0.424, abs=0.001)
    assert [pareto_keep(0.7, i, 9.0, 0) for i in ids[:200]] == [pareto_keep(0.7, i, 9.0, 0) for i in ids[:200]]


def test_classifier_trains_reports_and_saves_without_pickle(tmp_path, prose):
    rng = np.random.default_rng(0)
    junk = [" ".join(f"{w}{rng.integers(100)}" for w in rng.choice(["click", "buy", "login", "$$", "cart"], 80))
            for _ in range(40)]
    model = train_quality_model(prose[:40] * 1, junk, seed=0)
    assert model.info["precision"] > 0.9 and model.info["recall"] > 0.9
    model.save(tmp_path)
    assert set(p.name for p in tmp_path.iterdir()) == {"classifier.json", "classifier.npz"}
    assert json.loads((tmp_path / "classifier.json").read_text())["precision"] == model.info["precision"]
    loaded = QualityModel.load(tmp_path)  # np.load(allow_pickle=False) inside
    s = loaded.score([prose[0], junk[0]])
    assert s[0] > 0.5 > s[1]
    assert np.allclose(s, model.score([prose[0], junk[0]]))


def test_classifier_train_cli_reports_precision_recall(tmp_path, prose, capsys):

    rng = np.random.default_rng(1)
    junk = [" ".join(f"{w}{rng.integers(50)}" for w in rng.choice(["sale", "click", "win", "free", "deal"], 60))
            for _ in range(30)]
    write_jsonl(tmp_path / "pos.jsonl", [{"text": t} for t in prose[:30]])
    write_jsonl(tmp_path / "neg.jsonl", [{"text": t} for t in junk])
    assert main(["data", "classifier", "train", "--positives", str(tmp_path / "pos.jsonl"),
                 "--negatives", str(tmp_path / "neg.jsonl"), "--out", str(tmp_path / "m")]) == 0
    info = json.loads((tmp_path / "m" / "classifier.json").read_text())
    assert info["positives"] == 30 and info["negatives"] == 30 and info["heldout_docs"] == 12
    assert 0.0 <= info["precision"] <= 1.0 and info["recall"] > 0.5
    assert "precision" in capsys.readouterr().err


def test_repetition_ngram_statistics_by_hand():
    words = "one two three four five six one two three four five six seven".split()
    top, dup = _ngram_stats(words, (2, 4), (5, 7))
    assert top == [2 * len("onetwo"), 2 * len("onetwothreefour")]  # ties go to the n-gram seen first
    assert dup == [sum(map(len, words[6:12])), 0]  # the second copy is covered by repeated 5-grams; no 7-gram repeats
