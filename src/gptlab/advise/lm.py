"""Load a causal LM for the bake-off: a gptlab checkpoint, or a local Hugging Face model folder.

Both come back as an :class:`LM` with a model that maps ids to logits (directly or via
``.logits``) and a tokenizer with ``encode``. Nothing is downloaded: Hugging Face folders
load with ``local_files_only=True`` and safetensors weights only.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gptlab.api import load_model
from gptlab.checkpoint import find_checkpoint
from gptlab.console import track
from gptlab.device import resolve_device
from gptlab.eval.scoring import context_length, encode, model_device
from gptlab.tokenizer import load_tokenizer


@dataclass
class LM:
    model: Any
    tokenizer: Any
    kind: str            # "gptlab" or "hf"
    path: str
    n_params: int

    @property
    def max_length(self) -> int:
        return context_length(self.model)


def _is_hf_folder(p: Path) -> bool:
    cfg = p / "config.json"
    if not cfg.is_file():
        return False
    try:
        return "model_type" in json.loads(cfg.read_text())
    except json.JSONDecodeError:
        return False


def weights_folder(path: str | Path) -> Path:
    """The folder whose weights ``load_lm(path)`` would read, found without loading them."""
    p = Path(path)
    if _is_hf_folder(p):
        return p
    return find_checkpoint(p)


def weight_files(path: str | Path) -> list[Path]:
    """The weight files ``load_lm(path)`` would read: what a bake-off's result depends on."""
    return sorted(weights_folder(path).glob("model*.safetensors"))


def load_lm(path: str | Path, device: str = "cpu") -> LM:
    """``device``: cpu, cuda or auto (cuda when there is one); the model stays in fp32."""

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no model here (give a gptlab checkpoint/run folder or a local HF model folder)")
    if _is_hf_folder(p):
        from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: PLC0415  (optional extra (transformers), seconds to import)
        model = AutoModelForCausalLM.from_pretrained(p, local_files_only=True, use_safetensors=True)
        tok = AutoTokenizer.from_pretrained(p, local_files_only=True)
        kind = "hf"
    else:
        model, ckpt = load_model(p, return_path=True)
        tok = load_tokenizer(ckpt)
        kind = "gptlab"
    model.to(resolve_device(device)).eval()
    return LM(model, tok, kind, str(p), sum(t.numel() for t in model.parameters()))


@torch.no_grad()
def mean_hidden(lm: LM, texts: list[str], batch_size: int = 16) -> np.ndarray:
    """One vector per text: the final hidden states (after the last norm), averaged over tokens.

    Texts keep their first ``max_length`` tokens. These are the features of the hidden-state probe."""
    model, device = lm.model, model_device(lm.model)
    captured: dict[str, torch.Tensor] = {}
    hook = None
    if lm.kind == "gptlab":
        # The gptlab forward returns logits only; the final norm's output is the last hidden state.
        hook = model.norm.register_forward_hook(lambda _m, _i, out: captured.__setitem__("h", out))
    rows = []
    try:
        for start in track(range(0, len(texts), batch_size), "bake-off: hidden states"):
            ids = [encode(lm.tokenizer, t)[:lm.max_length] or [0] for t in texts[start:start + batch_size]]
            width = max(len(i) for i in ids)
            x = torch.zeros(len(ids), width, dtype=torch.long)
            mask = torch.zeros(len(ids), width, 1)
            for r, i in enumerate(ids):
                x[r, :len(i)] = torch.tensor(i)
                mask[r, :len(i)] = 1.0
            x = x.to(device)
            if lm.kind == "gptlab":
                model(x)
                h = captured["h"]
            else:
                h = model(x, output_hidden_states=True).hidden_states[-1]
            h = h.float().cpu()
            rows.append(((h * mask).sum(1) / mask.sum(1)).numpy())
    finally:
        if hook is not None:
            hook.remove()
    return np.concatenate(rows, axis=0) if rows else np.zeros((0, 0), dtype=np.float32)
