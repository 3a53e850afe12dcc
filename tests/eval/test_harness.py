"""lm-evaluation-harness: the adapter, offline, and three routes that must agree on the same weights.

Route 1: gptlab's own task runner. Route 2: lm-eval through the ``gptlab`` adapter (via the
``gptlab eval --harness`` command). Route 3: lm-eval's ``--model hf`` on the Hugging Face
export of the same checkpoint. The multiple-choice task is a cloze task cut from held-out
documents, which the tokenizer never saw; the generation task is fixed text (see below).
"""
import json
import math
import os
from pathlib import Path

import pytest
import torch

import gptlab
from gptlab.cli import main
from gptlab.eval.cloze import write_cloze_tasks
from gptlab.eval.harness import GptlabLM, run_harness, write_harness_task
from gptlab.eval.scoring import encode, eos_token_id, prompt_ids
from gptlab.eval.tasks import evaluate_task, load_task
from gptlab.interop import export_hf
from gptlab.tokenizer import load_tokenizer

pytest.importorskip("lm_eval")
pytest.importorskip("transformers")

TOL = 1e-4
MAX_GEN = 6

# The generation task is fixed text, the same on every machine (the cloze task above is cut
# from held-out documents, which differ with the host's Python): short queries, and long ones
# that cannot fit in the 64-token context with 6 tokens of answer on any tokenizer (one token
# a word at the least), so every route must cut them, and all the same way.
GENESIS = ("In the beginning God created the heaven and the earth. And the earth was without form, and void; "
           "and darkness was upon the face of the deep. And the Spirit of God moved upon the face of the waters. "
           "And God said, Let there be light: and there was light. And God saw the light, that it was good: "
           "and God divided the light from the darkness.")
FIXED_GENERATION = (
    [{"query": q, "answer": a} for q, a in [
        ("In the beginning God created the heaven and", "the"),
        ("And the earth was without form, and", "void"),
        ("And God said, Let there be", "light"),
        ("And God saw the light, that it was", "good"),
        ("And God called the light Day, and the darkness he called", "Night"),
        ("And the evening and the morning were the", "first")]]
    + [{"query": GENESIS + " And God called the light", "answer": "Day"},
       {"query": GENESIS + " " + GENESIS + " And the evening and the morning were", "answer": "the"}])


def write_fixed_generation_task(out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "fixed_gen.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in FIXED_GENERATION))
    return path


@pytest.fixture(scope="module")
def model_and_tokenizer(trained_checkpoint):
    return gptlab.load_model(trained_checkpoint), load_tokenizer(trained_checkpoint)


@pytest.fixture(scope="module")
def routes(curated, trained_checkpoint, model_and_tokenizer, tmp_path_factory):
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"

    tmp = tmp_path_factory.mktemp("harness")
    mc, _ = write_cloze_tasks(curated / "heldout", tmp / "tasks", n_rows=10)
    gen = write_fixed_generation_task(tmp / "tasks")
    for f in (mc, gen):
        write_harness_task(f, tmp / "yaml", max_gen_toks=MAX_GEN)
    model, tok = model_and_tokenizer
    own = {"mc": evaluate_task(model, tok, load_task(mc)),
           "gen": evaluate_task(model, tok, load_task(gen), max_new_tokens=MAX_GEN)}
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
    block = routes["model"].config.block_size
    lengths = [len(prompt_ids(routes["tok"], r["query"])) for r in FIXED_GENERATION]
    assert min(lengths) <= block - MAX_GEN < max(lengths)          # both kinds of prompt are there
    own = [r["prediction"] for r in routes["own"]["gen"]["rows"]]
    assert len(own) == len(FIXED_GENERATION)
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
