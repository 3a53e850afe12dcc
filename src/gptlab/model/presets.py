"""Named recipe presets: plain functions returning RunConfig fragments ({"model": ..., "train": ...})."""
from __future__ import annotations

from typing import Any, Callable


def nanogpt() -> dict[str, Any]:
    # The GPT-2 block as nanoGPT writes it: learned positions, GeLU, pre-LN, tied embeddings.
    return {"model": {"position": "learned", "norm": "layernorm", "mlp": "gelu", "bias": False,
                      "tie_embeddings": True}}


def llama() -> dict[str, Any]:
    # Llama: RoPE, RMSNorm, SwiGLU, no biases.
    return {"model": {"position": "rope", "norm": "rmsnorm", "mlp": "swiglu", "bias": False,
                      "tie_embeddings": False}}


PRESETS: dict[str, Callable[[], dict[str, Any]]] = {"nanogpt": nanogpt, "llama": llama}


def preset_fragment(name: str) -> dict[str, Any]:
    try:
        return PRESETS[name]()
    except KeyError:
        from gptlab.config import ConfigError
        raise ConfigError(f"model.preset: unknown preset {name!r} (known: {', '.join(sorted(PRESETS))})") from None
