"""LoRA through peft (`--lora-rank R`): low-rank adapters on the attention and MLP matmuls.

Only the adapters train; the base weights stay frozen. At the end the adapters are merged
into the base weights, which are saved as a normal checkpoint (what eval, generate and export
read), and the adapters alone are saved too, as ``adapter/adapter_model.safetensors`` with
peft's ``adapter_config.json`` (a few MB to ship instead of the model).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from gptlab.checkpoint import save_sorted
from gptlab.errors import UserError
from gptlab.manifest import atomic_write_json

# The matmuls of a gptlab block, and of the HF families gptlab imports or trains directly.
GPTLAB_TARGETS = ["qkv_proj", "o_proj", "up_proj", "gate_proj", "down_proj"]
HF_TARGETS = ["c_attn", "c_proj", "c_fc", "q_proj", "k_proj", "v_proj", "o_proj", "out_proj",
              "fc1", "fc2", "up_proj", "gate_proj", "down_proj", "query_key_value", "dense"]


def _peft():
    try:
        import peft  # noqa: PLC0415  (optional extra (peft), seconds to import)
    except ImportError:
        raise UserError("--lora-rank needs peft: pip install 'gptlab[finetune]'") from None
    return peft


def add_lora(model: torch.nn.Module, rank: int, alpha: float, seed: int):
    """``model`` wrapped with LoRA adapters (a peft model), only the adapters trainable."""
    peft = _peft()
    names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    targets = sorted(names & set(GPTLAB_TARGETS + HF_TARGETS))
    if not targets:
        raise UserError(f"--lora-rank: no known matmul to adapt in this model (its linear layers: {sorted(names)})")
    torch.manual_seed(seed)
    cfg = peft.LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=targets, bias="none")
    return peft.get_peft_model(model, cfg)


def save_adapter(wrapped, folder: str | Path) -> list[str]:
    """The adapter weights (safetensors) and peft's config; returns the file names."""
    peft = _peft()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().cpu().contiguous() for k, v in peft.get_peft_model_state_dict(wrapped).items()}
    save_sorted(sd, folder / "adapter_model.safetensors", {"format": "pt"})
    cfg = wrapped.peft_config["default"].to_dict()
    atomic_write_json(folder / "adapter_config.json", json.loads(json.dumps(cfg, default=sorted)))
    return ["adapter_model.safetensors", "adapter_config.json"]


def merged(wrapped) -> torch.nn.Module:
    """The base model with the adapters folded into its weights (no peft layers left)."""
    return wrapped.merge_and_unload()
