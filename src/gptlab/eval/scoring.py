"""Log-likelihood of continuations, the building block of multiple-choice and k-shot evaluation.

``loglikelihood(model, tokenizer, [(context, continuation), ...])`` returns, per request,
``(sum of log p(continuation tokens | context), is_greedy)``, where ``is_greedy`` says
whether greedy decoding from the context would produce exactly the continuation. This is
the contract of lm-evaluation-harness's ``loglikelihood`` request, so tasks written for it
score the same way here.

It works with a gptlab model (``model(ids)`` → logits) and with a Hugging Face causal LM
(``model(ids).logits``), and with a ``tokenizers.Tokenizer`` or a ``transformers``
tokenizer. Details that matter for comparable numbers:

* The context and continuation are tokenized together, and the continuation is whatever
  the whole adds beyond the context's tokens (trailing spaces of the context move to the
  continuation first), so a word is never split differently from how the model saw it.
* An end-of-text token starts every sequence, so an empty context is valid.
* Sequences longer than the model's context keep their last tokens (left truncation).
  A generation request keeps room for its answer: the prompt keeps its last
  ``max_length - max_new_tokens`` tokens (``generation_context``), the rule of lm-eval's
  ``hf`` model, which gptlab's task runner and its lm-eval adapter both follow.
* Requests are sorted by length and batched with right padding, which a causal model never
  attends to.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import torch
import torch.nn.functional as F

from gptlab.errors import InputError

EOS_TEXT = "<|endoftext|>"


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` without special tokens, for either tokenizer family."""
    out = tokenizer.encode(text, add_special_tokens=False)
    return list(out.ids) if hasattr(out, "ids") else list(out)


def eos_token_id(tokenizer: Any) -> int | None:
    i = getattr(tokenizer, "eos_token_id", None)
    if i is None and hasattr(tokenizer, "token_to_id"):
        i = tokenizer.token_to_id(EOS_TEXT)
    return i


def prompt_ids(tokenizer: Any, text: str) -> list[int]:
    """``text``'s token ids after the end-of-text token (when the tokenizer has one)."""
    eos = eos_token_id(tokenizer)
    return ([eos] if eos is not None else []) + encode(tokenizer, text)


def generation_context(ids: list[int], max_length: int, max_new_tokens: int) -> list[int]:
    """The last ``max_length - max_new_tokens`` of a prompt's ``ids``: the answer then fits in
    the context, so the window never slides while it is generated. lm-eval's ``hf`` model
    truncates ``generate_until`` contexts so; gptlab's runner and adapter call this."""
    if not 0 <= max_new_tokens < max_length:
        raise InputError(f"{max_new_tokens} new tokens (max_gen_toks, --max-new-tokens) must be fewer "
                         f"than the model's context of {max_length}")
    return ids[-(max_length - max_new_tokens):]


def context_length(model: Any) -> int:
    cfg = model.config
    for name in ("block_size", "n_positions", "max_position_embeddings", "n_ctx"):
        n = getattr(cfg, name, None)
        if isinstance(n, int) and n > 0:
            return n
    raise InputError("cannot tell the model's context length from its config")


def model_device(model: Any) -> torch.device:
    return next(model.parameters()).device


def logits_of(model: Any, ids: torch.Tensor) -> torch.Tensor:
    out = model(ids)
    return out.logits if hasattr(out, "logits") else out


def split_encode(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    stripped = context.rstrip()
    continuation = context[len(stripped):] + continuation
    whole = encode(tokenizer, stripped + continuation)
    ctx = encode(tokenizer, stripped)
    return whole[:len(ctx)], whole[len(ctx):]


@torch.no_grad()
def loglikelihood(model: Any, tokenizer: Any, requests: Sequence[tuple[str, str]], batch_size: int = 16,
                  max_length: int | None = None, progress: Any = None) -> list[tuple[float, bool]]:
    """Score each (context, continuation); see the module docstring. ``progress(n)`` is called per batch."""
    eos = eos_token_id(tokenizer)
    max_len = max_length or context_length(model)
    device = model_device(model)
    jobs: list[tuple[list[int], list[int]]] = []
    for i, (context, continuation) in enumerate(requests):
        ctx, cont = split_encode(tokenizer, context, continuation)
        if not cont:
            raise InputError(f"request {i}: the continuation is empty")
        if len(cont) > max_len:
            raise InputError(f"request {i}: continuation of {len(cont)} tokens exceeds the context of {max_len}")
        seq = ([eos] if eos is not None else []) + ctx + cont
        if len(seq) < 2:
            raise InputError(f"request {i}: needs a context (the tokenizer has no end-of-text token)")
        seq = seq[-(max_len + 1):]
        jobs.append((seq[:-1], cont))

    results: list[tuple[float, bool]] = [(0.0, False)] * len(jobs)
    was_training = getattr(model, "training", False)
    model.eval()
    order = sorted(range(len(jobs)), key=lambda j: -len(jobs[j][0]))
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        width = max(len(jobs[j][0]) for j in chunk)
        x = torch.zeros(len(chunk), width, dtype=torch.long)
        for r, j in enumerate(chunk):
            x[r, :len(jobs[j][0])] = torch.tensor(jobs[j][0])
        logp = F.log_softmax(logits_of(model, x.to(device)).float(), dim=-1).cpu()
        for r, j in enumerate(chunk):
            inp, cont = jobs[j]
            n = len(cont)
            rows = logp[r, len(inp) - n:len(inp)]          # the positions that predict the continuation
            target = torch.tensor(cont)
            total = rows.gather(1, target[:, None]).sum().item()
            results[j] = (float(total), bool((rows.argmax(-1) == target).all()))
        if progress is not None:
            progress(len(chunk))
    if was_training:
        model.train()
    return results


def pick_choice(scores: Iterable[tuple[float, bool]]) -> int:
    """Index of the most likely choice (the first on ties), as lm-eval's ``acc`` does."""
    scores = list(scores)
    return max(range(len(scores)), key=lambda i: (scores[i][0], -i))
