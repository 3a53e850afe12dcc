"""`gptlab advise bakeoff`: prompting vs fine-tuning, measured side by side on the user's data.

Arms, on the same test examples:

classification
  * ``prompt-k-shot``: a causal LM (gptlab checkpoint or local HF folder) reads k labelled
    demonstrations and the query; each label is scored as a continuation and the most
    likely one is the prediction (``gptlab.eval.scoring.loglikelihood``).
  * ``finetune-lm``: the small model (default: the same LM) fine-tuned by `gptlab finetune` on
    the label tokens, then each label scored; the saved model's path is in the arm's ``model_path``.
  * ``probe-ngrams`` (cheap baseline, family ``probe``): logistic regression on hashed word
    1-2-gram TF-IDF features; needs no LM.
  * ``probe-hidden`` (cheap baseline, family ``probe``): logistic regression on the small
    model's mean-pooled final hidden states.
  * ``hybrid-llm-labels`` (``--hybrid``): the prompted LM labels the training texts offline, and the
    small model is fine-tuned by `gptlab finetune` on its labels.
generation
  * ``prompt-k-shot``: greedy decoding after k demonstrations.
  * ``finetune-lm``: the small model fine-tuned by `gptlab finetune` on the pairs (and their
    rationales, when the data has them), then greedy decoding; the saved model's path is reported.
  * ``hybrid-llm-labels`` (``--hybrid``): the prompted LM writes the training outputs (with its
    reasoning, when the demonstrations carry rationales), and the small model is fine-tuned on them.

The fine-tuned models are saved in OUT/finetune/ (without --out, in a temporary folder that is
kept and named in the report).

Each arm reports a score with a 95% interval (accuracy: Wilson; macro-F1, token-F1 and
the arm-vs-arm difference: bootstrap), latency per example and an estimated cost (see
``docs/advise.md``). The best fine-tuned arm is compared with the prompted arm by a paired
bootstrap; that verdict, the measured latency and the cost feed the rule table.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from gptlab.advise.answers import Answers, merge_answers
from gptlab.advise.arms import (
    finetune_classify,
    finetune_generate,
    hybrid_classify,
    hybrid_generate,
    probe_hidden,
    probe_ngrams,
    prompt_classify,
    prompt_cot_generate,
    prompt_generate,
)
from gptlab.advise.engine import advise
from gptlab.advise.labelled import read_examples
from gptlab.advise.lm import load_lm, weight_files
from gptlab.advise.stats import paired_difference
from gptlab.console import log
from gptlab.manifest import Stage, atomic_write, atomic_write_json, file_checksum, stage_key
from gptlab.schema import ConfigError, bounded, validate


@dataclass
class BakeoffSettings:
    task: Literal["classification", "generation"] = "classification"
    shots: int = bounded(0, 64, default=4)                 # demonstrations in the prompt (0 = zero-shot)
    max_chars: int = bounded(1, None, default=400)         # characters of each text shown to the LM or the probe
    batch_size: int = bounded(1, 4096, default=16)
    seed: int = bounded(0, None, default=0)
    usd_per_hour: float = bounded(0.0, None, default=0.10)       # price of the machine serving a model (see docs)
    usd_per_1k_tokens: float = bounded(0.0, None, default=0.0)   # API price per 1k prompt tokens (0 = self-hosted)
    finetune_steps: int = bounded(1, None, default=100)    # optimizer steps of the fine-tuned arms (at most: early stopping)
    finetune_lr: float = bounded(0.0, 1.0, default=1e-3)
    max_new_tokens: int = bounded(1, 1024, default=32)
    device: Literal["cpu", "cuda", "auto"] = "cpu"   # where the LM arms run
    hybrid: bool = False          # also measure the hybrid road (the LM labels the training set, offline)


# ----------------------------------------------------------------------------- verdict and report

def _paired(a: dict[str, Any], b: dict[str, Any], seed: int) -> tuple[float, float, float]:
    return paired_difference(np.array(a["metrics"]["per_example"]), np.array(b["metrics"]["per_example"]), seed=seed)


def compare(arms: list[dict[str, Any]], seed: int = 0) -> dict[str, Any]:
    """Prompted arm vs the best fine-tuned arm, by a paired bootstrap on per-example scores;
    and, when measured, whether the hybrid arm keeps the prompted arm's quality."""
    prompted = [a for a in arms if a["family"] == "prompt"]
    tuned = [a for a in arms if a["family"] == "finetune"] or [a for a in arms if a["family"] == "probe"]
    if not prompted or not tuned:
        return {"winner": "unknown", "reason": "needs both a prompted and a fine-tuned arm (give --model)"}
    # The prompted side at its best (k-shot, or chain of thought when the data has rationales).
    p = max(prompted, key=lambda a: float(np.mean(a["metrics"]["per_example"])))
    f = max(tuned, key=lambda a: float(np.mean(a["metrics"]["per_example"])))
    diff, lo, hi = _paired(p, f, seed)
    winner = "finetune" if lo > 0 else "prompt" if hi < 0 else "tie"
    cheaper = "finetune" if f["usd_per_1k_examples"] <= p["usd_per_1k_examples"] else "prompt"
    out = {"prompt_arm": p["name"], "finetune_arm": f["name"], "difference": diff, "difference_ci": (lo, hi),
           "winner": winner, "cheaper": cheaper,
           "reason": "difference = fine-tuned minus prompted per-example score; a winner needs its 95% "
                     "interval to exclude zero"}
    probes = [a for a in arms if a["family"] == "probe"]
    if probes and f["family"] != "probe":
        best = max(probes, key=lambda a: float(np.mean(a["metrics"]["per_example"])))
        pd, plo, phi = _paired(p, best, seed)
        out.update({"probe_arm": best["name"], "probe_difference": pd, "probe_difference_ci": (plo, phi)})
    hybrid = next((a for a in arms if a["family"] == "hybrid"), None)
    if hybrid is not None:
        hd, hlo, hhi = _paired(p, hybrid, seed)
        # "Keeps quality" = not significantly worse than prompting (the interval reaches zero or above).
        out.update({"hybrid_arm": hybrid["name"], "hybrid_difference": hd, "hybrid_difference_ci": (hlo, hhi),
                    "hybrid": "keeps_quality" if hhi >= 0 else "loses_quality"})
    return out


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
    if "probe_arm" in c:
        lo, hi = c["probe_difference_ci"]
        lines += ["", f"**Cheap baseline:** {c['probe_arm']} − {c['prompt_arm']} = {c['probe_difference']:+.3f} "
                      f"[{lo:+.3f}, {hi:+.3f}]"]
    saved = [f"{a['name']}: {a['model_path']}" for a in report["arms"] if a.get("model_path")]
    if saved:
        lines += ["", "**Fine-tuned models saved:** " + "; ".join(saved)]
    if "hybrid" in c:
        lo, hi = c["hybrid_difference_ci"]
        lines += ["", f"**Hybrid:** {c['hybrid']} ({c['hybrid_arm']} − {c['prompt_arm']} = "
                     f"{c['hybrid_difference']:+.3f} [{lo:+.3f}, {hi:+.3f}])"]
    adv = report["advice"]
    lines += ["", f"**Recommendation:** {adv['summary']} (confidence {adv['confidence']:.2f}, {adv['level']})", "",
              "Rules that fired:", ""]
    for f in adv["fired"]:
        sup = f" (superseded by {f['superseded_by']})" if f["superseded_by"] else ""
        lines.append(f"- `{f['id']}` → {f['verdict']} (+{f['weight']}){sup}: {f['reason']}")
    lines += ["", "Each arm's methods: " + "; ".join(f"{a['name']}: {a['method']}" for a in report["arms"]) + ".", ""]
    return "\n".join(lines)


def _checksums(paths: list[Path]) -> dict[str, str]:
    return {p.name: file_checksum(p) for p in paths}


def run_bakeoff(train_path: str | Path, test_path: str | Path, settings: BakeoffSettings,
                model_path: str | Path | None = None, out_dir: str | Path | None = None,
                answers=None, small_model_path: str | Path | None = None, *, force: bool = False) -> dict[str, Any]:
    """Run every arm that applies, compare them, feed the numbers into the advisor, and write
    ``bakeoff.json``, ``report.md``, ``predictions.jsonl`` and a manifest into ``out_dir``.

    ``model_path`` is the LM that is prompted; ``small_model_path`` (default: the same) is the
    one the fine-tuned arms start from: its hidden states for the probe, its weights for generation."""

    s = settings
    validate(s, prefix="bakeoff.")
    train, test = read_examples(train_path, s.task), read_examples(test_path, s.task)
    answers = answers or Answers()
    if out_dir is None:
        return _bakeoff(train, test, train_path, test_path, s, model_path, answers, small_model_path,
                        Path(tempfile.mkdtemp(prefix="gptlab-bakeoff-")))
    models = [m for m in (model_path, small_model_path) if m is not None]
    key = stage_key({"settings": asdict(s), "answers": asdict(answers), "model": str(model_path),
                     "small_model": str(small_model_path),
                     "data": _checksums([Path(train_path), Path(test_path)]),
                     "weights": [_checksums(weight_files(m)) for m in models]})
    with Stage(out_dir, "bakeoff", key, force=force) as st:
        if st.complete:
            return json.loads((st.dir / "bakeoff.json").read_text())
        report = _bakeoff(train, test, train_path, test_path, s, model_path, answers, small_model_path,
                          st.dir / "finetune")
        atomic_write_json(st.dir / "bakeoff.json", report)
        atomic_write(st.dir / "report.md", render_markdown(report))
        rows = [{"index": i, "gold": e.y, **{a["name"]: a["predictions"][i] for a in report["arms"]}}
                for i, e in enumerate(test)]
        atomic_write(st.dir / "predictions.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        st.done(["bakeoff.json", "report.md", "predictions.jsonl"],
                {"winner": report["comparison"]["winner"], "recommendation": report["advice"]["recommendation"]},
                config={"settings": asdict(s)})
    log(f"bakeoff: report → {st.dir / 'report.md'}")
    return report


def _bakeoff(train: list, test: list, train_path, test_path, s: BakeoffSettings, model_path, answers: Answers,
             small_model_path, models_dir: Path) -> dict[str, Any]:
    """The measurement itself: every arm, the comparison, the advice, as one report.
    The fine-tuned arms save their models under ``models_dir``."""
    lm = load_lm(model_path, s.device) if model_path is not None else None
    small = load_lm(small_model_path, s.device) if small_model_path is not None else lm
    small_path = small_model_path if small_model_path is not None else model_path

    arms = []
    if s.task == "classification":
        if len({e.y for e in train}) < 2:
            raise ConfigError(f"{train_path}: classification needs at least two different labels")
        unseen = sorted({e.y for e in test} - {e.y for e in train})
        if unseen:
            log(f"bakeoff: test labels never seen in training (always scored wrong): {', '.join(unseen)}")
        if lm is not None:
            arms.append(prompt_classify(lm, train, test, s))
        if small_path is not None:
            arms.append(finetune_classify(small_path, train, test, s, models_dir / "classification"))
        arms.append(probe_ngrams(train, test, s))
        if small is not None:
            arms.append(probe_hidden(small, train, test, s))
        if lm is not None and s.hybrid:
            arms.append(hybrid_classify(lm, small_path, train, test, s, models_dir / "hybrid"))
    else:
        if lm is None:
            raise ConfigError("--task generation needs --model (the LM to prompt and to fine-tune)")
        arms.append(prompt_generate(lm, train, test, s))
        if (cot := prompt_cot_generate(lm, train, test, s)) is not None:
            arms.append(cot)
        arms.append(finetune_generate(small_path, train, test, s, models_dir / "generation"))
        if s.hybrid:
            arms.append(hybrid_generate(lm, small_path, train, test, s, models_dir / "hybrid"))

    comparison = compare(arms, s.seed)
    prompted = (next((a for a in arms if a["name"] == comparison.get("prompt_arm")), None)
                or next((a for a in arms if a["family"] == "prompt"), None))
    measured = {"labels": len(train), "measured_winner": comparison["winner"],
                "measured_cheaper": comparison.get("cheaper"), "measured_hybrid": comparison.get("hybrid")}
    for name, diff in (("measured_difference", "difference"), ("measured_hybrid_difference", "hybrid_difference")):
        if diff in comparison:   # the numbers the advice quotes
            lo, hi = comparison[diff + "_ci"]
            measured.update({name: comparison[diff], name + "_low": lo, name + "_high": hi})
    if answers.task == "unknown" and s.task == "classification":
        measured["task"] = "classification"
    if prompted is not None:
        measured["measured_prompt_latency_ms"] = prompted["latency_ms_per_example"]
        measured["measured_prompt_usd_per_1k"] = prompted["usd_per_1k_examples"]
    advice = advise(merge_answers(answers, **{k: v for k, v in measured.items() if v not in (None, "unknown")}))
    report = {"settings": asdict(s), "train": str(train_path), "test": str(test_path),
              "model": str(model_path) if model_path else None,
              "small_model": str(small_model_path) if small_model_path else None,
              "n_train": len(train), "n_test": len(test),
              "labels": sorted({e.y for e in train}) if s.task == "classification" else [],
              "arms": arms, "comparison": comparison, "advice": advice.to_json(),
              "cost_model": "USD per 1k examples = latency x 1000 / 3600 x usd_per_hour "
                            "(+ prompt tokens x usd_per_1k_tokens for the prompted arm); "
                            "training = train seconds / 3600 x usd_per_hour"}
    for a in arms:
        log(f"bakeoff: {a['name']:<14} {_headline(a, s.task)}, {a['latency_ms_per_example']:.2f} ms/example")
    log(f"bakeoff: measured winner {comparison['winner']} → {advice.summary} (confidence {advice.confidence:.2f})")
    return report
