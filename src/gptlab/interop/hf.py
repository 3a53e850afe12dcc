"""Hugging Face export and import: `gptlab export --format hf` and `gptlab import --format hf`.

An export folder holds model.safetensors, config.json and the tokenizer files, and loads
offline with ``AutoModelForCausalLM.from_pretrained(DIR)``. An import folder is a gptlab
checkpoint (model.safetensors, config.json, state.json, tokenizer.json, manifest) that
``gptlab.load_model`` reads. Both are written under a temporary name and renamed, so a
folder with the final name is whole. Weights are read and written with safetensors only.
"""
from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors import SafetensorError

from gptlab.api import load_model
from gptlab.checkpoint import save_weights, tied_aliases
from gptlab.console import log
from gptlab.errors import InputError, UserError
from gptlab.interop.adapters import ADAPTERS, Adapter, pick_adapter, zero_fill
from gptlab.interop.errors import ExportRefused
from gptlab.manifest import MANIFEST, atomic_write_json, honour_umask, invalidate, read_manifest, write_manifest
from gptlab.model import GPT, ModelConfig
from gptlab.schema import section_dict
from gptlab.tokenizer import EOS, eos_id, load_tokenizer

_CONFIG_CLASS = {"GPT2LMHeadModel": "GPT2Config", "OPTForCausalLM": "OPTConfig",
                 "BloomForCausalLM": "BloomConfig", "LlamaForCausalLM": "LlamaConfig",
                 "CohereForCausalLM": "CohereConfig"}


def _transformers():
    try:
        import transformers  # noqa: PLC0415  (optional extra (transformers), seconds to import)
    except ImportError:
        raise ExportRefused("Hugging Face interop needs transformers: pip install 'gptlab[hf]'") from None
    return transformers


@contextmanager
def quiet_transformers():
    """transformers' own tqdm bars and warnings would print through gptlab's bars and log
    lines: off while we call it, as they were afterwards."""
    tl = _transformers().utils.logging
    bars, level = tl.is_progress_bar_enabled(), tl.get_verbosity()
    tl.disable_progress_bar()
    tl.set_verbosity_error()
    try:
        yield
    finally:
        if bars:
            tl.enable_progress_bar()
        tl.set_verbosity(level)


def build_hf_config(adapter: Adapter, cfg: ModelConfig, special: dict | None = None, **overrides):
    tf = _transformers()
    kwargs = adapter.hf_config(adapter.config_for_export(cfg), special or {})
    kwargs.update(overrides)
    hf_cfg = getattr(tf, _CONFIG_CLASS[adapter.arch])(**kwargs)
    hf_cfg.architectures = [adapter.arch]
    return hf_cfg


@torch.no_grad()
def to_hf_model(model: GPT, arch: str | None = None, special: dict | None = None,
                skip: tuple[str, ...] = (), config_overrides: dict | None = None):
    """An in-memory HF model computing the same logits as ``model`` (fp32, eval mode).

    ``skip`` and ``config_overrides`` exist for the negative-control tests."""
    tf = _transformers()
    cfg = model.config
    adapter = pick_adapter(cfg, arch)
    hf_cfg = build_hf_config(adapter, cfg, special, **(config_overrides or {}))
    hf = getattr(tf, adapter.arch)(hf_cfg).float()
    sd = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    hf_sd = adapter.to_hf(sd, cfg, skip=skip)
    expected = hf.state_dict()
    if hf_cfg.tie_word_embeddings and "lm_head.weight" in expected and "lm_head.weight" not in hf_sd:
        # A tied HF head is the same tensor as the input embedding; give load_state_dict both names.
        hf_sd["lm_head.weight"] = hf_sd[adapter.keys["embed_tokens.weight"]]
    hf_sd = zero_fill(hf_sd, expected)
    hf.load_state_dict(hf_sd, strict=True)
    return hf.eval()


@torch.no_grad()
def from_hf_model(hf, block_size: int | None = None) -> GPT:
    """A gptlab GPT computing the same logits as the HF model ``hf``."""
    h = hf.config
    arch = (getattr(h, "architectures", None) or [type(hf).__name__])[0]
    if arch not in ADAPTERS:
        raise ExportRefused(f"{arch}: no gptlab adapter (supported: {', '.join(ADAPTERS)})")
    adapter = ADAPTERS[arch]
    try:
        fields = adapter.native_config(h)
    except ValueError as e:
        raise ExportRefused(str(e)) from None
    if fields.get("block_size") is None:
        fields["block_size"] = block_size or 2048   # BLOOM stores no context length (ALiBi has none)
    elif block_size:
        fields["block_size"] = block_size
    fields["dropout"] = 0.0
    cfg = ModelConfig(**fields)
    cfg.check()
    sd = adapter.from_hf({k: v.detach().float().cpu() for k, v in hf.state_dict().items()}, cfg)
    model = GPT(cfg)
    model.load_state_dict(sd, strict=True)
    return model.eval()


# ----------------------------------------------------------------------------- tokenizer

def _special_ids(tokenizer_file: Path | None) -> dict:
    if tokenizer_file is None or not tokenizer_file.exists():
        return {}
    eos = eos_id(load_tokenizer(tokenizer_file))
    return {"bos": eos, "eos": eos, "pad": eos}   # one end-of-text token separates packed documents


def _save_tokenizer(tokenizer_file: Path, out: Path) -> None:
    from transformers import PreTrainedTokenizerFast  # noqa: PLC0415  (optional extra (transformers), seconds to import)

    tok = PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_file), bos_token=EOS, eos_token=EOS,
                                  unk_token=EOS, pad_token=EOS)
    tok.save_pretrained(str(out))


def _fresh_tmp(out: Path) -> Path:
    tmp = out.parent / f".{out.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def _claim(out: str | Path, mine, what: str, force: bool) -> tuple[Path, bool]:
    """Check, before any work, that ``out`` may receive this command's folder.

    Returns (resolved out, owned): owned when the folder is absent, empty, or holds an
    earlier output of this command (``mine(manifest)``), whose listed files may be replaced.
    A non-empty folder that this command did not make is refused unless ``force``; and
    then only same-named files are replaced, nothing else in it is deleted. The working
    folder and its parents are always refused: the output is published by renaming a folder."""
    out = Path(out).resolve()
    cwd = Path.cwd().resolve()
    if out == cwd or out in cwd.parents:
        raise UserError(f"{out}: is the working folder (or holds it); give {what} a new or empty folder of its own")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder; give {what} a new or empty folder")
    if not out.is_dir() or not any(out.iterdir()):
        return out, True
    m = read_manifest(out)
    if m is not None and mine(m):
        return out, True
    if not force:
        first = sorted(out.iterdir())[0].name
        raise UserError(f"{out}: is not empty and is not an earlier {what} ({first}); choose a new or empty "
                        f"folder (or pass --force to write into it, replacing only same-named files)")
    return out, False


def _publish(tmp: Path, out: Path, owned: bool) -> None:
    """Put ``tmp``'s files at ``out``: a rename when ``out`` is absent or empty; otherwise the
    earlier output's listed files (when it is ours) are removed and the new files moved in,
    the manifest last, so the folder reads as complete only once it is."""
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if not out.exists():
        tmp.rename(out)
        return
    old = read_manifest(out) if owned else None
    invalidate(out)
    for rel in (old or {}).get("outputs", {}):
        (out / rel).unlink(missing_ok=True)
    files = sorted((p for p in tmp.rglob("*") if p.is_file()), key=lambda p: p.name == MANIFEST)
    for f in files:
        dest = out / f.relative_to(tmp)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(f, dest)
    shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------- export / import

def export_hf(checkpoint: str | Path, out: str | Path, arch: str | None = None, *, force: bool = False) -> Path:
    """Write a Hugging Face folder for a gptlab checkpoint (or training/run folder)."""

    out, owned = _claim(out, lambda m: m.get("stage") == "export", "the export", force)
    model, ckpt = load_model(checkpoint, return_path=True)
    tokenizer_file = ckpt / "tokenizer.json"
    special = _special_ids(tokenizer_file)
    with quiet_transformers():
        hf = to_hf_model(model, arch, special)
    tmp = _fresh_tmp(out)
    with quiet_transformers():
        hf.save_pretrained(str(tmp), safe_serialization=True)
        if tokenizer_file.exists():
            _save_tokenizer(tokenizer_file, tmp)
    if not tokenizer_file.exists():
        log(f"[yellow]export: {ckpt} has no tokenizer.json; the folder holds the model only")
    outputs = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
    for rel in outputs:
        honour_umask(tmp / rel)   # transformers' safetensors writer makes its files 0600
    write_manifest(tmp, stage="export", key=str(ckpt), outputs=outputs,
                   summary={"architecture": hf.config.architectures[0], "checkpoint": str(ckpt)})
    _publish(tmp, out, owned)
    log(f"export: {ckpt.name} → {hf.config.architectures[0]} at {out}")
    return out


def _read_hf_config(hf_dir: Path) -> dict:
    if not (hf_dir / "config.json").exists():
        raise FileNotFoundError(f"{hf_dir}: not a Hugging Face model folder (no config.json)")
    try:
        cfg = json.loads((hf_dir / "config.json").read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as e:   # JSONDecodeError, UnicodeDecodeError, too deep or too long
        raise InputError(f"{hf_dir}/config.json: not valid JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise InputError(f"{hf_dir}/config.json: expected a JSON object")
    return cfg


def import_hf(hf_dir: str | Path, out: str | Path, block_size: int | None = None, *, force: bool = False) -> Path:
    """Write a gptlab checkpoint folder for a local Hugging Face model folder (never downloads)."""

    hf_dir = Path(hf_dir)
    arch = (_read_hf_config(hf_dir).get("architectures") or ["?"])[0]
    if arch not in ADAPTERS:
        raise ExportRefused(f"{hf_dir}/config.json: architecture {arch} has no gptlab adapter "
                            f"(supported: {', '.join(ADAPTERS)})")
    if not list(hf_dir.glob("*.safetensors")):
        raise InputError(f"{hf_dir}: no model.safetensors (or sharded *.safetensors) weights; gptlab reads "
                         f"safetensors weights only")
    out, owned = _claim(out, lambda m: m.get("stage") == "checkpoint" and str(m.get("key", "")).startswith("import:"),
                        "the import", force)
    tf = _transformers()
    try:
        with quiet_transformers():
            hf = getattr(tf, arch).from_pretrained(str(hf_dir), dtype=torch.float32, local_files_only=True,
                                                   use_safetensors=True)
    except (OSError, ValueError, SafetensorError) as e:   # SafetensorError: a file that is not safetensors
        raise InputError(f"{hf_dir}: transformers cannot load it ({' '.join(str(e).split())[:300]})") from None
    model = from_hf_model(hf, block_size)
    tmp = _fresh_tmp(out)
    # The checkpoint writer's format: unique tensors, tied names recorded as aliases.
    save_weights(model.state_dict(), tmp / "model.safetensors", tied_aliases(model))
    atomic_write_json(tmp / "config.json", {"model": section_dict(model.config)})
    atomic_write_json(tmp / "state.json", {"step": 0, "imported_from": str(hf_dir), "architecture": arch})
    outputs = ["model.safetensors", "config.json", "state.json"]
    if (hf_dir / "tokenizer.json").exists():
        shutil.copyfile(hf_dir / "tokenizer.json", tmp / "tokenizer.json")
        outputs.append("tokenizer.json")
    write_manifest(tmp, stage="checkpoint", key=f"import:{hf_dir}", outputs=outputs)
    _publish(tmp, out, owned)
    log(f"import: {arch} at {hf_dir} → {out}")
    return out
