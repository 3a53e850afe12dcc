"""The Python API: library entry points that the CLI also calls."""
from __future__ import annotations

from pathlib import Path

import torch

from gptlab.checkpoint import find_checkpoint, load_weights_into, read_json
from gptlab.model import GPT, ModelConfig
from gptlab.schema import apply, validate


def model_config_of(ckpt: str | Path) -> ModelConfig:
    """The model section of a checkpoint's saved config (the rest belongs to training)."""
    cfg = read_json(Path(ckpt) / "config.json")
    mcfg = apply(ModelConfig(), cfg.get("model", {}), prefix="model.")
    validate(mcfg, prefix="model.")
    return mcfg


def load_model(path: str | Path, return_path: bool = False, device: str | torch.device = "cpu"):
    """Load a gptlab model from a checkpoint folder, a training folder, or a run folder.

    Returns a GPT in eval mode; ``model(ids)`` on a [batch, seq] LongTensor gives logits
    of shape [batch, seq, vocab]."""
    ckpt = find_checkpoint(path)
    model = GPT(model_config_of(ckpt))
    load_weights_into(ckpt, model)
    model.to(device).eval()
    return (model, ckpt) if return_path else model
