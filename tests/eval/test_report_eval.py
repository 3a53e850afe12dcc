from gptlab.manifest import write_manifest
from gptlab.report import write_report


def test_report_has_domain_task_harness_and_helm_coverage_tables(tmp_path):
    run = tmp_path / "run"
    dom = {"docs": 2, "bytes": 100, "tokens": 40, "bpb": 2.5, "unigram_bpb": 5.0}
    write_manifest(run / "eval", stage="eval", key="k", outputs=[],
                   summary={"domains": {"code": dom, "prose": dom}, "overall": dom, "window": 64, "stride": 32})
    write_manifest(run / "eval" / "tasks", stage="eval-tasks", key="k", outputs=[], summary={"tasks": {
        "cloze_mc": {"kind": "multiple_choice", "num_fewshot": 2, "seed": 1, "n": 10,
                     "metrics": {"acc": 0.3, "acc_norm": 0.4, "acc_bytes": 0.5}},
        "cloze_gen": {"kind": "generation", "num_fewshot": 0, "seed": 1, "n": 10,
                      "metrics": {"exact_match": 0.1, "f1": 0.25}},
        "tiny_code": {"kind": "code", "num_fewshot": 0, "seed": 1, "n": 5,
                      "metrics": {"pass@1": 0.2, "pass@10": 0.6}, "intervals": {"pass@1": [0.0, 0.5]}}}})
    write_manifest(run / "eval" / "harness", stage="eval-harness", key="k", outputs=[],
                   summary={"tasks": {"hellaswag": {"acc": 0.26, "acc_norm": 0.27}}})
    html = write_report(run).read_text()
    assert 'id="evaluation"' in html and "50%" in html             # model vs unigram: 1 - 2.5/5
    assert ('<td>cloze_mc</td><td>multiple choice</td><td class="num">2</td><td class="num">10</td><td class="num">0.300</td>'
            '<td class="num">0.400</td><td class="num">0.500</td>') in html
    assert ('<td>cloze_gen</td><td>generation</td><td class="num">0</td><td class="num">10</td><td class="num">—</td>'
            '<td class="num">—</td><td class="num">—</td><td class="num">0.100</td><td class="num">0.250</td>') in html
    assert "acc 0.260, acc_norm 0.270" in html
    assert "<td>pass@1 0.200, pass@10 0.600</td><td>pass@1 [0.000, 0.500]</td>" in html   # code tasks: pass@k
    assert "<td>HellaSwag</td><td>question answering</td><td>hellaswag</td><td>run</td>" in html
    assert "<td>MMLU</td><td>question answering</td><td>mmlu</td><td>available</td>" not in html   # no dataset here
    assert "<td>QuAC</td><td>question answering</td><td>—</td><td>not covered</td>" in html
    assert "<td>Language modelling (held-out, per domain)</td><td>language modelling</td><td>gptlab eval (bpb)</td><td>run</td>" in html
    assert "<td>calibration</td><td>not covered</td>" in html and "<td>accuracy</td><td>covered</td>" in html
