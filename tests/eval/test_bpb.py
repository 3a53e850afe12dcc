import math

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tokenizers import Tokenizer, models, pre_tokenizers

from gptlab.data.documents import Document, write_shard
from gptlab.eval.bpb import evaluate_bpb, make_bpb_eval, token_nll, unigram_bits, windows
from gptlab.train.hooks import EvalHook, MetricsHook


@pytest.mark.parametrize("n, width, stride", [(2, 4, 2), (10, 4, 2), (10, 4, 4), (33, 8, 3), (9, 16, 8)])
def test_windows_score_every_target_exactly_once(n, width, stride):
    ids = list(range(n))
    scored = []
    for inp, tgt, first in windows(ids, width, stride):
        assert len(inp) == len(tgt) <= width
        assert inp[1:] == tgt[:-1]                      # targets are next tokens
        scored += tgt[first:]
    assert scored == ids[1:]


class Uniform(torch.nn.Module):
    """Predicts every token with probability 1/V: NLL is ln V per token."""

    def __init__(self, V, block):
        super().__init__()
        self.V = V
        self.config = type("C", (), {"block_size": block})()

    def forward(self, x):
        return torch.zeros(*x.shape, self.V)


def test_token_nll_of_a_uniform_model_is_n_ln_v():
    nll = token_nll(Uniform(7, 4), [[0, 1, 2, 3, 4, 5, 6], [0, 3]], width=4, stride=2, batch_size=3)
    assert nll == pytest.approx([6 * math.log(7), 1 * math.log(7)])


def test_bpb_hand_computed_for_uniform_model_and_unigram():
    vocab = {"<|endoftext|>": 0, "a": 1, "b": 2, "c": 3}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="c"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    docs = [Document("1", "a b a", "s", "x"), Document("2", "b", "s", "y")]
    counts = np.array([0, 3, 1, 0])
    r = evaluate_bpb(Uniform(4, 4), tok, docs, counts, stride_fraction=0.5)
    # doc 1: 3 tokens over 5 bytes; doc 2: 1 token over 1 byte; uniform = 2 bits/token.
    assert r["domains"]["x"]["bpb"] == pytest.approx(3 * 2 / 5)
    assert r["domains"]["y"]["bpb"] == pytest.approx(2 / 1)
    assert r["overall"]["bpb"] == pytest.approx(4 * 2 / 6)
    p = (counts + 1) / (counts.sum() + 4)               # add-one smoothing: a 4/8, b 2/8
    expect_x = -(2 * math.log2(p[1]) + math.log2(p[2])) / 5
    assert r["domains"]["x"]["unigram_bpb"] == pytest.approx(expect_x)
    assert unigram_bits([[0, 2]], counts) == pytest.approx([-math.log2(p[2])])


def test_trained_model_beats_unigram_on_held_out_text(heldout_eval):
    r = heldout_eval
    assert r["overall"]["bpb"] < r["overall"]["unigram_bpb"]
    assert set(r["domains"]) >= {"code", "prose", "bible"}


def test_make_bpb_eval_feeds_the_training_hook_and_tensorboard(tmp_path):


    vocab = {"<|endoftext|>": 0, "a": 1, "b": 2, "c": 3}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="c"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    (tmp_path / "heldout").mkdir()
    write_shard(tmp_path / "heldout" / "part-00000.jsonl.zst",
                [Document("1", "a b a", "s", "code"), Document("2", "b", "s", "prose")])
    evaluate = make_bpb_eval(tmp_path / "heldout", tok)

    class UniformModel(Uniform):
        def __init__(self):
            super().__init__(4, 4)
            self.w = torch.nn.Parameter(torch.zeros(1))     # a device to read

    metrics = MetricsHook(tmp_path / "train")
    state = type("S", (), {"step": 4, "model": UniformModel(), "batches": type("B", (), {"skips": []})(),
                           "dist": type("D", (), {"is_main": True, "world": 1})()})()
    metrics.on_train_start(state)
    hook = EvalHook(2, evaluate, metrics)
    row = {"step": 4}
    hook.on_step_end(state, row)
    metrics.on_train_end(state)
    assert row["eval_bpb"] == pytest.approx(4 * 2 / 6)          # 4 tokens x 2 bits over 6 bytes
    tb = EventAccumulator(str(tmp_path / "train" / "tb"))
    tb.Reload()
    assert tb.Scalars("eval_bpb/code")[0].value == pytest.approx(3 * 2 / 5)
    assert tb.Scalars("eval_bpb/prose")[0].value == pytest.approx(2.0)
    assert tb.Scalars("eval_bpb/code")[0].step == 4


def test_token_nll_reports_every_batch_against_a_known_total():
    calls = []
    token_nll(Uniform(7, 4), [[0, 1, 2, 3, 4, 5, 6], [0, 3], [0, 1, 2]], width=4, stride=2, batch_size=2,
              on_batch=lambda done, total: calls.append((done, total)))
    n = calls[0][1]
    assert n >= 2 and calls == [(i, n) for i in range(1, n + 1)]
