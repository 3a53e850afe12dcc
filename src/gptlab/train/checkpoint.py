"""Atomic, verifiable checkpoints: safetensors for tensors, JSON for the rest.

A checkpoint is a folder ``step-XXXXXXXX/`` holding the model weights, the optimizer
state, the RNG state, the resolved config, the tokenizer, and a manifest with a checksum
per file. It is written under a temporary name and renamed, so a folder with that name
is either whole or absent; ``latest_valid`` also re-verifies checksums and skips a
corrupt or truncated one with a clear message. Nothing here unpickles anything.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from gptlab.manifest import atomic_write_json, verify, write_manifest

PREFIX = "step-"


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"state.{idx}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{k}"] = v
    groups = [{k: v for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def _load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = v
    for key, v in meta["scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(folder: str | Path, step: int, model: torch.nn.Module, opt: torch.optim.Optimizer | None,
                    config: dict[str, Any], extra: dict[str, Any] | None = None,
                    tokenizer_file: str | Path | None = None, keep: int | None = None) -> Path:
    folder = Path(folder)
    final = folder / f"{PREFIX}{step:08d}"
    tmp = folder / f".{PREFIX}{step:08d}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_model(model, str(tmp / "model.safetensors"))
    outputs = ["model.safetensors", "state.json", "config.json"]
    state: dict[str, Any] = {"step": step, **(extra or {})}
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()
    save_file(rng, str(tmp / "rng.safetensors"))
    outputs.append("rng.safetensors")
    if opt is not None:
        tensors, meta = _optimizer_tensors(opt)
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        state["optimizer"] = meta
        outputs.append("optimizer.safetensors")
    atomic_write_json(tmp / "state.json", state)
    atomic_write_json(tmp / "config.json", config)
    if tokenizer_file is not None:
        shutil.copyfile(tokenizer_file, tmp / "tokenizer.json")
        outputs.append("tokenizer.json")
    write_manifest(tmp, stage="checkpoint", key=str(step), outputs=outputs)
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    if keep is not None:
        prune(folder, keep)
    return final


def list_checkpoints(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith(PREFIX))


def prune(folder: str | Path, keep: int) -> None:
    for p in list_checkpoints(folder)[:-keep]:
        shutil.rmtree(p, ignore_errors=True)


def latest_valid(folder: str | Path, log=None) -> Path | None:
    """The newest checkpoint whose manifest verifies; corrupt ones are reported and skipped."""
    for p in reversed(list_checkpoints(folder)):
        ok, why = verify(p)
        if ok:
            return p
        if log is not None:
            log(f"[yellow]checkpoint {p.name} is unusable ({why}); trying an older one")
    return None


def load_checkpoint(path: str | Path, model: torch.nn.Module, opt: torch.optim.Optimizer | None = None,
                    restore_rng: bool = True) -> dict[str, Any]:
    """Load weights (and optimizer/RNG state when given) in place; returns state.json."""
    path = Path(path)
    missing, unexpected = load_model(model, str(path / "model.safetensors"), strict=True)
    state = json.loads((path / "state.json").read_text())
    if opt is not None and "optimizer" in state:
        _load_optimizer(opt, load_file(str(path / "optimizer.safetensors")), state["optimizer"])
    if restore_rng and (path / "rng.safetensors").exists():
        rng = load_file(str(path / "rng.safetensors"))
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state(rng["cuda"])
    return state
