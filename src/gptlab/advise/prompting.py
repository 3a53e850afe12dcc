"""Prompts for the bake-off's LM arms: demonstrations, templates and greedy decoding."""
from __future__ import annotations

import numpy as np
import torch

from gptlab.advise.labelled import Example
from gptlab.eval.cot import CotItem, Extractor, cot_prompt
from gptlab.eval.scoring import context_length, encode, eos_token_id, logits_of, model_device


def clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n]


def demonstrations(train: list[Example], k: int, seed: int) -> list[Example]:
    """k demonstrations drawn round-robin over labels, so every label is shown when k allows."""
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[Example]] = {}
    for i in rng.permutation(len(train)):
        by_label.setdefault(train[i].y, []).append(train[i])
    out: list[Example] = []
    while len(out) < k and any(by_label.values()):
        for lab in sorted(by_label):
            if by_label[lab] and len(out) < k:
                out.append(by_label[lab].pop())
    rng.shuffle(out)  # so the last demonstration's label does not always come last in label order
    return out


def classification_prompt(demos: list[Example], labels: list[str], text: str, max_chars: int) -> str:
    head = "Classify each text as one of: " + ", ".join(labels) + ".\n\n"
    shots = "".join(f"Text: {clip(d.x, max_chars)}\nLabel: {d.y}\n\n" for d in demos)
    return head + shots + f"Text: {clip(text, max_chars)}\nLabel:"


def generation_prompt(demos: list[Example], text: str, max_chars: int) -> str:
    shots = "".join(f"Input: {clip(d.x, max_chars)}\nOutput: {d.y}\n\n" for d in demos)
    return shots + f"Input: {clip(text, max_chars)}\nOutput:"


def cot_generation_prompt(demos: list[Example], rationales: list[str], text: str, max_chars: int) -> str:
    """k-shot chain of thought (Wei et al. 2022): each demonstration shows its rationale before
    "The answer is <label or target>."; ``eval/cot.py`` has the layout and the extraction."""
    shots = [CotItem(clip(d.x, max_chars), [d.y], r) for d, r in zip(demos, rationales, strict=True)]
    return cot_prompt(shots, CotItem(clip(text, max_chars), [""]))


def cot_predict(model, tokenizer, prompt: str, max_new_tokens: int,
                extractor: Extractor = Extractor()) -> tuple[str | None, str]:
    """(the extracted answer or None, the whole reasoning) for a ``cot_generation_prompt``."""
    out = greedy_generate(model, tokenizer, prompt, max_new_tokens, stop="\n\n")
    return extractor(out), out


@torch.no_grad()
def greedy_generate(model, tokenizer, prompt: str, max_new_tokens: int, stop: str = "\n") -> str:
    """Greedy decoding until ``stop`` appears or ``max_new_tokens``; keeps the last tokens that fit."""

    eos = eos_token_id(tokenizer)
    ids = ([eos] if eos is not None else []) + encode(tokenizer, prompt)
    n_ctx, device = context_length(model), model_device(model)
    new: list[int] = []
    for _ in range(max_new_tokens):
        x = torch.tensor([(ids + new)[-n_ctx:]], device=device)
        nxt = int(logits_of(model, x)[0, -1].argmax())
        if nxt == eos:
            break
        new.append(nxt)
        if stop in tokenizer.decode(new):
            break
    return tokenizer.decode(new).split(stop)[0].strip()
