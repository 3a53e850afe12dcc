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
import struct
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from gptlab.console import log as console_log
from gptlab.errors import InputError
from gptlab.faultpoint import kill_point
from gptlab.manifest import atomic_write_json, honour_umask, verify, write_manifest

PREFIX = "step-"


def _dedup(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tied weights share storage; safetensors stores each tensor once. Keep the first
    name and record the others as aliases (HF convention: the tied head is omitted)."""
    out, aliases, seen = {}, {}, {}
    for k, v in sd.items():
        key = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape)) if v.numel() else None
        if key is not None and key in seen:
            aliases[k] = seen[key]
            continue
        if key is not None:
            seen[key] = k
        out[k] = v.detach().cpu().contiguous()
    return out, aliases


def tied_aliases(model: torch.nn.Module) -> dict[str, str]:
    """{alias: name} for parameters that are one tensor under several names (tied embeddings),
    with wrapper prefixes (DDP, activation checkpointing, compile) removed."""
    def clean(n: str) -> str:
        for w in ("module.", "_orig_mod.", "_checkpoint_wrapped_module.", "_fsdp_wrapped_module."):
            n = n.replace(w, "")
        return n
    first: dict[int, str] = {}
    aliases = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in first:
            aliases[clean(name)] = first[id(p)]
        else:
            first[id(p)] = clean(name)
    return aliases


def save_weights(sd: dict[str, torch.Tensor], path: str | Path, aliases: dict[str, str] | None = None) -> None:
    """Unique tensors to safetensors; aliases (tied names) go to the metadata. Under FSDP the
    gathered full tensors no longer share storage, so the model's own tie map is passed in."""
    sd = {k: v for k, v in sd.items() if k not in (aliases or {})}
    tensors, found = _dedup(sd)
    aliases = {**(aliases or {}), **found}
    save_sorted(tensors, path, {"format": "pt", "aliases": json.dumps(aliases, sort_keys=True)})


def save_sorted(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """``save_file`` with the header's ``__metadata__`` in sorted key order.

    safetensors keeps the metadata in a hash map, whose order changes from one save to the
    next, so identical states gave files with different bytes. Reordering the same keys and
    values leaves the header's length unchanged, so it is rewritten in place. The file gets
    the umask's mode (safetensors creates it 0600)."""
    save_file(tensors, str(path), metadata=metadata)
    honour_umask(path)
    if not metadata:
        return
    with open(path, "r+b") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        raw = f.read(n)
        header = json.loads(raw)
        meta = header.pop("__metadata__", None)
        if meta is None:
            return
        ordered = {"__metadata__": dict(sorted(meta.items())), **header}
        new = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode()
        if len(new) > n:   # a different escaping than the writer's: keep its (valid) header
            return
        f.seek(8)
        f.write(new + b" " * (n - len(new)))   # the format pads its header with spaces


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """``load_file``, with a file that does not parse as safetensors an InputError naming it."""
    try:
        return load_file(str(path))
    except (SafetensorError, ValueError) as e:
        raise InputError(f"{path}: not a readable safetensors file ({' '.join(str(e).split())})") from None


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, tied names restored; InputError if it does not parse."""
    try:
        sd = load_file(str(path))
        with safe_open(str(path), framework="pt") as f:
            aliases = json.loads((f.metadata() or {}).get("aliases", "{}"))
    except (SafetensorError, OSError, ValueError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise InputError(f"{path}: not a readable safetensors file ({' '.join(str(e).split())})") from None
    for k, target in aliases.items():
        sd[k] = sd[target]
    return sd


def _flatten_optimizer(osd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimizer state keyed by parameter name: tensors to safetensors, the rest to JSON."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for pname, st in osd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pname}::{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{pname}::{k}"] = v
    return tensors, {"param_groups": osd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[str, dict[str, Any]] = {}
    for key, v in list(tensors.items()) + list(meta["scalars"].items()):
        pname, name = key.rsplit("::", 1)
        state.setdefault(pname, {})[name] = v
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(folder: str | Path, step: int, model_sd: dict[str, torch.Tensor], optim_sd: dict | None,
                    config: dict[str, Any], extra: dict[str, Any] | None = None,
                    tokenizer_file: str | Path | None = None, keep: int | None = None,
                    aliases: dict[str, str] | None = None) -> Path:
    """Write one checkpoint from full (unsharded) state dicts keyed by parameter name
    (``gptlab.train.distributed.full_state`` gathers them under FSDP)."""
    folder = Path(folder)
    final = folder / f"{PREFIX}{step:08d}"
    tmp = folder / f".{PREFIX}{step:08d}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_weights(model_sd, tmp / "model.safetensors", aliases)
    kill_point("checkpoint-weights")
    outputs = ["model.safetensors", "state.json", "config.json", "rng.safetensors"]
    state: dict[str, Any] = {"step": step, **(extra or {})}
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()
    save_sorted(rng, tmp / "rng.safetensors")
    if optim_sd is not None:
        tensors, meta = _flatten_optimizer(optim_sd)
        save_sorted(tensors, tmp / "optimizer.safetensors")
        state["optimizer"] = meta
        outputs.append("optimizer.safetensors")
    atomic_write_json(tmp / "state.json", state)
    atomic_write_json(tmp / "config.json", config)
    if tokenizer_file is not None:
        shutil.copyfile(tokenizer_file, tmp / "tokenizer.json")
        outputs.append("tokenizer.json")
    write_manifest(tmp, stage="checkpoint", key=str(step), outputs=outputs)
    kill_point("checkpoint-manifest")
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    kill_point("checkpoint-renamed")
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


def read_json(path: str | Path) -> Any:
    """A checkpoint's JSON file (state.json, config.json); InputError naming it if it does not parse."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise InputError(f"{path}: not valid JSON ({' '.join(str(e).split())[:200]})") from None


def load_weights_into(path: str | Path, model: torch.nn.Module) -> dict[str, Any]:
    """Load a checkpoint's weights into ``model`` (a plain module or a DDP wrapper); returns state.json."""
    path = Path(path)
    state = read_json(path / "state.json")
    target = getattr(model, "module", model)
    target.load_state_dict(load_weights(path / "model.safetensors"), strict=True)
    return state


def restore_rng(path: str | Path) -> None:
    """Restore the torch (and CUDA) RNG state saved beside a checkpoint, when there is one."""
    path = Path(path)
    if (path / "rng.safetensors").exists():
        rng = load_tensors(path / "rng.safetensors")
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state(rng["cuda"])


def find_checkpoint(path: str | Path, log=console_log) -> Path:
    """A checkpoint folder itself, or the newest one that verifies in a training or run folder.

    Every checksum is verified first: a checkpoint folder named directly that does not verify
    is refused, never loaded; in a training or run folder a corrupt newest checkpoint is
    reported and the next older one is used; the one chosen in a folder is logged."""
    p = Path(path)
    if (p / "model.safetensors").exists() or p.name.startswith(PREFIX):
        ok, why = verify(p)
        if not ok:
            raise InputError(f"{p}: checkpoint is unusable ({why}); give a checkpoint that verifies, "
                             f"or its training folder to use the newest valid one")
        return p
    for cand in (p / "checkpoints", p / "train" / "checkpoints"):
        if not list_checkpoints(cand):
            continue
        ck = latest_valid(cand, log=log)
        if ck is None:
            raise InputError(f"{cand}: no checkpoint here verifies (all are corrupt or incomplete)")
        log(f"checkpoint: using {ck}")
        return ck
    raise FileNotFoundError(f"{p}: no checkpoint here (expected model.safetensors or checkpoints/)")
