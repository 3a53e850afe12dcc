from __future__ import annotations

import json
from collections import Counter

import pytest

from gptlab.advise.bakeoff import BakeoffSettings, run_bakeoff
from gptlab.advise.labelled import Example, LabelledDataError, read_examples, write_examples
from gptlab.advise.metrics import token_f1
from gptlab.advise.prompting import demonstrations
from gptlab.cli import main
from gptlab.manifest import verify


def test_domain_bakeoff_on_the_embedded_corpus_writes_a_report(domain_set, trained_checkpoint, tmp_path, capsys):
    train, test = domain_set
    out = tmp_path / "bakeoff"
    argv = ["advise", "bakeoff", "--train", str(train), "--test", str(test), "--task", "classification",
            "--model", str(trained_checkpoint), "--out", str(out), "--shots", "2", "--latency-ms", "5000", "--hybrid",
            "--finetune-steps", "10",
            "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert verify(out)[0] and {"bakeoff.json", "report.md", "predictions.jsonl"} <= {p.name for p in out.iterdir()}
    arms = {a["name"]: a for a in report["arms"]}
    assert set(arms) == {"prompt-k-shot", "finetune-lm", "probe-ngrams", "probe-hidden", "hybrid-llm-labels"}
    # The fine-tuned arm is a saved model that loads; the probes are labelled as the cheap baselines.
    assert verify(arms["finetune-lm"]["model_path"])[0] and str(out / "finetune") in arms["finetune-lm"]["model_path"]
    assert {arms["probe-ngrams"]["family"], arms["probe-hidden"]["family"]} == {"probe"}
    assert report["comparison"]["finetune_arm"] == "finetune-lm" and "probe_difference_ci" in report["comparison"]
    gold = [e.y for e in read_examples(test, "classification")]
    for a in arms.values():
        m = a["metrics"]
        lo, hi = m["accuracy_ci"]
        assert 0 <= lo <= m["accuracy"] <= hi <= 1
        assert m["accuracy"] == pytest.approx(sum(p == g for p, g in zip(a["predictions"], gold)) / len(gold))
        flo, fhi = m["macro_f1_ci"]
        assert 0 <= flo <= fhi <= 1 and a["latency_ms_per_example"] > 0 and a["usd_per_1k_examples"] > 0
    # The n-gram probe learns the domains: clearly better than always answering the commonest one.
    majority = Counter(gold).most_common(1)[0][1] / len(gold)
    assert arms["probe-ngrams"]["metrics"]["accuracy"] > majority + 0.1
    assert arms["prompt-k-shot"]["tokens_per_example"] > 10
    # The hybrid arm learns from the LM's labels, so it can only be as good as they let it be.
    assert 0 <= arms["hybrid-llm-labels"]["llm_label_agreement"] <= 1
    assert report["comparison"]["hybrid"] in ("keeps_quality", "loses_quality")
    assert report["advice"]["answers"]["measured_hybrid"] == report["comparison"]["hybrid"]
    # The measured numbers reach the advisor.
    c, adv = report["comparison"], report["advice"]
    assert c["winner"] in ("prompt", "finetune", "tie") and c["difference_ci"][0] <= c["difference"] <= c["difference_ci"][1]
    assert adv["answers"]["labels"] == report["n_train"] and adv["answers"]["latency_ms"] == 5000
    assert adv["answers"]["measured_prompt_latency_ms"] == arms["prompt-k-shot"]["latency_ms_per_example"]
    assert any(f["source"] == "measured" for f in adv["fired"]) or c["winner"] == "tie"
    text = (out / "report.md").read_text()
    assert "probe-ngrams" in text and "Recommendation" in text
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == len(gold) and rows[0]["gold"] == gold[0]
    # A rerun with the same inputs skips the work.
    before = (out / "manifest.json").stat().st_mtime_ns
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["comparison"] == json.loads(json.dumps(c))
    assert (out / "manifest.json").stat().st_mtime_ns == before


def test_bakeoff_with_a_local_hf_model_folder_and_a_separate_small_model(domain_set, hf_model_dir,
                                                                         trained_checkpoint, tmp_path):
    train, test = domain_set
    few = tmp_path / "test.jsonl"
    write_examples(few, read_examples(test, "classification")[:8], "classification")
    report = run_bakeoff(train, few, BakeoffSettings(shots=1, max_chars=120, device="auto", finetune_steps=10),
                         model_path=hf_model_dir, small_model_path=trained_checkpoint)
    arms = {a["name"]: a for a in report["arms"]}
    assert list(arms) == ["prompt-k-shot", "finetune-lm", "probe-ngrams", "probe-hidden"] and report["n_test"] == 8
    assert "hf model" in arms["prompt-k-shot"]["method"] and str(hf_model_dir) in arms["prompt-k-shot"]["method"]
    assert str(trained_checkpoint) in arms["probe-hidden"]["method"]
    assert str(trained_checkpoint) in arms["finetune-lm"]["method"] and arms["finetune-lm"]["model_path"]


@pytest.mark.slow
def test_generation_bakeoff_fine_tunes_and_decodes(trained_checkpoint, tmp_path):
    words = ["bible", "code", "license", "manual", "prose", "changelog"]
    rows = [Example(f"the word {w}", w) for w in words * 3]
    write_examples(tmp_path / "train.jsonl", rows, "generation")
    write_examples(tmp_path / "test.jsonl", rows[:6], "generation")
    s = BakeoffSettings(task="generation", shots=2, finetune_steps=25, finetune_lr=3e-3, max_new_tokens=4)
    report = run_bakeoff(tmp_path / "train.jsonl", tmp_path / "test.jsonl", s, model_path=trained_checkpoint,
                         out_dir=tmp_path / "out")
    arms = {a["name"]: a for a in report["arms"]}
    assert set(arms) == {"prompt-k-shot", "finetune-lm"}
    ft = arms["finetune-lm"]
    assert ft["train_loss_last"] < ft["train_loss_first"]
    for a in arms.values():
        m = a["metrics"]
        assert 0 <= m["token_f1_ci"][0] <= m["token_f1"] <= m["token_f1_ci"][1] <= 1
        assert len(a["predictions"]) == 6
    assert "token-F1" in (tmp_path / "out" / "report.md").read_text()
    assert verify(ft["model_path"])[0] and ft["model_path"] in (tmp_path / "out" / "report.md").read_text()


def test_bad_labelled_lines_name_file_line_and_key(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    for text, message in [('{"text": "a", "label": "x"}\n{"text": "b"}\n', ":2: key 'label'"),
                          ('{"text": "a", "label": "x"}\nnot json\n', ":2: not JSON"),
                          ('["a", "b"]\n', ":1: expected a JSON object"), ("\n\n", "no examples")]:
        bad.write_text(text)
        with pytest.raises(LabelledDataError, match=message):
            read_examples(bad, "classification")
    assert main(["advise", "bakeoff", "--train", str(bad), "--test", str(bad)]) == 2
    assert "bad.jsonl" in capsys.readouterr().err
    one = tmp_path / "one.jsonl"
    one.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": "x"}\n')
    assert main(["advise", "bakeoff", "--train", str(one), "--test", str(one)]) == 2
    assert "at least two different labels" in capsys.readouterr().err
    assert main(["advise", "bakeoff", "--train", str(one), "--test", str(one), "--shots", "-1"]) == 2
    assert "bakeoff.shots: -1 is below the minimum 0" in capsys.readouterr().err


def test_demonstrations_cover_the_labels_and_token_f1():
    train = [Example(f"t{i}", lab) for i, lab in enumerate("aaaaaabbbc")]
    demos = demonstrations(train, 3, seed=1)
    assert sorted(d.y for d in demos) == ["a", "b", "c"]
    assert demonstrations(train, 3, seed=1) == demos
    assert token_f1("The cat sat.", "the cat sat") == 1.0
    assert token_f1("a cat", "the dog") == 0.0 and token_f1("cat dog", "cat") == pytest.approx(2 / 3)


def test_rationales_add_a_chain_of_thought_prompted_arm(trained_checkpoint, tmp_path, monkeypatch):
    """Training rows with rationales give a `prompt-cot` arm: demonstrations show the rationale
    before "The answer is ...", the answer is extracted from the LM's reasoning, and the
    comparison takes the better prompted arm."""
    words = ["bible", "code", "license", "manual"]
    rows = [Example(f"the word {w}", w, f"The text names {w}.") for w in words * 3]
    write_examples(tmp_path / "train.jsonl", rows, "generation")
    write_examples(tmp_path / "test.jsonl", rows[:4], "generation")
    seen = []

    def fake_cot_predict(model, tokenizer, prompt, max_new_tokens):
        seen.append(prompt)
        word = prompt.rsplit("the word ", 1)[1].split()[0]     # a perfect reasoner
        return word, f"The text names {word}. The answer is {word}."
    monkeypatch.setattr("gptlab.advise.arms.cot_predict", fake_cot_predict)
    s = BakeoffSettings(task="generation", shots=2, finetune_steps=5, max_new_tokens=4)
    report = run_bakeoff(tmp_path / "train.jsonl", tmp_path / "test.jsonl", s, model_path=trained_checkpoint,
                         out_dir=tmp_path / "out")
    arms = {a["name"]: a for a in report["arms"]}
    assert {"prompt-k-shot", "prompt-cot", "finetune-lm"} <= set(arms)
    assert len(seen) == 4 and all("The answer is" in p and "The text names" in p for p in seen)
    assert arms["prompt-cot"]["metrics"]["exact_match"] == 1.0
    assert report["comparison"]["prompt_arm"] == "prompt-cot"        # the prompted side at its best
