from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image
from rich.console import Console

from gptlab.advise.answers import ask_interactive, load_answers
from gptlab.advise.flow import markdown_table, mermaid, png, table_hash, write_docs
from gptlab.advise.rules import RULES, Rule, is_
from gptlab.cli import main
from gptlab.schema import ConfigError


def test_yaml_answers_load_and_bad_ones_name_file_and_key(tmp_path):
    good = tmp_path / "a.yaml"
    good.write_text("task: classification\nlabels: 5000\ndata_may_leave: false\nlatency_ms: 50\n")
    ans = load_answers(good)
    assert (ans.task, ans.labels, ans.data_may_leave, ans.latency_ms) == ("classification", 5000, False, 50.0)
    cases = {"tsak: code\n": "tsak: unknown key", "task: poetry\n": "task: 'poetry' is not one of",
             "labels: -3\n": "labels: -3 is below the minimum 0", "labels: many\n": "labels: expected int",
             "- a list\n": "expected a mapping", "task: [unclosed\n": "invalid YAML"}
    for text, message in cases.items():
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(ConfigError) as e:
            load_answers(bad)
        assert str(bad) in str(e.value) and message in str(e.value)


class Typed:
    """Lines as a person types them: like input(), readline gives no trailing newline."""

    def __init__(self, lines):
        self.lines = list(lines)

    def readline(self):
        return self.lines.pop(0)


def test_interactive_prompts_ask_reask_and_skip():
    # task, language, task_kinds, multimodal, knowledge, needs_emergent, flat_scaling, mimic_humans,
    # counterfactual, spurious, labels (a bad answer first, then a good one), distribution, api_affordable,
    # data_may_leave, large_model_hosting, llm_may_label, latency_ms, budget, harmful_content,
    # toxicity_matters, fairness_matters
    lines = ["classification", "", "", "", "none", "no", "", "", "", "", "many", "5000", "in_distribution", "",
             "no", "", "", "", "", "", "", ""]
    out = io.StringIO()
    typed = Typed(lines)
    ans = ask_interactive(Console(file=out, width=100), stream=typed)
    assert ans.task == "classification" and ans.labels == 5000 and ans.data_may_leave is False
    assert ans.distribution == "in_distribution" and ans.needs_emergent is False and ans.language == "unknown"
    assert "invalid literal" in out.getvalue()          # the bad labels answer was explained and re-asked
    assert "retrieval" not in out.getvalue().lower()    # only asked when knowledge is world
    assert "unit tests" not in out.getvalue()           # only asked for code
    assert not typed.lines                              # every question was asked once


def test_cli_flags_yaml_and_json(tmp_path, capsys):
    answers = tmp_path / "a.yaml"
    answers.write_text("task: classification\ndistribution: in_distribution\nlabels: 20\n")
    # flags win over the file: 20 labels become 5000
    assert main(["advise", "--answers", str(answers), "--labels", "5000", "--data-may-leave", "no", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["recommendation"] == "finetune" and out["answers"]["labels"] == 5000
    assert {f["id"] for f in out["fired"]} == {"nlu-in-distribution", "data-stays-on-premises",
                                               "instruction-tuned-first"}
    assert main(["advise", "--task", "code", "--no-interactive"]) == 0
    text = capsys.readouterr().out
    assert "prompt an LLM" in text and "creative-generation" in text
    assert main(["advise", "--answers", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml" in capsys.readouterr().err


def test_cli_offline_labelling_flag_opens_the_hybrid_road(capsys):
    argv = ["advise", "--task", "classification", "--labels", "0", "--latency-ms", "30", "--data-may-leave", "no",
            "--large-model-hosting", "no", "--json"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["recommendation"] == "finetune"
    assert main(argv + ["--llm-may-label", "yes"]) == 0
    assert json.loads(capsys.readouterr().out)["recommendation"] == "hybrid"
    assert main(["advise", "--measured-difference", "-0.25", "--measured-winner", "prompt", "--json"]) == 0
    assert "-0.250" in json.loads(capsys.readouterr().out)["summary"]


def test_flow_figure_has_every_row_and_the_docs_copy_is_current(capsys):
    text = mermaid()
    assert text.startswith("flowchart")
    for r in RULES:
        assert f'{{{{"{r.id} (+{r.weight})' in text
    assert main(["advise", "--flow"]) == 0 and capsys.readouterr().out == text
    docs = Path(__file__).resolve().parents[2] / "docs"
    assert (docs / "advise-flow.mmd").read_text() == text, "regenerate: python -m gptlab.advise.flow docs"
    assert text in (docs / "advise.md").read_text(), "paste the regenerated flow into docs/advise.md"
    assert markdown_table() in (docs / "advise.md").read_text(), "paste the regenerated rule table too"
    with Image.open(docs / "advise-flow.png") as im:
        assert im.info.get("Description") == f"rule-table {table_hash()}", "regenerate: python -m gptlab.advise.flow docs"


def test_png_flow_is_written_and_fingerprinted(tmp_path):

    rules = RULES[:3] + (Rule("extra", "hybrid", 1, is_("spurious", True), "why"),)
    with Image.open(png(tmp_path / "flow.png", rules)) as im:
        assert im.format == "PNG" and im.size[0] > 500
        assert im.info["Description"] == f"rule-table {table_hash(rules)}" != f"rule-table {table_hash()}"


def test_the_yaml_example_in_the_docs_loads(tmp_path):
    doc = (Path(__file__).resolve().parents[2] / "docs" / "advise.md").read_text()
    block = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "answers.yaml").write_text(block)
    ans = load_answers(tmp_path / "answers.yaml")
    assert ans.task == "classification" and ans.labels == 5000 and ans.data_may_leave is False


def test_write_docs_regenerates_every_copy(tmp_path):

    page = (Path(__file__).resolve().parents[2] / "docs" / "advise.md").read_text()
    stale = page.replace("| `few-labels` | prompt | 3 |", "| `few-labels` | prompt | 9 |")
    assert stale != page
    (tmp_path / "advise.md").write_text(stale)
    write_docs(tmp_path)
    assert (tmp_path / "advise.md").read_text() == page
    assert (tmp_path / "advise-flow.mmd").read_text() == mermaid() and (tmp_path / "advise-flow.png").stat().st_size
