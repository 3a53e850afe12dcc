"""Held-out bits-per-byte, per domain, beside a unigram baseline.

Definition. For a document with raw text *s*, let B = len(s.encode("utf-8")) and let
t_1..t_n be its tokens. The model reads an end-of-text token and then predicts every
t_i exactly once, from up to ``block_size`` tokens of preceding context (rolling windows
that advance by ``stride`` tokens; each window scores only the tokens not yet scored).
bits-per-byte = Σ_i −log2 p(t_i | context) / B, summed over a domain's documents
(numerator and denominator separately). Because it is normalised by bytes, not tokens,
it compares models with different tokenizers. The unigram baseline scores each token
with its add-one-smoothed frequency in the packed training stream.
"""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F

from gptlab.api import load_model
from gptlab.console import log, make_progress
from gptlab.data.documents import read_shards, shard_paths
from gptlab.device import autocast, resolve_device, resolve_precision
from gptlab.errors import InputError
from gptlab.eval.config import EvalConfig
from gptlab.manifest import Stage, atomic_write_json, stage_key
from gptlab.pack.packed import PackedData
from gptlab.schema import section_dict
from gptlab.tokenizer import eos_id, load_tokenizer

LN2 = math.log(2)


def windows(ids: list[int], width: int, stride: int) -> Iterable[tuple[list[int], list[int], int]]:
    """(inputs, targets, first scored position) covering targets ids[1:] exactly once.

    ids[0] is the leading end-of-text token: it is context, never a target."""
    n = len(ids)
    next_target = 1
    begin = 0
    while next_target < n:
        end = min(begin + width, n - 1)               # inputs ids[begin:end], targets ids[begin+1:end+1]
        first = next_target - (begin + 1)
        yield ids[begin:end], ids[begin + 1:end + 1], first
        next_target = end + 1
        begin = min(begin + stride, max(0, next_target - 1))


@torch.no_grad()
def token_nll(model, docs_ids: list[list[int]], width: int, stride: int, batch_size: int,
              device: torch.device | str = "cpu", autocast=None, on_batch=None) -> list[float]:
    """Summed natural-log NLL per document. ``on_batch(done, total)`` follows the batches."""
    jobs = []
    for d, ids in enumerate(docs_ids):
        for inp, tgt, first in windows(ids, width, stride):
            jobs.append((d, inp, tgt, first))
    totals = [0.0] * len(docs_ids)
    model.eval()
    n_batches = -(-len(jobs) // batch_size)
    for i in range(0, len(jobs), batch_size):
        chunk = jobs[i:i + batch_size]
        T = max(len(j[1]) for j in chunk)
        x = torch.zeros(len(chunk), T, dtype=torch.long)
        y = torch.full((len(chunk), T), -100, dtype=torch.long)
        for r, (_, inp, tgt, first) in enumerate(chunk):
            x[r, :len(inp)] = torch.tensor(inp)
            y[r, first:len(tgt)] = torch.tensor(tgt[first:])
        x, y = x.to(device), y.to(device)
        if autocast is not None:
            with autocast:
                logits = model(x)
        else:
            logits = model(x)
        nll = F.cross_entropy(logits.float().transpose(1, 2), y, ignore_index=-100, reduction="none")
        per_row = nll.sum(dim=1).double().cpu().tolist()
        for r, (d, *_rest) in enumerate(chunk):
            totals[d] += per_row[r]
        if on_batch is not None:
            on_batch(i // batch_size + 1, n_batches)
    return totals


def unigram_bits(docs_ids: list[list[int]], counts: np.ndarray) -> list[float]:
    logp = np.log2((counts.astype(np.float64) + 1.0) / (counts.sum() + len(counts)))
    return [float(-logp[np.asarray(ids[1:], dtype=np.int64)].sum()) for ids in docs_ids]


def evaluate_bpb(model, tokenizer, docs, unigram_counts: np.ndarray | None, stride_fraction: float = 0.5,
                 batch_size: int = 8, device="cpu", autocast=None, on_batch=None) -> dict:
    """Per-domain and overall bpb for ``docs`` (Documents); the unigram baseline when counts given.
    ``on_batch(done, total)`` is called after each batch of windows."""
    eos = eos_id(tokenizer)
    width = model.config.block_size
    stride = max(1, int(width * stride_fraction))
    ids = [[eos] + enc.ids for enc in tokenizer.encode_batch([d.text for d in docs])]
    nll = token_nll(model, ids, width, stride, batch_size, device, autocast, on_batch)
    uni = unigram_bits(ids, unigram_counts) if unigram_counts is not None else None
    agg: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for k, d in enumerate(docs):
        for key in (d.domain, "overall"):
            a = agg[key]
            a["bits"] += nll[k] / LN2
            a["bytes"] += len(d.text.encode("utf-8"))
            a["tokens"] += len(ids[k]) - 1
            a["docs"] += 1
            if uni is not None:
                a["unigram_bits"] += uni[k]
    out = {}
    for key, a in agg.items():
        r = {"docs": int(a["docs"]), "bytes": int(a["bytes"]), "tokens": int(a["tokens"]),
             "bpb": a["bits"] / a["bytes"]}
        if uni is not None:
            r["unigram_bpb"] = a["unigram_bits"] / a["bytes"]
        out[key] = r
    overall = out.pop("overall")
    return {"domains": dict(sorted(out.items())), "overall": overall,
            "definition": "bits per UTF-8 byte; every token predicted once; rolling windows",
            "window": width, "stride": stride}


def load_heldout(heldout: str | Path) -> tuple[list[Path], list]:
    """Held-out shard files and their documents, from a shard, a folder of shards, or a
    curate folder (which keeps them in heldout/)."""
    heldout = Path(heldout)
    if heldout.is_file():
        files = [heldout]
    else:
        files = shard_paths(heldout / "heldout" if (heldout / "heldout").is_dir() else heldout)
    docs = list(read_shards(files))
    if not docs:
        raise InputError(f"{heldout}: no held-out documents to evaluate")
    return files, docs


def unigram_counts(pack_dir: str | Path | None) -> np.ndarray | None:
    """Token counts of the packed training stream, for the unigram baseline (None: no baseline)."""
    if pack_dir is None:
        return None
    return PackedData(pack_dir).unigram_counts()


def run_eval(ecfg: EvalConfig, heldout: str | Path, checkpoint: str | Path, pack_dir: str | Path | None,
             out_dir: str | Path, *, force: bool = False) -> dict:
    """`gptlab eval`: per-domain held-out bpb of a checkpoint, beside the unigram baseline.

    The stage key covers what the numbers depend on: the eval settings, the held-out files'
    content (not their names), the checkpoint and pack outputs, and the device and precision."""
    files, docs = load_heldout(heldout)
    model, ckpt = load_model(checkpoint, return_path=True)
    device = resolve_device(ecfg.device, key="eval.device")
    precision = resolve_precision(ecfg.precision, device)
    upstream = [ckpt] + ([pack_dir] if pack_dir else [])
    key = stage_key({"eval": section_dict(ecfg), "device": device.type, "precision": precision},
                    upstream=upstream, files=files)
    with Stage(out_dir, "eval", key, force=force) as st:
        if st.complete:
            return st.summary
        tok = load_tokenizer(ckpt)
        counts = unigram_counts(pack_dir)
        model.to(device)
        # The bar counts batches of windows; their number is known once the documents are tokenized.
        with make_progress() as prog:
            bar = prog.add_task("eval (batches)", total=None, info=f"tokenizing {len(docs):,} docs")

            def on_batch(done: int, total: int) -> None:
                prog.update(bar, completed=done, total=total, info=f"{len(docs):,} docs")

            result = evaluate_bpb(model, tok, docs, counts, ecfg.stride_fraction, ecfg.batch_size,
                                  device, autocast(precision, device), on_batch)
        result["checkpoint"] = str(ckpt)
        result["precision"] = precision
        atomic_write_json(st.dir / "eval.json", result)
        st.done(["eval.json"], result, config={"eval": section_dict(ecfg)})
    o = result["overall"]
    log(f"eval: held-out {o['bpb']:.3f} bpb" + (f" (unigram {o['unigram_bpb']:.3f})" if counts is not None else "")
        + f" over {o['docs']} docs → {st.dir}")
    return result


def make_bpb_eval(heldout: str | Path, tokenizer, pack_dir: str | Path | None = None, ecfg: EvalConfig | None = None,
                  max_docs: int | None = None):
    """An ``evaluate(model)`` for the training loop's periodic eval hook (``train.eval_every``).

    Reads the held-out documents and the unigram counts once; each call returns per-domain
    and overall bpb as ``evaluate_bpb`` does, on the model's own device. ``tokenizer`` is a
    Tokenizer or a tokenizer file/folder; ``ecfg`` gives eval.stride_fraction and
    eval.batch_size (defaults otherwise)."""

    docs = load_heldout(heldout)[1][:max_docs]
    tok = load_tokenizer(tokenizer) if isinstance(tokenizer, (str, Path)) else tokenizer
    counts = unigram_counts(pack_dir)
    ecfg = ecfg or EvalConfig()
    stride_fraction, batch_size = ecfg.stride_fraction, ecfg.batch_size

    def evaluate(model) -> dict:
        device = next(model.parameters()).device
        return evaluate_bpb(model, tok, docs, counts, stride_fraction, batch_size, device)
    return evaluate
