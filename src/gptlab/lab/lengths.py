"""Held-out bpb at a multiple of the training length (C9: do positions extrapolate?).

The model scores the held-out set with windows of ``factor × seq_len`` tokens (the training
length is the pack's seq_len). RoPE and ALiBi have no table to run out of: the model is rebuilt
with a longer block_size (their tables are recomputed, no weight changes). Learned positions
have one row per position: beyond the table there is nothing to score with, so the result is
nothing learned: the table is lengthened with rows from the model's own initialisation (never
trained; the same as an arm with ``model.block_size`` ≥ the window, whose extra rows get no
gradient), so the number measures how learned positions fail to extrapolate.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from gptlab.api import load_model
from gptlab.eval.bpb import evaluate_bpb, load_heldout
from gptlab.eval.config import EvalConfig
from gptlab.manifest import atomic_write_json, file_checksum
from gptlab.model import GPT
from gptlab.tokenizer import load_tokenizer


class _Window(nn.Module):
    """The model, with the window ``evaluate_bpb`` reads from ``config.block_size``."""

    def __init__(self, model: GPT, width: int):
        super().__init__()
        self.inner = model
        self.config = replace(model.config, block_size=width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


def at_width(model: GPT, width: int) -> nn.Module:
    """A model that scores windows of ``width`` tokens. Beyond its block_size it is rebuilt
    longer: RoPE/ALiBi recompute their tables; a learned table keeps its trained rows and gets
    the rest from the model's own initialisation (seeded), as rows that never saw a gradient."""
    cfg = model.config
    if width > cfg.block_size:
        torch.manual_seed(0)
        longer = GPT(replace(cfg, block_size=width))
        state = model.state_dict()
        if cfg.position == "learned":
            table = longer.embed_positions.weight.detach().clone()
            table[:cfg.block_size] = state["embed_positions.weight"]
            state["embed_positions.weight"] = table
        longer.load_state_dict(state)
        model = longer.eval()
    return _Window(model, width)


def bpb_at_length(train_dir: Path, heldout: Path, seq_len: int, factor: int, ecfg: EvalConfig,
                  out: Path) -> float:
    """Overall held-out bpb with windows of factor × seq_len; cached in ``out`` (per checkpoint)."""
    model, ckpt = load_model(train_dir, return_path=True)
    stamp = {"checkpoint": str(ckpt), "weights": file_checksum(ckpt / "model.safetensors"),
             "width": factor * seq_len, "stride_fraction": ecfg.stride_fraction}
    if out.exists():
        saved = json.loads(out.read_text())
        if saved.get("stamp") == stamp:
            return saved["bpb"]
    width = factor * seq_len
    with torch.no_grad():
        r = evaluate_bpb(at_width(model, width), load_tokenizer(ckpt), load_heldout(heldout)[1], None,
                         ecfg.stride_fraction, ecfg.batch_size, "cpu")
    bpb = r["overall"]["bpb"]
    note = ("learned rows beyond the trained table are initialised, never trained"
            if model.config.position == "learned" and width > model.config.block_size else None)
    atomic_write_json(out, {"stamp": stamp, "bpb": bpb, "note": note})
    return bpb
