"""lm-evaluation-harness: the adapter, offline, and three routes that must agree on the same weights.

Route 1: gptlab's own task runner. Route 2: lm-eval through the ``gptlab`` adapter (via the
``gptlab eval --harness`` command). Route 3: lm-eval's ``--model hf`` on the Hugging Face
export of the same checkpoint. The task is a cloze task cut from held-out documents, which
the tokenizer never saw.
"""
import json
import math
import os

import pytest
import torch

import gptlab
from gptlab.cli import main
from gptlab.eval.cloze import write_cloze_tasks
from gptlab.eval.harness import GptlabLM, run_harness, write_harness_task
from gptlab.eval.scoring import encode, eos_token_id
from gptlab.eval.tasks import evaluate_task, load_task
from gptlab.interop import export_hf
from gptlab.tokenizer import load_tokenizer

pytest.importorskip("lm_eval")
pytest.importorskip("transformers")

TOL = 1e-4


@pytest.fixture(scope="module")
def model_and_tokenizer(trained_checkpoint):
    return gptlab.load_model(trained_checkpoint), load_tokenizer(trained_checkpoint)


@pytest.fixture(scope="module")
def routes(curated, trained_checkpoint, model_and_tokenizer, tmp_path_factory):
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"

    tmp = tmp_path_factory.mktemp("harness")
    mc, gen = write_cloze_tasks(curated / "heldout", tmp / "tasks", n_rows=10)
    for f in (mc, gen):
        write_harness_task(f, tmp / "yaml", max_gen_toks=6)
    model, tok = model_and_tokenizer
    own = {"mc": evaluate_task(model, tok, load_task(mc)),
           "gen": evaluate_task(model, tok, load_task(gen), max_new_tokens=6)}
    assert main(["eval", "--harness", f"{mc.stem},{gen.stem}", "--checkpoint", str(trained_checkpoint),
                 "--include-path", str(tmp / "yaml"), "--out", str(tmp / "adapter"), "--log-samples"]) == 0
    adapter = json.loads((tmp / "adapter" / "harness" / "results.json").read_text())["summary"]
    adapter["samples"] = json.loads((tmp / "adapter" / "harness" / "samples.json").read_text())
    hf_dir = export_hf(trained_checkpoint, tmp / "hf")
    hf = run_harness([mc.stem, gen.stem], model="hf", include_path=tmp / "yaml", log_samples=True,
                     model_args={"pretrained": str(hf_dir), "dtype": "float32", "add_bos_token": True})
    return {"own": own, "adapter": adapter, "hf": hf, "mc": mc.stem, "gen": gen.stem, "model": model, "tok": tok}


def _row_lls(summary, task):
    rows = sorted(summary["samples"][task], key=lambda s: s["doc_id"])
    return [[float(r[0][0]) for r in s["resps"]] for s in rows]


@pytest.mark.slow
def test_three_routes_agree_on_multiple_choice(routes):
    own = routes["own"]["mc"]
    assert routes["own"]["mc"]["n"] == 10 and routes["adapter"]["n"][routes["mc"]] == 10
    for route in ("adapter", "hf"):
        metrics = routes[route]["tasks"][routes["mc"]]
        for m in ("acc", "acc_norm", "acc_bytes"):
            assert metrics[m] == pytest.approx(own["metrics"][m], abs=TOL), (route, m)
        lls = _row_lls(routes[route], routes["mc"])
        for mine, theirs in zip((r["loglikelihoods"] for r in own["rows"]), lls, strict=True):
            assert theirs == pytest.approx(mine, abs=TOL), route


@pytest.mark.slow
def test_three_routes_generate_the_same_answers(routes):
    own = [r["prediction"] for r in routes["own"]["gen"]["rows"]]
    for route in ("adapter", "hf"):
        rows = sorted(routes[route]["samples"][routes["gen"]], key=lambda s: s["doc_id"])
        assert [s["resps"][0][0] for s in rows] == own, route
    assert routes["adapter"]["tasks"][routes["gen"]]["exact_match"] == routes["hf"]["tasks"][routes["gen"]]["exact_match"]


class _Req:
    def __init__(self, *args):
        self.args = args


def test_adapter_rolling_loglikelihood_predicts_every_token_once(model_and_tokenizer):
    """A unigram model (log p independent of context) makes the rolling total hand-computable."""

    tok = model_and_tokenizer[1]
    V = tok.get_vocab_size()
    logp = torch.log_softmax(torch.randn(V, generator=torch.Generator().manual_seed(0)), -1)

    class Unigram(torch.nn.Module):
        config = type("C", (), {"block_size": 8})()

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, ids):
            return logp.expand(*ids.shape, V)

    lm = GptlabLM(model=Unigram(), tokenizer=tok, batch_size=3)
    text = "In the beginning God created the heaven and the earth, and the earth was without form."
    ids = encode(tok, text)
    assert len(ids) > 2 * 8                                  # several windows
    (total,) = lm.loglikelihood_rolling([_Req(text)])
    assert total == pytest.approx(logp[ids].sum().item(), abs=1e-4)


def test_adapter_on_the_real_model_matches_direct_scoring(model_and_tokenizer):

    model, tok = model_and_tokenizer
    lm = GptlabLM(model=model, tokenizer=tok)
    text = "And God said, Let there be light"
    ids = [eos_token_id(tok)] + encode(tok, text)
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids[:-1]])), -1)[0]
    expect = logp.gather(1, torch.tensor(ids[1:])[:, None]).sum().item()
    assert lm.loglikelihood_rolling([_Req(text)])[0] == pytest.approx(expect, abs=1e-4)
    (ll, greedy), = lm.loglikelihood([_Req("And God said,", " Let there be light")])
    assert math.isfinite(ll) and ll < 0 and isinstance(greedy, bool)
    out = lm.generate_until([_Req("And God said,", {"until": ["\n"], "max_gen_toks": 5})])
    assert isinstance(out[0], str) and "\n" not in out[0]
