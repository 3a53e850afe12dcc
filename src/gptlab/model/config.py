"""ModelConfig: every architectural choice of the decoder, as one typed dataclass.

The defaults are the nanoGPT/GPT-2 block (learned positions, pre-LN, GeLU, tied
embeddings, no biases). The recipes in ``presets.py`` are settings of these fields.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from gptlab.schema import bounded


@dataclass
class ModelConfig:
    n_layer: int = bounded(1, 1024, default=4)
    n_head: int = bounded(1, 1024, default=4)
    # Key/value heads: None = n_head (multi-head), 1 = multi-query (PaLM), else grouped-query.
    n_kv_head: int | None = bounded(1, 1024, default=None)
    n_embd: int = bounded(8, 1_000_000, default=128)
    # Width of one attention head: None = n_embd / n_head. PaLM set it apart (256 at every size,
    # Chowdhery 2022 Table 1); q/k/v then project to n_head*head_dim and back to n_embd.
    # Reading cfg.head_dim always gives the resolved width (see the property below the class).
    head_dim: int | None = bounded(1, 65_536, default=None)
    # Filled in from the data when left unset: block_size from pack.seq_len, vocab from the tokenizer.
    block_size: int | None = bounded(1, 10_000_000, default=None)
    vocab_size: int | None = bounded(2, 10_000_000, default=None)

    # --- positions: a learned table, ALiBi biases on the scores, or rotary q/k.
    position: Literal["learned", "alibi", "rope"] = "learned"
    # half = rotate the two halves of a head (NeoX/Llama); interleaved = rotate pairs (2i, 2i+1) (GPT-J/PaLM).
    rope_style: Literal["half", "interleaved"] = "half"
    rope_theta: float = bounded(1.0, 1e9, default=10_000.0)
    # Fraction of each head's dimensions that rotate (GPT-NeoX rotates 25 %); the rest pass through.
    rope_fraction: float = bounded(0.0, 1.0, default=1.0)

    # --- normalisation
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    norm_eps: float = bounded(0.0, 1.0, default=1e-5)
    norm_bias: bool = False  # LayerNorm bias (RMSNorm never has one)
    # pre: x + f(norm(x)); post: norm(x + f(x)); deepnorm: norm(alpha*x + f(x)) with a beta-scaled init.
    placement: Literal["pre", "post", "deepnorm"] = "pre"
    # Named DeepNorm constants: glm = GLM-130B (alpha=(2N)^1/2, beta=(2N)^-1/2);
    # deepnet = DeepNet decoder-only (alpha=(2N)^1/4, beta=(8N)^-1/4). N = n_layer.
    deepnorm: Literal["glm", "deepnet"] = "glm"
    # An extra LayerNorm right after the input embedding (BLOOM's "embed-layernorm").
    embed_norm: bool = False

    # --- block and MLP
    # sequential: attention then MLP; parallel: x + attn(ln(x)) + mlp(ln(x)) with one shared LN (PaLM);
    # parallel2: the same with a separate LN for each branch (GPT-NeoX).
    block: Literal["sequential", "parallel", "parallel2"] = "sequential"
    mlp: Literal["gelu", "gelu_tanh", "relu", "swiglu", "geglu"] = "gelu"
    mlp_ratio: float = bounded(0.25, 64.0, default=4.0)
    # Hidden width of the MLP: auto = mlp_ratio*d, times 2/3 for gated MLPs (Llama's rule, keeps the
    # parameter count of a 2-matrix MLP); ratio = mlp_ratio*d even when gated (PaLM: d_ff = 4d);
    # explicit = ffn_size. The width is rounded up to a multiple of ffn_multiple_of.
    ffn_rule: Literal["auto", "ratio", "explicit"] = "auto"
    ffn_size: int | None = bounded(1, 10_000_000, default=None)
    ffn_multiple_of: int = bounded(1, 65_536, default=8)

    # --- switches
    bias: bool = False  # bias on every dense layer (attention and MLP)
    tie_embeddings: bool = True
    # none, or rsqrt_d: multiply the output logits by 1/sqrt(n_embd) (PaLM, with shared embeddings).
    logit_scale: Literal["none", "rsqrt_d"] = "none"
    # Gradient reaching the token embedding is multiplied by this (GLM-130B: 0.1); the forward is unchanged.
    embed_grad_scale: float = bounded(0.0, 1.0, default=1.0)
    dropout: float = bounded(0.0, 1.0, default=0.0)

    # --- initialisation: gpt2 = N(0, std), residual projections std/sqrt(2L); opt/bloom = the same
    # shape with their own std; palm = fan-in N(0, 1/n_in), embeddings N(0, 1); deepnorm = Xavier
    # normal with beta on v/o/MLP. init_std overrides the scheme's std (None = the scheme's own).
    init: Literal["gpt2", "opt", "bloom", "palm", "deepnorm"] = "gpt2"
    init_std: float | None = bounded(0.0, 10.0, default=None)

    def check(self) -> None:
        if self.__dict__.get("head_dim") is None and self.n_embd % self.n_head:
            raise ValueError(f"n_embd: {self.n_embd} is not divisible by n_head={self.n_head} "
                             f"(or set model.head_dim)")
        kv = self.n_kv_head or self.n_head
        if self.n_head % kv:
            raise ValueError(f"n_kv_head: n_head={self.n_head} is not a multiple of {kv}")
        if self.position == "rope" and self.rotary_dim < 2:
            raise ValueError(f"rope_fraction: {self.rope_fraction} of head_dim={self.head_dim} leaves "
                             f"no dimension pair to rotate")
        if self.block != "sequential" and self.placement != "pre":
            raise ValueError(f"block: a {self.block} block needs placement='pre' (got {self.placement!r})")
        if self.ffn_rule == "explicit" and self.ffn_size is None:
            raise ValueError("ffn_size: ffn_rule='explicit' needs ffn_size set")

    @property
    def head_dim_is_default(self) -> bool:
        """True when head_dim is n_embd / n_head (unset, or set to that same width)."""
        return self.n_embd % self.n_head == 0 and self.head_dim == self.n_embd // self.n_head

    @property
    def rotary_dim(self) -> int:
        """How many dimensions of each head rotate: an even number, at most head_dim."""
        return 2 * int(self.head_dim * self.rope_fraction / 2)

    @property
    def gated(self) -> bool:
        return self.mlp in ("swiglu", "geglu")

    @property
    def ffn_hidden(self) -> int:
        if self.ffn_rule == "explicit":
            return int(self.ffn_size)
        hidden = self.mlp_ratio * self.n_embd
        if self.ffn_rule == "auto" and self.gated:
            hidden = 2 * hidden / 3
        m = self.ffn_multiple_of
        return m * math.ceil(int(hidden) / m)

    @property
    def logit_multiplier(self) -> float:
        return 1.0 / math.sqrt(self.n_embd) if self.logit_scale == "rsqrt_d" else 1.0

    @property
    def deepnorm_alpha_beta(self) -> tuple[float, float]:
        """(alpha, beta) of DeepNorm; (1, 1) for the other placements."""
        if self.placement != "deepnorm":
            return 1.0, 1.0
        n = self.n_layer
        if self.deepnorm == "glm":
            return (2 * n) ** 0.5, (2 * n) ** -0.5   # GLM-130B paper, §2.3
        return (2 * n) ** 0.25, (8 * n) ** -0.25      # DeepNet (Wang et al. 2022), decoder-only


# ``head_dim`` is a config key (None = derived) that every reader sees resolved to an int, so
# attention, FLOP counts and exporters need no None check. The dataclass __init__ and
# ``schema.apply`` set it through this property; the raw setting lives in the instance dict.
def _get_head_dim(self: ModelConfig) -> int:
    explicit = self.__dict__.get("head_dim")
    return int(explicit) if explicit is not None else self.n_embd // self.n_head


def _set_head_dim(self: ModelConfig, value: int | None) -> None:
    self.__dict__["head_dim"] = value


ModelConfig.head_dim = property(_get_head_dim, _set_head_dim)  # type: ignore[assignment]
