"""What every kind of local task shares: the error type, the few-shot draw, answer normalisation,
intervals, and decoding from any causal LM.

Below ``tasks.py`` (the loader and runner) and the kinds it dispatches to (``cot.py``,
``code.py``), so they all use it without importing one another in a circle.
"""
from __future__ import annotations

import math
import random
import re
import statistics
import string
from typing import Any, Sequence

import torch

from gptlab.errors import InputError
from gptlab.eval.generate import Sampling, cut_at_stop, generate_text, sample_next
from gptlab.eval.scoring import context_length, eos_token_id, generation_context, logits_of, model_device, prompt_ids
from gptlab.model.gpt import GPT

RESAMPLES = 1000


class TaskError(InputError):   # a ValueError too
    """A task file that cannot be read, with the file, line and key at fault."""


def draw_shots(i: int, candidates: Sequence[int], k: int, seed: int) -> list[int]:
    """k of ``candidates`` as row i's few-shot examples: fixed by (seed, i) alone, so a row's
    prompt does not depend on which other rows are evaluated, or in what order."""
    if k > len(candidates):
        raise TaskError(f"{k}-shot needs {k} other examples; the pool has {len(candidates)}")
    return random.Random(f"{seed}:{i}").sample(list(candidates), k)


def fewshot_indices(i: int, pool_size: int, k: int, seed: int, exclude_self: bool) -> list[int]:
    """Which pool rows serve as row i's k examples: fixed by (seed, i) alone."""
    return draw_shots(i, [j for j in range(pool_size) if not (exclude_self and j == i)], k, seed)


def normalize_answer(s: str) -> str:
    """SQuAD's normalisation: lower case, drop punctuation and articles, collapse spaces."""
    s = "".join(ch for ch in s.lower() if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def wilson(correct: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion: sane for small n and for rates near 0 or 1."""
    if n == 0:
        return 0.0, 1.0
    z = statistics.NormalDist().inv_cdf(0.5 + level / 2)
    p = correct / n
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, mid - half), min(1.0, mid + half)


def bootstrap_mean(values: Sequence[float], level: float = 0.95, seed: int = 0,
                   resamples: int = RESAMPLES) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (rows resampled with replacement)."""
    n = len(values)
    if n == 0:
        return 0.0, 0.0
    rng = random.Random(seed)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    alpha = (1 - level) / 2
    return means[int(alpha * (resamples - 1))], means[math.ceil((1 - alpha) * (resamples - 1))]


@torch.no_grad()
def lm_generate(model: Any, tokenizer: Any, prompt: str, max_new_tokens: int, s: Sampling = Sampling(temperature=0),
                stop: Sequence[str] = ()) -> str:
    """The continuation of ``prompt`` up to a stop string, from a gptlab GPT (KV-cached
    ``generate_text``) or any other causal LM that maps ids to logits (a Hugging Face model,
    as the advisor's bake-off loads: decoded without a cache). The prompt keeps room for the
    answer, as task prompts do."""
    stop = list(stop)
    if isinstance(model, GPT):
        return generate_text(model, tokenizer, prompt, max_new_tokens, s, stop=stop, max_length=context_length(model))
    eos, device = eos_token_id(tokenizer), model_device(model)
    ids = generation_context(prompt_ids(tokenizer, prompt), context_length(model), max_new_tokens)
    generator = None
    if s.seed is not None and s.temperature > 0:
        generator = torch.Generator(device=device)
        generator.manual_seed(s.seed)
    was_training = model.training
    model.eval()
    new: list[int] = []
    for _ in range(max_new_tokens):
        logits = logits_of(model, torch.tensor([ids + new], device=device))
        nxt = int(sample_next(logits[:, -1, :], s, generator)[0])
        if nxt == eos:
            break
        new.append(nxt)
        if stop and any(st in tokenizer.decode(new) for st in stop):
            break
    model.train(was_training)
    return cut_at_stop(tokenizer.decode(new), stop)
