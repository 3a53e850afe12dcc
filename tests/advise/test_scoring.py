from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gptlab.advise.lm import load_lm, mean_hidden
from gptlab.eval.scoring import encode, eos_token_id, logits_of, loglikelihood, pick_choice, split_encode

REQUESTS = [("In the beginning God created", " the heaven"), ("", "And it came to pass"),
            ("The license grants permission ", "to copy"), ("x", " y"),
            ("Text: a manual page\nLabel:", " man"), ("Text: a manual page\nLabel:", " bible")]


def brute_force(model, tok, context, continuation, max_len):
    """One request at a time, no padding: sum log p(continuation) and whether greedy reproduces it."""
    ctx, cont = split_encode(tok, context, continuation)
    seq = ([eos_token_id(tok)] + ctx + cont)[-(max_len + 1):]
    with torch.no_grad():
        logp = F.log_softmax(logits_of(model, torch.tensor([seq[:-1]])).float(), -1)[0]
    rows = logp[len(seq) - 1 - len(cont):]
    target = torch.tensor(cont)
    return rows.gather(1, target[:, None]).sum().item(), bool((rows.argmax(-1) == target).all())


@pytest.mark.parametrize("which", ["gptlab", "hf"])
def test_batched_scores_match_one_at_a_time(which, untrained_checkpoint_dir, hf_model_dir):
    lm = load_lm(untrained_checkpoint_dir if which == "gptlab" else hf_model_dir)
    assert lm.kind == which
    long_context = "And the LORD spake unto Moses, saying, " * 40       # far beyond the context: left-truncated
    requests = REQUESTS + [(long_context, " Speak")]
    got = loglikelihood(lm.model, lm.tokenizer, requests, batch_size=3)
    for (context, continuation), (score, greedy) in zip(requests, got):
        want, want_greedy = brute_force(lm.model, lm.tokenizer, context, continuation, lm.max_length)
        assert score == pytest.approx(want, abs=1e-4) and greedy == want_greedy
        assert score < 0
    # Another batch size changes the GEMM shapes, hence the float summation order: equal to 1e-5.
    again = loglikelihood(lm.model, lm.tokenizer, requests, batch_size=16)
    assert [g for _, g in got] == [g for _, g in again]
    assert [s for s, _ in got] == pytest.approx([s for s, _ in again], abs=1e-5)


def test_greedy_continuation_is_flagged_and_ranked_first(trained_checkpoint):
    lm = load_lm(trained_checkpoint)
    tok, context = lm.tokenizer, "And it came to pass, that"
    with torch.no_grad():
        ids = torch.tensor([[eos_token_id(tok)] + encode(tok, context)])
        best = int(lm.model(ids)[0, -1].argmax())
    greedy_text = tok.decode([best])
    assert encode(tok, context + greedy_text)[-1] == best, "test premise: the token re-encodes to itself"
    worst = int(lm.model(ids)[0, -1].argmin())
    scores = loglikelihood(lm.model, tok, [(context, tok.decode([worst])), (context, greedy_text)])
    assert scores[1][1] is True and scores[0][1] is False
    assert pick_choice(scores) == 1


def test_trailing_space_moves_to_the_continuation(untrained_checkpoint_dir):
    lm = load_lm(untrained_checkpoint_dir)
    a = loglikelihood(lm.model, lm.tokenizer, [("Label: ", "man")])
    b = loglikelihood(lm.model, lm.tokenizer, [("Label:", " man")])
    assert a == b
    with pytest.raises(ValueError, match="empty"):
        loglikelihood(lm.model, lm.tokenizer, [("Label:", "")])


def test_mean_hidden_features(untrained_checkpoint_dir, hf_model_dir):
    for path, width in ((untrained_checkpoint_dir, 64), (hf_model_dir, 32)):
        lm = load_lm(path)
        feats = mean_hidden(lm, ["short", "a much longer text " * 30, "short"], batch_size=2)
        assert feats.shape == (3, width)
        assert abs(feats[0] - feats[2]).max() < 1e-5        # padding in a batch does not change a text's vector
        assert abs(feats[0] - feats[1]).max() > 1e-3
