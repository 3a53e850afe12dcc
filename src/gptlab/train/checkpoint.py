"""Training checkpoints: full state gathered from every rank (FSDP), and restored into a sharded model.

The file format (safetensors weights, optimizer state keyed by parameter name, RNG, JSON
state, a manifest) is :mod:`gptlab.checkpoint`'s; this module adds what needs the
distributed setup.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from gptlab.checkpoint import (
    _unflatten_optimizer,
    load_tensors,
    load_weights,
    load_weights_into,
    restore_rng,
    save_checkpoint,
    tied_aliases,
)
from gptlab.train.distributed import full_state, load_full_state


def save_training_checkpoint(folder, step, model, opt, config, extra=None, tokenizer_file=None,
                             keep=None, d=None) -> Path | None:
    """Gather full state (every rank takes part under FSDP); rank 0 writes it."""
    model_sd, optim_sd = full_state(model, opt, d)
    if d is not None and not d.is_main:
        return None
    return save_checkpoint(folder, step, model_sd, optim_sd, config, extra, tokenizer_file, keep,
                           aliases=tied_aliases(model))


def load_checkpoint(path: str | Path, model: torch.nn.Module, opt: torch.optim.Optimizer | None = None,
                    restore_rng_state: bool = True) -> dict[str, Any]:
    """Load weights (and optimizer/RNG state when given) in place; returns state.json.
    Works for plain, DDP and FSDP-sharded models alike."""
    path = Path(path)
    if opt is None:
        state = load_weights_into(path, model)
    else:
        state = json.loads((path / "state.json").read_text())
        model_sd = load_weights(path / "model.safetensors")
        optim_sd = (_unflatten_optimizer(load_tensors(path / "optimizer.safetensors"), state["optimizer"])
                    if "optimizer" in state else None)
        if optim_sd is None:
            getattr(model, "module", model).load_state_dict(model_sd, strict=True)
        else:
            load_full_state(model, opt, model_sd, optim_sd)
    if restore_rng_state:
        restore_rng(path)
    return state
