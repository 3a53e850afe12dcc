"""ModelConfig: every architectural choice of the decoder, as one typed dataclass."""
from __future__ import annotations

from dataclasses import dataclass

from gptlab.fields import rng as _rng


@dataclass
class ModelConfig:
    n_layer: int = _rng(1, 1024, default=4)
    n_head: int = _rng(1, 1024, default=4)
    # Key/value heads: None = n_head (multi-head), 1 = multi-query (PaLM), else grouped-query.
    n_kv_head: int | None = _rng(1, 1024, default=None)
    n_embd: int = _rng(8, 1_000_000, default=128)
    # Filled in from the data when left unset: block_size from pack.seq_len, vocab from the tokenizer.
    block_size: int | None = _rng(1, 10_000_000, default=None)
    vocab_size: int | None = _rng(2, 10_000_000, default=None)
    position: str = _rng(choices=("learned", "rope"), default="learned")
    rope_theta: float = _rng(1.0, 1e9, default=10_000.0)
    norm: str = _rng(choices=("layernorm", "rmsnorm"), default="layernorm")
    norm_eps: float = _rng(0.0, 1.0, default=1e-5)
    mlp: str = _rng(choices=("gelu", "gelu_tanh", "relu", "swiglu"), default="gelu")
    mlp_ratio: float = _rng(0.25, 64.0, default=4.0)
    bias: bool = False
    tie_embeddings: bool = True
    dropout: float = _rng(0.0, 1.0, default=0.0)
    init_std: float = _rng(0.0, 10.0, default=0.02)

    def check(self) -> None:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd: {self.n_embd} is not divisible by n_head={self.n_head}")
        kv = self.n_kv_head or self.n_head
        if self.n_head % kv:
            raise ValueError(f"n_kv_head: n_head={self.n_head} is not a multiple of {kv}")
        if self.position == "rope" and (self.n_embd // self.n_head) % 2:
            raise ValueError("position: rope needs an even head dimension")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def ffn_hidden(self) -> int:
        hidden = int(self.mlp_ratio * self.n_embd)
        if self.mlp == "swiglu":
            # Keep the parameter count of a 2-matrix MLP: 3 matrices of 2/3 the width.
            hidden = int(2 * hidden / 3)
            hidden = 8 * ((hidden + 7) // 8)
        return hidden
