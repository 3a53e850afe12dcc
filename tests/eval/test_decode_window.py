"""Cached and uncached decoding follow one window rule, also past ``block_size``.

The tiny model has a block of 16 tokens; a 4-token prompt and 40 new tokens take the
sequence well past it, where a decoder that re-primes its cache from a shorter window
would condition on different tokens than the uncached one.
"""
import pytest
import torch

from gptlab.eval.generate import Sampling, context_window, generate_ids

BLOCK = 16
PROMPT = [0, 5, 9, 3]


def sharp(model, scale: float = 5.0):
    """At its initialisation a model is nearly a unigram model: its argmax hardly depends on the
    context, so no window rule could be told from another. Scaled-up matrices make attention
    sharp and each prediction depend on which tokens are in view."""
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.mul_(scale)
    return model


def reference_greedy(model, ids: list[int], n: int) -> list[int]:
    """Greedy decoding written out: each token is the argmax given the last ``BLOCK`` tokens."""
    seq = list(ids)
    with torch.no_grad():
        for _ in range(n):
            seq.append(int(model(torch.tensor([seq[-BLOCK:]]))[0, -1].argmax()))
    return seq[len(ids):]


def test_the_window_is_the_last_block_of_tokens():
    assert context_window(list(range(10)), 16) == list(range(10))
    assert context_window(list(range(40)), 16) == list(range(24, 40))


@pytest.mark.parametrize("arch", [{}, dict(position="rope"), dict(position="alibi")])
def test_greedy_tokens_agree_with_and_without_the_cache_past_the_block(arch, tiny_gpt):
    model = sharp(tiny_gpt(block_size=BLOCK, **arch))
    n = 40                                       # the sequence ends at 44 tokens, ~3 blocks
    cached = generate_ids(model, PROMPT, n, Sampling(temperature=0), use_cache=True)
    uncached = generate_ids(model, PROMPT, n, Sampling(temperature=0), use_cache=False)
    assert len(cached) == n
    assert cached == uncached
    assert cached == reference_greedy(model, PROMPT, n)


def test_seeded_sampling_agrees_with_and_without_the_cache_past_the_block(tiny_gpt):
    model = sharp(tiny_gpt(block_size=BLOCK, position="rope"))
    s = Sampling(temperature=1.0, top_k=20, seed=7)
    assert generate_ids(model, PROMPT, 40, s, use_cache=True) == generate_ids(model, PROMPT, 40, s, use_cache=False)


def test_a_prompt_longer_than_the_block_keeps_its_last_block(tiny_gpt):
    model = sharp(tiny_gpt(block_size=BLOCK))
    prompt = [(7 * i) % 64 for i in range(30)]
    cached = generate_ids(model, prompt, 5, Sampling(temperature=0), use_cache=True)
    assert cached == generate_ids(model, prompt, 5, Sampling(temperature=0), use_cache=False)
    assert cached == reference_greedy(model, prompt, 5)
