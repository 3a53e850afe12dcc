"""nanoGPT's GPT-2 block and the Llama block: the two modern baselines."""
from __future__ import annotations

from typing import Any


def nanogpt() -> dict[str, Any]:
    # The GPT-2 block as nanoGPT writes it: learned positions, GeLU, pre-LN, tied embeddings.
    return {"model": {"position": "learned", "norm": "layernorm", "mlp": "gelu", "bias": False,
                      "tie_embeddings": True}}


def llama() -> dict[str, Any]:
    # Llama: RoPE, RMSNorm, SwiGLU, no biases.
    return {"model": {"position": "rope", "norm": "rmsnorm", "mlp": "swiglu", "bias": False,
                      "tie_embeddings": False}}
