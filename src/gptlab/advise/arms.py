"""The bake-off's arms. Each takes the labelled examples (and an LM where it needs one) and
returns an arm record from :func:`gptlab.advise.metrics.arm_result`.

classification: ``prompt_classify`` (k-shot, labels scored as continuations), ``probe_ngrams``
and ``probe_hidden`` (logistic regression on n-gram or LM features), ``hybrid_classify``
(the n-gram probe trained on the prompted LM's labels).
generation: ``prompt_generate`` (k-shot greedy decoding), ``finetune_generate`` (a fine-tuned copy).
"""
from __future__ import annotations

import copy
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from gptlab.advise.labelled import Example
from gptlab.advise.lm import mean_hidden
from gptlab.advise.metrics import arm_result
from gptlab.advise.prompting import classification_prompt, clip, demonstrations, generation_prompt, greedy_generate
from gptlab.console import progress_task, track
from gptlab.eval.scoring import (
    context_length,
    encode,
    eos_token_id,
    logits_of,
    loglikelihood,
    model_device,
    pick_choice,
    split_encode,
)

if TYPE_CHECKING:
    from gptlab.advise.bakeoff import BakeoffSettings


# ----------------------------------------------------------------------------- classification

def _prompt_predict(lm, demos: list[Example], labels: list[str], texts: list[str], s: BakeoffSettings,
                    description: str) -> tuple[list[str], float, float]:
    """k-shot label predictions for ``texts``: (labels, seconds, prompt tokens per text)."""

    prompts = [classification_prompt(demos, labels, t, s.max_chars) for t in texts]
    requests = [(p, " " + lab) for p in prompts for lab in labels]
    t0 = time.perf_counter()
    with progress_task(description, len(requests)) as advance:
        scores = loglikelihood(lm.model, lm.tokenizer, requests, batch_size=s.batch_size, progress=advance)
    seconds = time.perf_counter() - t0
    preds = [labels[pick_choice(scores[i * len(labels):(i + 1) * len(labels)])] for i in range(len(texts))]
    # What a hosted LLM would be sent per text: the whole prompt plus the longest label.
    label_tokens = max(len(encode(lm.tokenizer, " " + lab)) for lab in labels)
    tokens = float(np.mean([len(encode(lm.tokenizer, p)) for p in prompts])) + label_tokens
    return preds, seconds, tokens


def prompt_classify(lm, train: list[Example], test: list[Example], s: BakeoffSettings) -> dict[str, Any]:
    labels = sorted({e.y for e in train})
    demos = demonstrations(train, s.shots, s.seed)
    preds, seconds, tokens = _prompt_predict(lm, demos, labels, [e.x for e in test], s, "bake-off: prompt")
    return arm_result("prompt-k-shot", "prompt", f"{s.shots}-shot prompting of {lm.kind} model {lm.path} "
                      f"({lm.n_params:,} parameters), labels scored as continuations",
                      [e.y for e in test], preds, seconds, s, tokens=tokens)


def _logistic(seed: int):
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415  (optional extra (scikit-learn), heavy to import)
    return LogisticRegression(max_iter=2000, random_state=seed)


def _ngram_probe(train: list[Example], s: BakeoffSettings):
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer  # noqa: PLC0415  (optional extra (scikit-learn), heavy to import)
    from sklearn.pipeline import make_pipeline  # noqa: PLC0415  (optional extra (scikit-learn), heavy to import)

    pipe = make_pipeline(HashingVectorizer(ngram_range=(1, 2), n_features=2 ** 16, alternate_sign=False,
                                           norm=None), TfidfTransformer(), _logistic(s.seed))
    return pipe.fit([clip(e.x, s.max_chars) for e in train], [e.y for e in train])


def probe_ngrams(train: list[Example], test: list[Example], s: BakeoffSettings) -> dict[str, Any]:
    t0 = time.perf_counter()
    pipe = _ngram_probe(train, s)
    train_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    preds = list(pipe.predict([clip(e.x, s.max_chars) for e in test]))
    return arm_result("probe-ngrams", "finetune", "logistic regression on hashed word 1-2-gram TF-IDF features",
                      [e.y for e in test], preds, time.perf_counter() - t0, s, train_seconds=train_seconds)


def hybrid_classify(lm, train: list[Example], test: list[Example], s: BakeoffSettings) -> dict[str, Any]:
    """The hybrid road: the prompted LM labels the training texts (their gold labels unused,
    except for the k demonstrations it is shown), and the n-gram probe learns from its labels."""
    labels = sorted({e.y for e in train})
    demos = demonstrations(train, s.shots, s.seed)
    pool = [e for e in train if e not in demos]
    t0 = time.perf_counter()
    llm_labels, _, tokens = _prompt_predict(lm, demos, labels, [e.x for e in pool], s, "bake-off: LLM labels")
    relabelled = demos + [Example(e.x, y) for e, y in zip(pool, llm_labels)]
    # If the LM gave every text one label, that label is all a model could learn from it.
    probe = _ngram_probe(relabelled, s) if len({e.y for e in relabelled}) > 1 else None
    train_seconds = time.perf_counter() - t0
    texts = [clip(e.x, s.max_chars) for e in test]
    t0 = time.perf_counter()
    preds = list(probe.predict(texts)) if probe is not None else [relabelled[0].y] * len(texts)
    agreement = float(np.mean([a == e.y for a, e in zip(llm_labels, pool)])) if pool else 0.0
    labelling_usd = len(pool) * tokens / 1000 * s.usd_per_1k_tokens
    return arm_result("hybrid-llm-labels", "hybrid", f"n-gram probe trained on {len(pool)} labels from "
                      f"{s.shots}-shot prompting of {lm.path}", [e.y for e in test], preds,
                      time.perf_counter() - t0, s, train_seconds=train_seconds,
                      extra={"llm_label_agreement": agreement,
                             "usd_training": round(train_seconds / 3600 * s.usd_per_hour + labelling_usd, 6)})


def probe_hidden(lm, train: list[Example], test: list[Example], s: BakeoffSettings) -> dict[str, Any]:
    from sklearn.pipeline import make_pipeline  # noqa: PLC0415  (optional extra (scikit-learn), heavy to import)
    from sklearn.preprocessing import StandardScaler  # noqa: PLC0415  (optional extra (scikit-learn), heavy to import)


    t0 = time.perf_counter()
    feats = mean_hidden(lm, [clip(e.x, s.max_chars) for e in train], s.batch_size)
    pipe = make_pipeline(StandardScaler(), _logistic(s.seed)).fit(feats, [e.y for e in train])
    train_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    preds = list(pipe.predict(mean_hidden(lm, [clip(e.x, s.max_chars) for e in test], s.batch_size)))
    return arm_result("probe-hidden", "finetune", f"logistic regression on mean-pooled final hidden states of {lm.path}",
                      [e.y for e in test], preds, time.perf_counter() - t0, s, train_seconds=train_seconds)


# ----------------------------------------------------------------------------- generation

def _generate_all(model, tok, prompts: list[str], s: BakeoffSettings, label: str) -> tuple[list[str], float]:
    model.eval()
    t0 = time.perf_counter()
    preds = [greedy_generate(model, tok, p, s.max_new_tokens) for p in track(prompts, label)]
    return preds, time.perf_counter() - t0


def prompt_generate(lm, train: list[Example], test: list[Example], s: BakeoffSettings) -> dict[str, Any]:
    demos = demonstrations(train, s.shots, s.seed)
    prompts = [generation_prompt(demos, e.x, s.max_chars) for e in test]
    preds, seconds = _generate_all(lm.model, lm.tokenizer, prompts, s, "bake-off: prompt")
    tokens = float(np.mean([len(encode(lm.tokenizer, p)) for p in prompts]))
    return arm_result("prompt-k-shot", "prompt", f"{s.shots}-shot prompting of {lm.kind} model {lm.path}, greedy decoding",
                      [e.y for e in test], preds, seconds, s, tokens=tokens)


def finetune_generate(lm, train: list[Example], test: list[Example], s: BakeoffSettings) -> dict[str, Any]:
    """Fine-tune a copy of the LM on "Input: x / Output: y" with the loss on the output tokens only."""


    torch.manual_seed(s.seed)
    model = copy.deepcopy(lm.model)
    n_ctx, device, eos = context_length(model), model_device(model), eos_token_id(lm.tokenizer)
    seqs = []
    for e in train:
        ctx, cont = split_encode(lm.tokenizer, generation_prompt([], e.x, s.max_chars), " " + e.y + "\n")
        ids = (([eos] if eos is not None else []) + ctx + cont)[-(n_ctx + 1):]
        seqs.append((ids, min(len(cont), len(ids) - 1)))
    opt = torch.optim.AdamW(model.parameters(), lr=s.finetune_lr, weight_decay=0.0)
    rng = np.random.default_rng(s.seed)
    losses = []
    model.train()
    t0 = time.perf_counter()
    with progress_task("bake-off: fine-tune", s.finetune_steps) as advance:
        for _ in range(s.finetune_steps):
            batch = [seqs[i] for i in rng.integers(0, len(seqs), min(8, len(seqs)))]
            width = max(len(ids) for ids, _ in batch) - 1
            x = torch.zeros(len(batch), width, dtype=torch.long)
            y = torch.full((len(batch), width), -100, dtype=torch.long)
            for r, (ids, n_out) in enumerate(batch):
                x[r, :len(ids) - 1] = torch.tensor(ids[:-1])
                y[r, len(ids) - 1 - n_out:len(ids) - 1] = torch.tensor(ids[-n_out:])
            loss = F.cross_entropy(logits_of(model, x.to(device)).float().transpose(1, 2), y.to(device),
                                   ignore_index=-100)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            advance(1)
    train_seconds = time.perf_counter() - t0
    prompts = [generation_prompt([], e.x, s.max_chars) for e in test]
    preds, seconds = _generate_all(model, lm.tokenizer, prompts, s, "bake-off: fine-tuned")
    return arm_result("finetune-lm", "finetune", f"{lm.path} fine-tuned for {s.finetune_steps} steps, zero-shot greedy decoding",
                      [e.y for e in test], preds, seconds, s, train_seconds=train_seconds,
                      extra={"train_loss_first": losses[0], "train_loss_last": float(np.mean(losses[-5:]))})
