"""The bake-off's arms. Each takes the labelled examples (and an LM where it needs one) and
returns an arm record from :func:`gptlab.advise.metrics.arm_result`.

classification: ``prompt_classify`` (k-shot, labels scored as continuations), ``probe_ngrams``
and ``probe_hidden`` (logistic regression on n-gram or LM features), ``hybrid_classify``
(the small model fine-tuned on the prompted LM's labels).
generation: ``prompt_generate`` (k-shot greedy decoding), ``finetune_generate`` (`gptlab finetune`,
then decoding), ``hybrid_generate`` (the LM writes the training outputs, with rationales when
its demonstrations have them, and the small model is fine-tuned on them).

``finetune_classify`` is the real fine-tuned arm for classification (`gptlab finetune` on the
label tokens); each fine-tuned arm reports where the saved model is (``model_path``). The
logistic-regression probes are the cheap baselines, in their own family, ``probe``.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gptlab.advise.labelled import Example, write_examples
from gptlab.advise.lm import load_lm, mean_hidden
from gptlab.advise.metrics import arm_result, token_f1
from gptlab.advise.prompting import (
    classification_prompt,
    clip,
    cot_generation_prompt,
    cot_predict,
    demonstrations,
    generation_prompt,
    greedy_generate,
)
from gptlab.console import progress_task, track
from gptlab.eval.scoring import encode, loglikelihood, pick_choice
from gptlab.finetune.config import FinetuneConfig
from gptlab.finetune.data import Row as FtRow
from gptlab.finetune.loop import label_scores
from gptlab.finetune.stage import run_finetune
from gptlab.finetune.templates import ANSWER_CUE, extract_answer, load_meta, render_prompt, template_of

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
    return arm_result("probe-ngrams", "probe", "logistic regression on hashed word 1-2-gram TF-IDF features",
                      [e.y for e in test], preds, time.perf_counter() - t0, s, train_seconds=train_seconds)


def hybrid_classify(lm, small_path, train: list[Example], test: list[Example], s: BakeoffSettings,
                    folder: Path) -> dict[str, Any]:
    """The hybrid road: the prompted LM labels the training texts offline (their gold labels
    unused, except for the k demonstrations it is shown), and the small model is fine-tuned by
    `gptlab finetune` on its labels."""
    labels = sorted({e.y for e in train})
    demos = demonstrations(train, s.shots, s.seed)
    pool = [e for e in train if e not in demos]
    t0 = time.perf_counter()
    llm_labels, _, tokens = _prompt_predict(lm, demos, labels, [e.x for e in pool], s, "bake-off: LLM labels")
    relabelled = demos + [Example(e.x, y) for e, y in zip(pool, llm_labels)]
    label_seconds = time.perf_counter() - t0
    agreement = float(np.mean([a == e.y for a, e in zip(llm_labels, pool)])) if pool else 0.0
    labelling_usd = len(pool) * tokens / 1000 * s.usd_per_1k_tokens
    extra: dict[str, Any] = {"llm_label_agreement": agreement}
    if len({e.y for e in relabelled}) > 1:
        summary = _finetune(small_path, relabelled, s, folder)
        small, template = _saved(summary, s.device)
        preds, seconds = _score_labels(small, template, summary["labels"], test, s, "bake-off: hybrid")
        train_seconds = label_seconds + summary["seconds"]
        extra.update(_extra(summary))
        method = f"; saved at {summary['checkpoint']}"
    else:   # the LM gave every text one label: that label is all a model could learn from it
        preds, seconds, train_seconds, method = [relabelled[0].y] * len(test), 0.0, label_seconds, \
            " (the LM gave every text one label: nothing to fine-tune on)"
    extra["usd_training"] = round(train_seconds / 3600 * s.usd_per_hour + labelling_usd, 6)
    return arm_result("hybrid-llm-labels", "hybrid", f"{small_path} fine-tuned by `gptlab finetune` on {len(pool)} "
                      f"labels from {s.shots}-shot prompting of {lm.path}{method}", [e.y for e in test], preds,
                      seconds, s, train_seconds=train_seconds, extra=extra)


def probe_hidden(lm, train: list[Example], test: list[Example], s: BakeoffSettings) -> dict[str, Any]:
    from sklearn.pipeline import make_pipeline  # noqa: PLC0415  (optional extra (scikit-learn), heavy to import)
    from sklearn.preprocessing import StandardScaler  # noqa: PLC0415  (optional extra (scikit-learn), heavy to import)


    t0 = time.perf_counter()
    feats = mean_hidden(lm, [clip(e.x, s.max_chars) for e in train], s.batch_size)
    pipe = make_pipeline(StandardScaler(), _logistic(s.seed)).fit(feats, [e.y for e in train])
    train_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    preds = list(pipe.predict(mean_hidden(lm, [clip(e.x, s.max_chars) for e in test], s.batch_size)))
    return arm_result("probe-hidden", "probe", f"logistic regression on mean-pooled final hidden states of {lm.path}",
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


def prompt_cot_generate(lm, train: list[Example], test: list[Example], s: BakeoffSettings) -> dict[str, Any] | None:
    """k-shot chain-of-thought prompting (Wei et al. 2022): demonstrations drawn from the training
    rows that carry a rationale show it before "The answer is ..."; the answer is extracted from
    what the LM reasons. None when no training row has a rationale."""
    with_r = [e for e in train if e.r]
    if not with_r:
        return None
    demos = demonstrations(with_r, s.shots, s.seed)
    prompts = [cot_generation_prompt(demos, [d.r for d in demos], e.x, s.max_chars) for e in test]
    t0 = time.perf_counter()
    outs = [cot_predict(lm.model, lm.tokenizer, p, max(s.max_new_tokens, 64))
            for p in track(prompts, "bake-off: prompt (chain of thought)")]
    seconds = time.perf_counter() - t0
    tokens = float(np.mean([len(encode(lm.tokenizer, p)) for p in prompts]))
    found = sum(a is not None for a, _ in outs)
    return arm_result("prompt-cot", "prompt", f"{len(demos)}-shot chain-of-thought prompting of {lm.kind} model "
                      f"{lm.path}, answer extracted after \"The answer is\" ({found}/{len(outs)} found)",
                      [e.y for e in test], [a or "" for a, _ in outs], seconds, s, tokens=tokens,
                      extra={"reasoning": [r for _, r in outs]})


def _finetune(small_path, rows: list[Example], s: BakeoffSettings, folder: Path) -> dict[str, Any]:
    """`gptlab finetune` of the small model on the rows (``folder``/train.jsonl); its summary.

    A tenth of the rows (when there are ten or more) is held out for early stopping."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "train.jsonl"
    write_examples(data, rows, s.task)
    fcfg = FinetuneConfig(task=s.task, max_steps=s.finetune_steps, lr=s.finetune_lr, batch_size=8,
                          warmup_steps=min(10, s.finetune_steps // 10), eval_every=max(1, s.finetune_steps // 5),
                          patience=3, max_chars=s.max_chars, seed=s.seed, device=s.device)
    return run_finetune(fcfg, small_path, data, folder / "model", replace_other=True)


def _saved(summary: dict[str, Any], device: str):
    """The fine-tuned model, loaded back from where `gptlab finetune` saved it."""
    lm = load_lm(summary["checkpoint"], device)
    meta = load_meta(summary["checkpoint"]) or {}
    return lm, (template_of(meta) if meta else None)


def _extra(summary: dict[str, Any]) -> dict[str, Any]:
    return {"model_path": summary["checkpoint"], "train_loss_first": summary["first_loss"],
            "train_loss_last": summary["final_loss"], "finetune_steps": summary["steps"],
            "best_step": summary["best_step"], "stopped_early": summary["stopped_early"]}


def _score_labels(lm, template, labels: list[str], test: list[Example], s: BakeoffSettings,
                  label: str) -> tuple[list[str], float]:
    """Each label scored as the continuation of the saved template, the prompt cut as in
    fine-tuning (gptlab.finetune.loop.label_scores); the likeliest label is the prediction."""
    prompts = [render_prompt(template, FtRow(e.x, ""), s.max_chars) for e in test]
    t0 = time.perf_counter()
    scores = []
    for start in track(range(0, len(prompts), s.batch_size), label):
        scores += label_scores(lm.model, lm.tokenizer, prompts[start:start + s.batch_size], labels, s.batch_size)
    seconds = time.perf_counter() - t0
    return [labels[max(range(len(labels)), key=lambda j: (row[j], -j))] for row in scores], seconds


def finetune_classify(small_path, train: list[Example], test: list[Example], s: BakeoffSettings,
                      folder: Path) -> dict[str, Any]:
    """The real fine-tuned arm: `gptlab finetune --task classification` (the loss on the label
    tokens), then each label scored after the saved template by the saved model."""
    summary = _finetune(small_path, train, s, folder)
    lm, template = _saved(summary, s.device)
    preds, seconds = _score_labels(lm, template, summary["labels"], test, s, "bake-off: fine-tuned")
    return arm_result("finetune-lm", "finetune", f"{small_path} fine-tuned by `gptlab finetune` for {summary['steps']} "
                      f"steps (best validation step {summary['best_step']}), labels scored as continuations; "
                      f"saved at {summary['checkpoint']}", [e.y for e in test], preds, seconds, s,
                      train_seconds=summary["seconds"], extra=_extra(summary))


def _decode(lm, template, test: list[Example], s: BakeoffSettings, label: str) -> tuple[list[str], float]:
    """Greedy answers after the saved template; a distilled rationale is cut off at "The answer is"."""
    prompts = [render_prompt(template, FtRow(e.x, ""), s.max_chars) for e in test]
    preds, seconds = _generate_all(lm.model, lm.tokenizer, prompts, s, label)
    return [extract_answer(p) for p in preds], seconds


def finetune_generate(small_path, train: list[Example], test: list[Example], s: BakeoffSettings,
                      folder: Path) -> dict[str, Any]:
    """`gptlab finetune --task generation` ("Input: x / Output: y", the loss on the output tokens;
    a rationale, when the data has one, is trained before the answer), then greedy decoding."""
    summary = _finetune(small_path, train, s, folder)
    lm, template = _saved(summary, s.device)
    preds, seconds = _decode(lm, template, test, s, "bake-off: fine-tuned")
    cot = " with rationales" if any(e.r for e in train) else ""
    return arm_result("finetune-lm", "finetune", f"{small_path} fine-tuned by `gptlab finetune`{cot} for "
                      f"{summary['steps']} steps, zero-shot greedy decoding; saved at {summary['checkpoint']}",
                      [e.y for e in test], preds, seconds, s, train_seconds=summary["seconds"], extra=_extra(summary))


def _cot_demo_prompt(demos: list[Example], text: str, max_chars: int) -> str:
    """k-shot prompt whose solved outputs carry their rationale before the answer (chain of thought)."""
    shots = "".join(f"Input: {clip(d.x, max_chars)}\nOutput: {d.r + ' ' + ANSWER_CUE + ' ' + d.y + '.' if d.r else d.y}"
                    f"\n\n" for d in demos)
    return shots + f"Input: {clip(text, max_chars)}\nOutput:"


def hybrid_generate(lm, small_path, train: list[Example], test: list[Example], s: BakeoffSettings,
                    folder: Path) -> dict[str, Any]:
    """The hybrid road for generation: the prompted LM writes the training outputs offline (the
    gold outputs unused, except for the k demonstrations), then the small model is fine-tuned on
    them. When the demonstrations carry rationales, the LM writes its reasoning too, and the
    small model learns to reason before it answers (distilled chain of thought)."""
    demos = demonstrations(train, s.shots, s.seed)
    pool = [e for e in train if e not in demos]
    cot = any(d.r for d in demos)
    t0 = time.perf_counter()
    new = max(s.max_new_tokens, 64) if cot else s.max_new_tokens
    labelled = [greedy_generate(lm.model, lm.tokenizer, _cot_demo_prompt(demos, e.x, s.max_chars), new)
                for e in track(pool, "bake-off: LLM labels")]
    label_seconds = time.perf_counter() - t0
    rows = list(demos)
    for e, text in zip(pool, labelled):
        answer = extract_answer(text) or text
        rationale = text[:text.rfind(ANSWER_CUE)].strip() if cot and ANSWER_CUE in text else ""
        if answer:
            rows.append(Example(e.x, answer, rationale))
    summary = _finetune(small_path, rows, s, folder)
    small, template = _saved(summary, s.device)
    preds, seconds = _decode(small, template, test, s, "bake-off: hybrid")
    agreement = float(np.mean([token_f1(extract_answer(t), e.y) for t, e in zip(labelled, pool)])) if pool else 0.0
    train_seconds = label_seconds + summary["seconds"]
    return arm_result("hybrid-llm-labels", "hybrid", f"{small_path} fine-tuned by `gptlab finetune` on {len(pool)} "
                      f"outputs written by {s.shots}-shot prompting of {lm.path}"
                      f"{' with rationales (distilled chain of thought)' if cot else ''}; saved at "
                      f"{summary['checkpoint']}", [e.y for e in test], preds, seconds, s,
                      train_seconds=train_seconds,
                      extra={**_extra(summary), "llm_label_token_f1": agreement, "distilled_rationales": cot})
