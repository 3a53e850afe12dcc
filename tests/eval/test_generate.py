import pytest
import torch

from gptlab.cli import main
from gptlab.eval.generate import Sampling, cut_at_stop, filter_logits, generate_ids, generate_text, sample_next
from gptlab.model.gpt import KVCache

ARCHS = {
    "learned": {},
    "alibi": dict(position="alibi", embed_norm=True),
    "rope-mqa-parallel": dict(position="rope", rope_style="interleaved", n_kv_head=1, block="parallel"),
    "rope-half-postln": dict(position="rope", rope_fraction=0.5, placement="post"),
}


@pytest.mark.parametrize("arch", ARCHS)
def test_kv_cache_gives_the_same_logits_as_a_full_forward(arch, tiny_gpt):
    model = tiny_gpt(**ARCHS[arch])
    ids = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(1))
    full = model(ids)
    cache = KVCache(model)
    parts = [model(ids[:, :5], cache=cache), model(ids[:, 5:6], cache=cache), model(ids[:, 6:16], cache=cache)]
    assert cache.length == 16
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-5)
    with pytest.raises(ValueError, match="exceeds block_size"):
        model(ids[:, :1], cache=cache)


def test_greedy_generation_is_the_same_with_and_without_the_cache(tiny_gpt):
    model = tiny_gpt(position="rope")
    prompt = [0, 5, 9, 3]
    # 12 new tokens: the cache stays within the block of 16, so both see the same context.
    a = generate_ids(model, prompt, 12, Sampling(temperature=0), use_cache=True)
    b = generate_ids(model, prompt, 12, Sampling(temperature=0), use_cache=False)
    assert a == b and len(a) == 12
    # Past the block the window slides (the cache recomputes it each step); generation goes on.
    assert len(generate_ids(model, prompt, 30, Sampling(temperature=0))) == 30


def test_top_k_and_top_p_keep_the_hand_computed_sets():
    logits = torch.log(torch.tensor([[0.05, 0.5, 0.15, 0.3]]))
    kept = lambda t: torch.isfinite(t[0]).nonzero().flatten().tolist()
    assert kept(filter_logits(logits, top_k=2)) == [1, 3]
    assert kept(filter_logits(logits, top_p=0.8)) == [1, 3]          # 0.5 + 0.3 reaches 0.8
    assert kept(filter_logits(logits, top_p=0.81)) == [1, 2, 3]
    assert kept(filter_logits(logits, top_p=0.4)) == [1]             # the top token always stays
    assert kept(filter_logits(logits, top_k=3, top_p=0.6)) == [1, 3]


def test_sampling_follows_the_filtered_distribution_and_the_seed():
    logits = torch.log(torch.tensor([[0.05, 0.5, 0.15, 0.3]])).repeat(4000, 1)
    g = torch.Generator().manual_seed(0)
    draws = sample_next(logits, Sampling(temperature=1.0, top_k=2), g)
    assert set(draws.tolist()) == {1, 3}
    assert (draws == 1).float().mean().item() == pytest.approx(0.5 / 0.8, abs=0.03)
    # temperature -> 0 is greedy; a low temperature sharpens towards it
    assert sample_next(logits[:1], Sampling(temperature=0)).item() == 1
    cold = sample_next(logits, Sampling(temperature=0.1), torch.Generator().manual_seed(0))
    assert (cold == 1).float().mean().item() > 0.95


def test_same_seed_same_text_and_stop_strings(word_tokenizer, tiny_gpt):
    model = tiny_gpt(vocab_size=word_tokenizer.get_vocab_size())
    s = Sampling(temperature=1.0, top_p=0.9, seed=3)
    a = generate_text(model, word_tokenizer, "the cat", 10, s)
    assert a == generate_text(model, word_tokenizer, "the cat", 10, s)
    others = {generate_text(model, word_tokenizer, "the cat", 10, Sampling(1.0, None, 0.9, seed)) for seed in range(5)}
    assert len(others) > 1
    assert cut_at_stop("the cat . sat", [" .", "zzz"]) == "the cat"


def test_generate_cli_produces_text_from_the_demo_checkpoint(trained_run, capsys):
    assert main(["generate", "--checkpoint", str(trained_run), "--prompt", "In the beginning",
                 "--max-new-tokens", "12", "--seed", "1", "--top-k", "40", "--top-p", "0.95"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("In the beginning") and len(out.strip()) > len("In the beginning")
