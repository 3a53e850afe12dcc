"""The report tells the truth (issue 13, item 12): where quarantines happen, which HELM
scenarios can run here, and which columns are numbers."""
from __future__ import annotations

import re

from gptlab.manifest import write_manifest
from gptlab.report import coverage, write_report
from gptlab.report.html import _table


def _step(name, n_in, n_out, dropped=None):
    return {"name": name, "in_docs": n_in, "in_bytes": n_in * 100, "out_docs": n_out, "out_bytes": n_out * 100,
            "dropped": dropped or {}, "dropped_bytes": {}, "sources": {}}


def _run_with_quarantines(run):
    write_manifest(run / "harvest", stage="harvest", key="k", outputs=[], summary={
        "docs": 600, "quarantined": 4, "bytes": 60_000,
        "sources": {"web": {"docs": 600, "bytes": 60_000, "quarantined": {"empty": 4}, "truncated": 0}}})
    funnel = {"steps": [_step("normalize", 590, 590), _step("basic", 590, 500, {"too_short": 90})],
              "sources": {"web": {"in": 600, "kept": 500, "dropped": 90, "quarantined": 10}},
              "quarantined": {"malformed-json": 6, "binary-content": 4}}
    write_manifest(run / "curate", stage="curate", key="k", outputs=[], summary={
        "funnel": funnel, "in_docs": 600, "kept_docs": 500, "dropped_docs": 90, "quarantined_docs": 10,
        "train_docs": 480, "train_bytes": 48_000, "heldout_docs": 20, "heldout_bytes": 2_000,
        "heldout_domains": {"web": 20}, "recipe": {}, "classifier": {}, "dedup": {}})


def test_the_funnel_shows_curation_quarantine_as_its_own_stage(tmp_path, monkeypatch):
    stages = []
    monkeypatch.setattr("gptlab.report.html.funnel_chart",
                        lambda s, path: (stages.extend(s), path.write_bytes(b"png"), path)[2])
    _run_with_quarantines(tmp_path / "run")
    page = write_report(tmp_path / "run").read_text()
    labels = [s[0] for s in stages]
    i = labels.index("read by curate (10 quarantined)")
    assert stages[i][1] == 590 and labels[i + 1] == "after normalize" and stages[i + 1][1] == 590
    assert labels.index("harvested") < i
    row = re.search(r"<tr><td>quarantine \(reading the inputs\)</td>(.*?)</tr>", page).group(1)
    assert "600" in row and "590" in row and "malformed-json: 6" in row


def test_text_columns_are_left_aligned_and_numbers_right_aligned():
    t = _table(["step", "docs", "reasons"], [["normalize", 590, "—"], ["basic", 500, "too_short: 90"]])
    assert '<th>step</th><th class="num">docs</th><th>reasons</th>' in t
    assert '<td>normalize</td><td class="num">590</td><td>—</td>' in t


def test_helm_scenarios_are_available_only_with_their_dataset_on_the_machine(tmp_path, monkeypatch):
    for var in ("HF_DATASETS_CACHE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(coverage, "_harness_installed", lambda: True)
    helm = {s for s, _, _ in coverage.HELM_SCENARIOS}
    status = {r[0]: r[3] for r in coverage.scenario_coverage(tmp_path / "run") if r[0] in helm}
    assert "available" not in status.values()
    assert status["HellaSwag"] == "no dataset here" and status["QuAC"] == "not covered"
    (tmp_path / "hf" / "hub" / "datasets--Rowan--hellaswag").mkdir(parents=True)
    status = {r[0]: r[3] for r in coverage.scenario_coverage(tmp_path / "run")}
    assert status["HellaSwag"] == "available" and status["MMLU"] == "no dataset here"
    monkeypatch.setattr(coverage, "_harness_installed", lambda: False)
    assert {r[0]: r[3] for r in coverage.scenario_coverage(tmp_path / "run")}["HellaSwag"].startswith("needs lm-eval")
