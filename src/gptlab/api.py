"""The Python API: library entry points that the CLI also calls."""
from __future__ import annotations

import json
from pathlib import Path


def _find_checkpoint(path: str | Path) -> Path:
    from gptlab.train.checkpoint import latest_valid
    p = Path(path)
    if (p / "model.safetensors").exists():
        return p
    for cand in (p / "checkpoints", p / "train" / "checkpoints"):
        ck = latest_valid(cand)
        if ck is not None:
            return ck
    raise FileNotFoundError(f"{p}: no checkpoint here (expected model.safetensors or checkpoints/)")


def load_model(path: str | Path, return_path: bool = False, device: str = "cpu"):
    """Load a gptlab model from a checkpoint folder, a training folder, or a run folder.

    Returns a GPT in eval mode; ``model(ids)`` on a [batch, seq] LongTensor gives logits
    of shape [batch, seq, vocab]."""
    from gptlab.config import from_dict
    from gptlab.model import GPT
    from gptlab.train.checkpoint import load_checkpoint

    ckpt = _find_checkpoint(path)
    cfg = from_dict(json.loads((ckpt / "config.json").read_text()))
    model = GPT(cfg.model)
    load_checkpoint(ckpt, model, restore_rng=False)
    model.to(device).eval()
    return (model, ckpt) if return_path else model
