"""Text generation: temperature, top-k and top-p (nucleus) sampling with a seed and a KV cache.

The prompt is conditioned on the end-of-text token, as every training document is, and
generation stops at end-of-text, at a stop string, or after ``max_new_tokens``.

One window rule holds with and without the KV cache (``context_window``): the model
conditions on the last ``block_size`` tokens, as nanoGPT's sampler does. With the cache,
each step feeds only the new token while the sequence fits in the block; past it the
window slides by one token a step, which moves every position in it, so the cached keys no
longer apply and each step recomputes the window, as uncached decoding does. Both therefore
give the same tokens at any length.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from gptlab.api import load_model
from gptlab.eval.scoring import eos_token_id, generation_context, prompt_ids
from gptlab.model.gpt import KVCache
from gptlab.tokenizer import load_tokenizer


@dataclass
class Sampling:
    temperature: float = 1.0          # 0 = greedy (argmax)
    top_k: int | None = None          # keep the k most likely tokens
    top_p: float | None = None        # keep the smallest set of tokens whose probability reaches p
    seed: int | None = None


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Set to -inf every logit that top-k or top-p excludes (logits: [..., V])."""
    logits = logits.clone()
    if top_k is not None and 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits[logits < kth] = float("-inf")
    if top_p is not None and 0.0 < top_p < 1.0:
        probs, order = torch.sort(torch.softmax(logits, dim=-1), dim=-1, descending=True)
        # Drop a token once the more likely tokens before it already hold p of the mass:
        # the most likely token always survives.
        drop_sorted = (probs.cumsum(-1) - probs) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits[drop] = float("-inf")
    return logits


def sample_next(logits: torch.Tensor, s: Sampling, generator: torch.Generator | None = None) -> torch.Tensor:
    """One token id per row of ``logits`` [B, V]."""
    if s.temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(filter_logits(logits.float() / s.temperature, s.top_k, s.top_p), dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def context_window(seq: list[int], block: int) -> list[int]:
    """The tokens the next one is predicted from: the last ``block`` of ``seq``."""
    return seq[-block:]


@torch.no_grad()
def generate_ids(model, ids: list[int], max_new_tokens: int, s: Sampling = Sampling(),
                 stop_ids: tuple[int, ...] = (), use_cache: bool = True, should_stop=None) -> list[int]:
    """Generated token ids (without the prompt ``ids``). ``should_stop(new_ids)`` may end early."""
    block = model.config.block_size
    device = next(model.parameters()).device
    generator = None
    if s.seed is not None:
        generator = torch.Generator(device=device)
        generator.manual_seed(s.seed)
    was_training = model.training
    model.eval()
    seq, new = list(ids), []
    cache, fed = KVCache(model), 0       # fed: how many tokens of seq the cache holds
    for _ in range(max_new_tokens):
        if use_cache and len(seq) <= block:
            # The window is the whole sequence: feed only what the cache has not seen.
            logits = model(torch.tensor([seq[fed:]], device=device), cache=cache)
            fed = len(seq)
        else:
            logits = model(torch.tensor([context_window(seq, block)], device=device))
        nxt = int(sample_next(logits[:, -1, :], s, generator)[0])
        seq.append(nxt)
        new.append(nxt)
        if nxt in stop_ids or (should_stop is not None and should_stop(new)):
            break
    model.train(was_training)
    return new


def cut_at_stop(text: str, stop: list[str]) -> str:
    """The text before the first occurrence of any stop string."""
    for st in stop:
        if st and st in text:
            text = text[:text.index(st)]
    return text


def generate_text(model, tokenizer, prompt: str, max_new_tokens: int = 64, s: Sampling = Sampling(),
                  stop: list[str] | None = None, use_cache: bool = True, max_length: int | None = None) -> str:
    """The continuation of ``prompt`` (the prompt itself is not repeated). With ``max_length``
    (a task's context), the prompt keeps room for the answer (``generation_context``), as
    lm-eval truncates; without it, long generations slide the window (``context_window``)."""
    eos = eos_token_id(tokenizer)
    ids = prompt_ids(tokenizer, prompt)
    if max_length is not None:
        ids = generation_context(ids, max_length, max_new_tokens)
    stop = list(stop or [])

    def should_stop(new: list[int]) -> bool:
        return bool(stop) and any(st in tokenizer.decode(new) for st in stop)

    new = generate_ids(model, ids, max_new_tokens, s, stop_ids=(eos,) if eos is not None else (),
                       use_cache=use_cache, should_stop=should_stop)
    if new and eos is not None and new[-1] == eos:
        new = new[:-1]
    return cut_at_stop(tokenizer.decode(new), stop)


def run_generate(checkpoint, prompt: str, max_new_tokens: int = 64, temperature: float = 0.8,
                 top_k: int | None = 50, top_p: float | None = None, seed: int | None = 0,
                 num_samples: int = 1, use_cache: bool = True, device: str = "cpu") -> list[str]:
    """`gptlab generate`: continuations of ``prompt`` from a checkpoint (or training/run folder)."""
    model, ckpt = load_model(checkpoint, return_path=True, device=device)
    tok = load_tokenizer(ckpt)
    out = []
    for i in range(num_samples):
        s = Sampling(temperature, top_k, top_p, None if seed is None else seed + i)
        out.append(generate_text(model, tok, prompt, max_new_tokens, s, use_cache=use_cache))
    return out
