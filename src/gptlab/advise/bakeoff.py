"""`gptlab advise bakeoff`: prompting vs fine-tuning, measured side by side on the user's data.

Arms, on the same test examples:

classification
  * ``prompt-k-shot``: a causal LM (gptlab checkpoint or local HF folder) reads k labelled
    demonstrations and the query; each label is scored as a continuation and the most
    likely one is the prediction (``gptlab.eval.scoring.loglikelihood``).
  * ``probe-ngrams``: logistic regression on hashed word 1-2-gram TF-IDF features; needs no LM.
  * ``probe-hidden``: logistic regression on the LM's mean-pooled final hidden states.
generation
  * ``prompt-k-shot``: greedy decoding after k demonstrations.
  * ``finetune-lm``: a copy of the same LM fine-tuned on the training pairs, then greedy decoding.

Each arm reports a score with a 95% interval (accuracy: Wilson; macro-F1, token-F1 and
the arm-vs-arm difference: bootstrap), latency per example and an estimated cost (see
``docs/advise.md``). The best fine-tuned arm is compared with the prompted arm by a paired
bootstrap; that verdict, the measured latency and the cost feed the rule table.
"""
from __future__ import annotations

import copy
import json
import string
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gptlab.advise.labelled import Example, read_examples
from gptlab.advise.stats import bootstrap, macro_f1, macro_f1_indices, paired_difference, wilson
from gptlab.fields import ConfigError, rng


@dataclass
class BakeoffSettings:
    task: str = rng(choices=("classification", "generation"), default="classification")
    shots: int = rng(0, 64, default=4)                 # demonstrations in the prompt (0 = zero-shot)
    max_chars: int = rng(1, None, default=400)         # characters of each text shown to the LM or the probe
    batch_size: int = rng(1, 4096, default=16)
    seed: int = rng(0, None, default=0)
    usd_per_hour: float = rng(0.0, None, default=0.10)       # price of the machine serving a model (see docs)
    usd_per_1k_tokens: float = rng(0.0, None, default=0.0)   # API price per 1k prompt tokens (0 = self-hosted)
    finetune_steps: int = rng(1, None, default=100)    # generation: optimizer steps of the fine-tuned arm
    finetune_lr: float = rng(0.0, 1.0, default=1e-3)
    max_new_tokens: int = rng(1, 1024, default=32)
    device: str = rng(choices=("cpu", "cuda", "auto"), default="cpu")   # where the LM arms run


# ----------------------------------------------------------------------------- helpers

def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n]


def _cost(latency_s: float, tokens: float, s: BakeoffSettings, prompted: bool) -> float:
    """USD per 1,000 examples: machine time at ``usd_per_hour`` plus, for a prompted arm, API tokens."""
    usd = latency_s * 1000 / 3600 * s.usd_per_hour
    if prompted:
        usd += tokens * s.usd_per_1k_tokens
    return round(usd, 6)


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


def _classification_prompt(demos: list[Example], labels: list[str], text: str, max_chars: int) -> str:
    head = "Classify each text as one of: " + ", ".join(labels) + ".\n\n"
    shots = "".join(f"Text: {_clip(d.x, max_chars)}\nLabel: {d.y}\n\n" for d in demos)
    return head + shots + f"Text: {_clip(text, max_chars)}\nLabel:"


def _generation_prompt(demos: list[Example], text: str, max_chars: int) -> str:
    shots = "".join(f"Input: {_clip(d.x, max_chars)}\nOutput: {d.y}\n\n" for d in demos)
    return shots + f"Input: {_clip(text, max_chars)}\nOutput:"


def _normalise(text: str) -> str:
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return " ".join(text.split())


def token_f1(pred: str, gold: str) -> float:
    """SQuAD-style token overlap F1 after lower-casing and dropping punctuation."""
    p, g = _normalise(pred).split(), _normalise(gold).split()
    if not p or not g:
        return float(p == g)
    common = sum((Counter(p) & Counter(g)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


# ----------------------------------------------------------------------------- scoring an arm

def _classification_metrics(y_true: list[str], y_pred: list[str], seed: int) -> dict[str, Any]:
    codes = {lab: i for i, lab in enumerate(sorted(set(y_true) | set(y_pred)))}
    t = np.array([codes[y] for y in y_true])
    p = np.array([codes[y] for y in y_pred])
    correct = int((t == p).sum())
    return {"accuracy": correct / len(t), "accuracy_ci": wilson(correct, len(t)),
            "macro_f1": macro_f1(y_true, y_pred),
            "macro_f1_ci": bootstrap(lambda idx: macro_f1_indices(t[idx], p[idx], len(codes)), len(t), seed=seed),
            "per_example": (t == p).astype(float).tolist()}


def _generation_metrics(y_true: list[str], y_pred: list[str], seed: int) -> dict[str, Any]:
    em = np.array([float(_normalise(a) == _normalise(b)) for a, b in zip(y_pred, y_true)])
    f1 = np.array([token_f1(a, b) for a, b in zip(y_pred, y_true)])
    return {"exact_match": float(em.mean()), "exact_match_ci": wilson(int(em.sum()), len(em)),
            "token_f1": float(f1.mean()), "token_f1_ci": bootstrap(lambda idx: float(f1[idx].mean()), len(f1), seed=seed),
            "per_example": f1.tolist()}


def _arm(name: str, family: str, method: str, y_true, y_pred, seconds: float, s: BakeoffSettings,
         train_seconds: float = 0.0, tokens: float = 0.0, extra: dict | None = None) -> dict[str, Any]:
    metrics = (_classification_metrics if s.task == "classification" else _generation_metrics)(y_true, y_pred, s.seed)
    latency = seconds / max(1, len(y_true))
    return {"name": name, "family": family, "method": method, "predictions": list(y_pred),
            "metrics": metrics, "latency_ms_per_example": round(latency * 1000, 3),
            "train_seconds": round(train_seconds, 3), "tokens_per_example": round(tokens, 1),
            "usd_per_1k_examples": _cost(latency, tokens, s, prompted=family == "prompt"),
            "usd_training": round(train_seconds / 3600 * s.usd_per_hour, 6), **(extra or {})}


# ----------------------------------------------------------------------------- arms: classification

def prompt_classify(lm, train: list[Example], test: list[Example], s: BakeoffSettings) -> dict[str, Any]:
    from gptlab.console import progress_task
    from gptlab.eval.scoring import encode, loglikelihood, pick_choice

    labels = sorted({e.y for e in train})
    demos = demonstrations(train, s.shots, s.seed)
    prompts = [_classification_prompt(demos, labels, e.x, s.max_chars) for e in test]
    requests = [(p, " " + lab) for p in prompts for lab in labels]
    t0 = time.perf_counter()
    with progress_task("bake-off: prompt", len(requests)) as advance:
        scores = loglikelihood(lm.model, lm.tokenizer, requests, batch_size=s.batch_size, progress=advance)
    seconds = time.perf_counter() - t0
    preds = [labels[pick_choice(scores[i * len(labels):(i + 1) * len(labels)])] for i in range(len(test))]
    # What a hosted LLM would be sent per example: the whole prompt plus the longest label.
    label_tokens = max(len(encode(lm.tokenizer, " " + lab)) for lab in labels)
    tokens = float(np.mean([len(encode(lm.tokenizer, p)) for p in prompts])) + label_tokens
    return _arm("prompt-k-shot", "prompt", f"{s.shots}-shot prompting of {lm.kind} model {lm.path} "
                f"({lm.n_params:,} parameters), labels scored as continuations",
                [e.y for e in test], preds, seconds, s, tokens=tokens)


def _logistic(seed: int):
    from sklearn.linear_model import LogisticRegression
    return LogisticRegression(max_iter=2000, random_state=seed)


def probe_ngrams(train: list[Example], test: list[Example], s: BakeoffSettings) -> dict[str, Any]:
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
    from sklearn.pipeline import make_pipeline

    pipe = make_pipeline(HashingVectorizer(ngram_range=(1, 2), n_features=2 ** 16, alternate_sign=False,
                                           norm=None), TfidfTransformer(), _logistic(s.seed))
    t0 = time.perf_counter()
    pipe.fit([_clip(e.x, s.max_chars) for e in train], [e.y for e in train])
    train_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    preds = list(pipe.predict([_clip(e.x, s.max_chars) for e in test]))
    return _arm("probe-ngrams", "finetune", "logistic regression on hashed word 1-2-gram TF-IDF features",
                [e.y for e in test], preds, time.perf_counter() - t0, s, train_seconds=train_seconds)


def probe_hidden(lm, train: list[Example], test: list[Example], s: BakeoffSettings) -> dict[str, Any]:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from gptlab.advise.lm import mean_hidden

    t0 = time.perf_counter()
    feats = mean_hidden(lm, [_clip(e.x, s.max_chars) for e in train], s.batch_size)
    pipe = make_pipeline(StandardScaler(), _logistic(s.seed)).fit(feats, [e.y for e in train])
    train_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    preds = list(pipe.predict(mean_hidden(lm, [_clip(e.x, s.max_chars) for e in test], s.batch_size)))
    return _arm("probe-hidden", "finetune", f"logistic regression on mean-pooled final hidden states of {lm.path}",
                [e.y for e in test], preds, time.perf_counter() - t0, s, train_seconds=train_seconds)


# ----------------------------------------------------------------------------- arms: generation

@torch.no_grad()
def greedy_generate(model, tokenizer, prompt: str, max_new_tokens: int, stop: str = "\n") -> str:
    """Greedy decoding until ``stop`` appears or ``max_new_tokens``; keeps the last tokens that fit."""
    from gptlab.eval.scoring import context_length, encode, eos_token_id, logits_of, model_device

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


def _generate_all(model, tok, prompts: list[str], s: BakeoffSettings, label: str) -> tuple[list[str], float]:
    from gptlab.console import track
    model.eval()
    t0 = time.perf_counter()
    preds = [greedy_generate(model, tok, p, s.max_new_tokens) for p in track(prompts, label)]
    return preds, time.perf_counter() - t0


def prompt_generate(lm, train: list[Example], test: list[Example], s: BakeoffSettings) -> dict[str, Any]:
    from gptlab.eval.scoring import encode
    demos = demonstrations(train, s.shots, s.seed)
    prompts = [_generation_prompt(demos, e.x, s.max_chars) for e in test]
    preds, seconds = _generate_all(lm.model, lm.tokenizer, prompts, s, "bake-off: prompt")
    tokens = float(np.mean([len(encode(lm.tokenizer, p)) for p in prompts]))
    return _arm("prompt-k-shot", "prompt", f"{s.shots}-shot prompting of {lm.kind} model {lm.path}, greedy decoding",
                [e.y for e in test], preds, seconds, s, tokens=tokens)


def finetune_generate(lm, train: list[Example], test: list[Example], s: BakeoffSettings) -> dict[str, Any]:
    """Fine-tune a copy of the LM on "Input: x / Output: y" with the loss on the output tokens only."""
    import torch.nn.functional as F

    from gptlab.console import progress_task
    from gptlab.eval.scoring import context_length, eos_token_id, logits_of, model_device, split_encode

    torch.manual_seed(s.seed)
    model = copy.deepcopy(lm.model)
    n_ctx, device, eos = context_length(model), model_device(model), eos_token_id(lm.tokenizer)
    seqs = []
    for e in train:
        ctx, cont = split_encode(lm.tokenizer, _generation_prompt([], e.x, s.max_chars), " " + e.y + "\n")
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
    prompts = [_generation_prompt([], e.x, s.max_chars) for e in test]
    preds, seconds = _generate_all(model, lm.tokenizer, prompts, s, "bake-off: fine-tuned")
    return _arm("finetune-lm", "finetune", f"{lm.path} fine-tuned for {s.finetune_steps} steps, zero-shot greedy decoding",
                [e.y for e in test], preds, seconds, s, train_seconds=train_seconds,
                extra={"train_loss_first": losses[0], "train_loss_last": float(np.mean(losses[-5:]))})


# ----------------------------------------------------------------------------- verdict and report

def compare(arms: list[dict[str, Any]], seed: int = 0) -> dict[str, Any]:
    """Prompted arm vs the best fine-tuned arm, by a paired bootstrap on per-example scores."""
    prompted = [a for a in arms if a["family"] == "prompt"]
    tuned = [a for a in arms if a["family"] == "finetune"]
    if not prompted or not tuned:
        return {"winner": "unknown", "reason": "needs both a prompted and a fine-tuned arm (give --model)"}
    p = prompted[0]
    f = max(tuned, key=lambda a: float(np.mean(a["metrics"]["per_example"])))
    diff, lo, hi = paired_difference(np.array(p["metrics"]["per_example"]), np.array(f["metrics"]["per_example"]),
                                     seed=seed)
    winner = "finetune" if lo > 0 else "prompt" if hi < 0 else "tie"
    cheaper = "finetune" if f["usd_per_1k_examples"] <= p["usd_per_1k_examples"] else "prompt"
    return {"prompt_arm": p["name"], "finetune_arm": f["name"], "difference": diff, "difference_ci": (lo, hi),
            "winner": winner, "cheaper": cheaper,
            "reason": "difference = fine-tuned minus prompted per-example score; a winner needs its 95% "
                      "interval to exclude zero"}


def _headline(arm: dict[str, Any], task: str) -> str:
    m = arm["metrics"]
    if task == "classification":
        lo, hi = m["accuracy_ci"]
        flo, fhi = m["macro_f1_ci"]
        return f"accuracy {m['accuracy']:.3f} [{lo:.3f}, {hi:.3f}], macro-F1 {m['macro_f1']:.3f} [{flo:.3f}, {fhi:.3f}]"
    lo, hi = m["token_f1_ci"]
    elo, ehi = m["exact_match_ci"]
    return f"token-F1 {m['token_f1']:.3f} [{lo:.3f}, {hi:.3f}], exact match {m['exact_match']:.3f} [{elo:.3f}, {ehi:.3f}]"


def render_markdown(report: dict[str, Any]) -> str:
    task = report["settings"]["task"]
    lines = [f"# Bake-off: {task}", "",
             f"{report['n_train']} training and {report['n_test']} test examples; labels: "
             f"{', '.join(report['labels']) if report['labels'] else 'free text'}.", "",
             "| arm | family | score (95% interval) | latency ms/example | train s | USD / 1k examples |",
             "|---|---|---|---|---|---|"]
    for a in report["arms"]:
        lines.append(f"| {a['name']} | {a['family']} | {_headline(a, task)} | {a['latency_ms_per_example']:.2f} "
                     f"| {a['train_seconds']:.2f} | {a['usd_per_1k_examples']:.6f} |")
    c = report["comparison"]
    lines += ["", f"**Measured:** winner = {c['winner']}"]
    if "difference" in c:
        lo, hi = c["difference_ci"]
        lines[-1] += f" ({c['finetune_arm']} − {c['prompt_arm']} = {c['difference']:+.3f} [{lo:+.3f}, {hi:+.3f}]); " \
                     f"cheaper = {c['cheaper']}"
    adv = report["advice"]
    lines += ["", f"**Recommendation:** {adv['summary']} (confidence {adv['confidence']:.2f}, {adv['level']})", "",
              "Rules that fired:", ""]
    for f in adv["fired"]:
        sup = f" (superseded by {f['superseded_by']})" if f["superseded_by"] else ""
        lines.append(f"- `{f['id']}` → {f['verdict']} (+{f['weight']}){sup}: {f['reason']}")
    lines += ["", "Each arm's methods: " + "; ".join(f"{a['name']}: {a['method']}" for a in report["arms"]) + ".", ""]
    return "\n".join(lines)


def _checksums(paths: list[Path]) -> dict[str, str]:
    from gptlab.manifest import file_checksum
    return {p.name: file_checksum(p) for p in paths}


def run_bakeoff(train_path: str | Path, test_path: str | Path, settings: BakeoffSettings,
                model_path: str | Path | None = None, out_dir: str | Path | None = None,
                answers=None) -> dict[str, Any]:
    """Run every arm that applies, compare them, feed the numbers into the advisor, and write
    ``bakeoff.json``, ``report.md``, ``predictions.jsonl`` and a manifest into ``out_dir``."""
    from gptlab.advise.answers import Answers, merge_answers
    from gptlab.advise.engine import advise
    from gptlab.console import log
    from gptlab.manifest import atomic_write, atomic_write_json, is_complete, read_manifest, stage_key, write_manifest

    from gptlab.config import validate

    s = settings
    validate(s, prefix="bakeoff.")
    train, test = read_examples(train_path, s.task), read_examples(test_path, s.task)
    lm = None
    if model_path is not None:
        from gptlab.advise.lm import load_lm
        lm = load_lm(model_path, s.device)
    answers = answers or Answers()
    key = None
    if out_dir is not None:
        weights = lm.weight_files() if lm is not None else []
        key = stage_key({"settings": asdict(s), "answers": asdict(answers), "model": str(model_path),
                         "data": _checksums([Path(train_path), Path(test_path)]), "weights": _checksums(weights)})
        if is_complete(out_dir, key):
            log(f"bakeoff: complete, skipping ({out_dir})")
            return json.loads((Path(out_dir) / "bakeoff.json").read_text())

    arms = []
    if s.task == "classification":
        if len({e.y for e in train}) < 2:
            raise ConfigError(f"{train_path}: classification needs at least two different labels")
        unseen = sorted({e.y for e in test} - {e.y for e in train})
        if unseen:
            log(f"bakeoff: test labels never seen in training (always scored wrong): {', '.join(unseen)}")
        if lm is not None:
            arms.append(prompt_classify(lm, train, test, s))
        arms.append(probe_ngrams(train, test, s))
        if lm is not None:
            arms.append(probe_hidden(lm, train, test, s))
    else:
        if lm is None:
            raise ConfigError("--task generation needs --model (the LM to prompt and to fine-tune)")
        arms.append(prompt_generate(lm, train, test, s))
        arms.append(finetune_generate(lm, train, test, s))

    comparison = compare(arms, s.seed)
    prompted = next((a for a in arms if a["family"] == "prompt"), None)
    measured = {"labels": len(train), "measured_winner": comparison["winner"],
                "measured_cheaper": comparison.get("cheaper")}
    if answers.task == "unknown" and s.task == "classification":
        measured["task"] = "classification"
    if prompted is not None:
        measured["measured_prompt_latency_ms"] = prompted["latency_ms_per_example"]
        measured["measured_prompt_usd_per_1k"] = prompted["usd_per_1k_examples"]
    advice = advise(merge_answers(answers, **{k: v for k, v in measured.items() if v not in (None, "unknown")}))
    report = {"settings": asdict(s), "train": str(train_path), "test": str(test_path),
              "model": str(model_path) if model_path else None, "n_train": len(train), "n_test": len(test),
              "labels": sorted({e.y for e in train}) if s.task == "classification" else [],
              "arms": arms, "comparison": comparison, "advice": advice.to_json(),
              "cost_model": "USD per 1k examples = latency x 1000 / 3600 x usd_per_hour "
                            "(+ prompt tokens x usd_per_1k_tokens for the prompted arm); "
                            "training = train seconds / 3600 x usd_per_hour"}
    for a in arms:
        log(f"bakeoff: {a['name']:<14} {_headline(a, s.task)}, {a['latency_ms_per_example']:.2f} ms/example")
    log(f"bakeoff: measured winner {comparison['winner']} → {advice.summary} (confidence {advice.confidence:.2f})")
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "bakeoff.json", report)
        atomic_write(out / "report.md", render_markdown(report))
        rows = [{"index": i, "gold": e.y, **{a["name"]: a["predictions"][i] for a in arms}} for i, e in enumerate(test)]
        atomic_write(out / "predictions.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        write_manifest(out, stage="bakeoff", key=key, outputs=["bakeoff.json", "report.md", "predictions.jsonl"],
                       config={"settings": asdict(s)},
                       summary={"winner": comparison["winner"], "recommendation": advice.recommendation})
        log(f"bakeoff: report → {out / 'report.md'}")
    return report
