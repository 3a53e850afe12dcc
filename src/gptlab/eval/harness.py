"""lm-evaluation-harness adapter: a ``gptlab`` model for lm-eval 0.4.x, and ways to run it.

lm-eval 0.4.13 finds models only in its own registry (no entry points, no ``--plugins``),
so this module must be imported before the harness looks the name up. Three ways work:

* ``gptlab eval --harness TASKS --checkpoint CKPT [--include-path DIR]`` (``run_harness``)
* ``python -m gptlab.eval.harness run --model gptlab --model_args path=CKPT --tasks ...``:
  lm-eval's own command line, with this module imported first
* ``import gptlab.eval.harness`` and then ``lm_eval.simple_evaluate(model="gptlab", ...)``

The adapter conditions every context on the end-of-text token, as gptlab's own runner
does (``gptlab.eval.scoring``). For the same numbers from ``--model hf`` on an exported
folder, pass ``add_bos_token=True`` (the export's BOS is the end-of-text token).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import lm_eval.models  # noqa: F401  -- fills the registry with lm-eval's own models first: the registry
import torch
import torch.nn.functional as F

# imports them lazily only while it is empty, so registering "gptlab" alone would hide "hf".
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from gptlab.api import load_model
from gptlab.console import log
from gptlab.errors import InputError
from gptlab.eval.generate import Sampling, cut_at_stop, generate_ids
from gptlab.eval.scoring import encode, eos_token_id, generation_context, loglikelihood, prompt_ids
from gptlab.eval.tasks import BETWEEN_EXAMPLES, QUERY_ANSWER, Task, TaskError, load_task
from gptlab.manifest import atomic_write, write_manifest
from gptlab.tokenizer import load_tokenizer


def _int_or(value, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default                # lm-eval may pass "auto"


@register_model("gptlab")
class GptlabLM(LM):
    """``--model gptlab --model_args path=CKPT[,max_length=N]``: a gptlab checkpoint, training or run folder."""

    def __init__(self, path: str | None = None, checkpoint: str | None = None, batch_size=16,
                 max_batch_size=None, device: str | None = "cpu", max_length: int | None = None,
                 max_gen_toks: int = 256, model=None, tokenizer=None, **unused):
        super().__init__()
        if device and device.startswith("cuda") and not torch.cuda.is_available():
            device = "cpu"            # lm-eval's CLI defaults to cuda:0
        self._device = torch.device(device or "cpu")
        if model is None:
            where = path or checkpoint
            if where is None:
                raise InputError("--model gptlab needs model_args path=CHECKPOINT")
            model, ckpt = load_model(where, return_path=True, device=str(self._device))
            tokenizer = load_tokenizer(ckpt)
        self.model, self.tokenizer = model.eval(), tokenizer
        self.batch_size = _int_or(batch_size, 16)
        self.max_length = _int_or(max_length, model.config.block_size)
        self.max_gen_toks = _int_or(max_gen_toks, 256)
        self.eot = eos_token_id(tokenizer)

    def _encode(self, text: str) -> list[int]:
        return encode(self.tokenizer, text)

    def loglikelihood(self, requests) -> list[tuple[float, bool]]:
        return loglikelihood(self.model, self.tokenizer, [r.args for r in requests], self.batch_size,
                             self.max_length)

    @torch.no_grad()
    def _score_tokens(self, pairs: list[tuple[list[int], list[int]]]) -> list[float]:
        """Summed log p(cont | ctx) for token-level (ctx, cont) pairs, batched with right padding."""
        out = []
        for start in range(0, len(pairs), self.batch_size):
            chunk = pairs[start:start + self.batch_size]
            seqs = [(ctx + cont)[:-1] for ctx, cont in chunk]
            x = torch.zeros(len(seqs), max(map(len, seqs)), dtype=torch.long)
            for r, s in enumerate(seqs):
                x[r, :len(s)] = torch.tensor(s)
            logp = F.log_softmax(self.model(x.to(self._device)).float(), -1).cpu()
            for r, (ctx, cont) in enumerate(chunk):
                n, end = len(cont), len(seqs[r])
                out.append(logp[r, end - n:end].gather(1, torch.tensor(cont)[:, None]).sum().item())
        return out

    def loglikelihood_rolling(self, requests) -> list[float]:
        """Whole-document log-likelihood in disjoint windows (each token predicted once), as lm-eval's
        ``hf`` model computes it: the first window starts from end-of-text."""
        from lm_eval.utils import get_rolling_token_windows, make_disjoint_window  # noqa: PLC0415  (optional extra (lm-eval), seconds to import)
        results = []
        for (text,) in (r.args for r in requests):
            windows = [make_disjoint_window(w) for w in get_rolling_token_windows(
                token_list=self._encode(text), prefix_token=self.eot, max_seq_len=self.max_length, context_len=1)]
            results.append(sum(self._score_tokens(windows)))
        return results

    def generate_until(self, requests) -> list[str]:
        out = []
        eos_text = self.tokenizer.decode([self.eot], skip_special_tokens=False) if self.eot is not None else None
        for context, kwargs in (r.args for r in requests):
            kwargs = dict(kwargs or {})
            until = kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            if eos_text and eos_text not in until:
                until.append(eos_text)
            max_new = _int_or(kwargs.get("max_gen_toks", kwargs.get("max_new_tokens")), self.max_gen_toks)
            # Room for the answer, as hf does and as gptlab's task runner does.
            ids = generation_context(prompt_ids(self.tokenizer, context), self.max_length, max_new)
            temperature = float(kwargs.get("temperature", 0.0) or 0.0)
            if not kwargs.get("do_sample", False):
                temperature = 0.0
            s = Sampling(temperature, kwargs.get("top_k"), kwargs.get("top_p"), kwargs.get("seed"))

            def should_stop(new: list[int]) -> bool:
                text = self.tokenizer.decode(new)
                return any(st in text for st in until)

            new = generate_ids(self.model, ids, max_new, s, stop_ids=(self.eot,), should_stop=should_stop)
            if new and new[-1] == self.eot:
                new = new[:-1]
            out.append(cut_at_stop(self.tokenizer.decode(new), until))
        return out


# ----------------------------------------------------------------------------- local tasks as lm-eval YAML

def harness_task_yaml(task: Task, data_file: str | Path, max_gen_toks: int = 32, stop: list[str] | None = None) -> str:
    """An lm-eval task definition equal to gptlab's runner: same prompt, delimiters and metrics.

    JSON strings are valid YAML, so the file is written as JSON (no YAML library needed)."""
    if task.kind not in ("multiple_choice", "generation"):
        raise TaskError(f"{data_file}: a {task.kind} task has no lm-eval twin here; run it with gptlab eval --tasks")
    spec = {"task": task.name, "dataset_path": "json",
            # An absolute path: lm-eval resolves relative data_files against the working directory.
            "dataset_kwargs": {"data_files": {"test": str(Path(data_file).resolve())}},
            "test_split": "test", "doc_to_text": "query",
            "target_delimiter": QUERY_ANSWER, "fewshot_delimiter": BETWEEN_EXAMPLES,
            "metadata": {"version": 1.0}}
    if task.kind == "multiple_choice":
        spec.update(output_type="multiple_choice", doc_to_choice="choices", doc_to_target="gold",
                    metric_list=[{"metric": m, "aggregation": "mean", "higher_is_better": True}
                                 for m in ("acc", "acc_norm", "acc_bytes")])
    else:
        spec.update(output_type="generate_until", doc_to_target="answer",
                    generation_kwargs={"until": stop if stop is not None else ["\n"],
                                       "max_gen_toks": max_gen_toks, "do_sample": False},
                    metric_list=[{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True,
                                  "ignore_case": True, "ignore_punctuation": True}])
    return json.dumps(spec, indent=2) + "\n"


def write_harness_task(task_file: str | Path, out_dir: str | Path, **kwargs) -> Path:
    """Write ``OUT/NAME.yaml`` for a gptlab JSONL task; pass OUT as ``--include-path``."""
    task = load_task(task_file)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    p = out / f"{task.name}.yaml"
    atomic_write(p, harness_task_yaml(task, task_file, **kwargs))
    return p


# ----------------------------------------------------------------------------- running

def _summary(results: dict) -> dict:
    """{task: {metric: value}} without lm-eval's ',none' filter suffixes and the stderr entries."""
    out = {}
    for task, metrics in results.get("results", {}).items():
        out[task] = {k.split(",")[0]: float(v) for k, v in metrics.items()
                     if isinstance(v, (int, float)) and "stderr" not in k and k != "sample_len"}
    return out


def run_harness(tasks: list[str], checkpoint=None, out_dir: str | Path | None = None,
                include_path: str | Path | None = None, num_fewshot: int | None = None,
                limit: int | None = None, batch_size: int = 16, device: str = "cpu",
                model: str = "gptlab", model_args: dict | None = None, log_samples: bool = False) -> dict:
    """Run lm-eval tasks through the adapter (or any lm-eval ``model``); results in OUT/harness/."""
    from lm_eval import simple_evaluate  # noqa: PLC0415  (optional extra (lm-eval), seconds to import)
    from lm_eval.tasks import TaskManager  # noqa: PLC0415  (optional extra (lm-eval), seconds to import)

    args = dict(model_args or {})
    if model == "gptlab" and checkpoint is not None:
        args.setdefault("path", str(checkpoint))
    manager = TaskManager(include_path=str(include_path) if include_path else None)
    res = simple_evaluate(model=model, model_args=args, tasks=list(tasks), num_fewshot=num_fewshot,
                          limit=limit, batch_size=batch_size, device=device, task_manager=manager,
                          log_samples=log_samples)
    summary = {"model": model, "model_args": {k: str(v) for k, v in args.items()}, "num_fewshot": num_fewshot,
               "tasks": _summary(res), "n": {t: int(n.get("effective", n.get("original", 0))) for t, n in res.get("n-samples", {}).items()}}
    samples = res.get("samples", {}) if log_samples else {}
    if out_dir is not None:
        out = Path(out_dir) / "harness"
        out.mkdir(parents=True, exist_ok=True)
        dump = lambda obj: json.dumps(obj, indent=1, default=lambda o: o.item() if hasattr(o, "item") else str(o))
        atomic_write(out / "results.json", dump({"summary": summary, "results": res.get("results", {}),
                                                 "versions": res.get("versions", {})}))
        outputs = ["results.json"]
        if log_samples:
            atomic_write(out / "samples.json", dump(samples))       # per-row requests and responses
            outputs.append("samples.json")
        write_manifest(out, stage="eval-harness", key=json.dumps(summary["model_args"], sort_keys=True),
                       outputs=outputs, summary=summary)
        for task, metrics in summary["tasks"].items():
            log(f"harness {task}: " + ", ".join(f"{m} {v:.4f}" for m, v in metrics.items()))
    if log_samples:
        summary["samples"] = samples
    return summary


def main() -> None:
    """lm-eval's own command line, with the gptlab model registered."""
    from lm_eval.__main__ import cli_evaluate  # noqa: PLC0415  (optional extra (lm-eval), seconds to import)
    sys.exit(cli_evaluate())


if __name__ == "__main__":
    main()
