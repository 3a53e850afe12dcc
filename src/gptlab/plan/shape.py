"""The model as the planner sees it: every weight tensor's shape, from ModelConfig alone.

A 175B model cannot be built on a laptop, so the planner never instantiates ``GPT``: it lists
the tensors ``gptlab.model.gpt`` would create (tests check the two agree, tensor for tensor in
count). Each tensor also says how Megatron-style tensor parallelism splits it, which the
memory model needs: q/k/v and the MLP's first matrices by columns, the two output
projections by rows, the embedding by vocabulary; norms and output biases are replicated.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from gptlab.model.config import ModelConfig

# How tensor parallelism splits a tensor: col/row/vocab = 1/t of it on each rank; kv = split
# when there are at least t key/value heads, else every rank keeps them all (multi-query);
# none = replicated.
SPLITS = ("col", "row", "vocab", "kv", "none")


@dataclass(frozen=True)
class Weight:
    name: str
    shape: tuple[int, ...]
    split: str = "none"
    per_layer: bool = True

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def local_shape(self, tp: int, n_kv_head: int) -> tuple[int, ...]:
        """This tensor's shape on one tensor-parallel rank (a split dimension rounded up)."""
        if tp == 1 or self.split == "none" or (self.split == "kv" and n_kv_head < tp):
            return self.shape
        if len(self.shape) == 1:
            # A row-parallel layer's bias is added after the all-reduce, so every rank holds it.
            return self.shape if self.split == "row" else (math.ceil(self.shape[0] / tp),)
        # Weights are listed [in, out]: a column split cuts the outputs, a row split the inputs,
        # a vocabulary split the rows of the table.
        dim = 1 if self.split in ("col", "kv") else 0
        out = list(self.shape)
        out[dim] = math.ceil(out[dim] / tp)
        return tuple(out)


@dataclass(frozen=True)
class Shape:
    """The fields of a decoder that size its memory and FLOPs."""
    n_layer: int
    d_model: int
    n_head: int
    n_kv_head: int
    head_dim: int
    ffn: int
    gated: bool
    vocab: int
    seq: int
    tied: bool
    bias: bool
    norm_bias: bool              # LayerNorm with a bias (RMSNorm never has one)
    norms_per_layer: int         # 1 for PaLM's parallel block, else 2
    learned_positions: bool
    embed_norm: bool
    final_norm: bool
    dropout: float

    # ----------------------------------------------------------------- tensors

    def _norm(self, name: str, per_layer: bool) -> list[Weight]:
        out = [Weight(f"{name}.weight", (self.d_model,), per_layer=per_layer)]
        if self.norm_bias:
            out.append(Weight(f"{name}.bias", (self.d_model,), per_layer=per_layer))
        return out

    def _linear(self, name: str, n_in: int, n_out: int, split: str) -> list[Weight]:
        w = [Weight(f"{name}.weight", (n_in, n_out), split)]   # listed [in, out]; only counts matter
        if self.bias:
            w.append(Weight(f"{name}.bias", (n_out,), split))
        return w

    def layer_weights(self) -> list[Weight]:
        d, q, kv = self.d_model, self.n_head * self.head_dim, self.n_kv_head * self.head_dim
        w: list[Weight] = []
        w += self._norm("input_layernorm", True)
        if self.norms_per_layer == 2:
            w += self._norm("post_attention_layernorm", True)
        w += self._linear("q_proj", d, q, "col")
        w += self._linear("k_proj", d, kv, "kv")
        w += self._linear("v_proj", d, kv, "kv")
        w += self._linear("o_proj", q, d, "row")
        w += self._linear("up_proj", d, self.ffn, "col")
        if self.gated:
            w += self._linear("gate_proj", d, self.ffn, "col")
        w += self._linear("down_proj", self.ffn, d, "row")
        return w

    def first_stage_weights(self) -> list[Weight]:
        """What sits before the first layer: the token table, learned positions, embedding norm."""
        w = [Weight("embed_tokens.weight", (self.vocab, self.d_model), "vocab", per_layer=False)]
        if self.learned_positions:
            w.append(Weight("embed_positions.weight", (self.seq, self.d_model), per_layer=False))
        if self.embed_norm:
            w += self._norm("embed_layernorm", False)
        return w

    def last_stage_weights(self) -> list[Weight]:
        """What sits after the last layer: the final norm and an untied head."""
        w = self._norm("norm", False) if self.final_norm else []
        if not self.tied:
            w.append(Weight("lm_head.weight", (self.vocab, self.d_model), "vocab", per_layer=False))
        return w

    # ----------------------------------------------------------------- counts

    @property
    def params_per_layer(self) -> int:
        return sum(w.numel for w in self.layer_weights())

    @property
    def n_params(self) -> int:
        """Every parameter, the tied table counted once (what ``GPT.num_params(False)`` counts)."""
        outside = sum(w.numel for w in self.first_stage_weights() + self.last_stage_weights())
        return self.n_layer * self.params_per_layer + outside

    @property
    def n_matmul_params(self) -> int:
        """Parameters that take part in a matmul per token: all but the lookup tables, except that a
        tied token table *is* the output head (the N of 6N, as ``GPT.flops_per_token`` counts it)."""
        n = self.n_params
        if self.learned_positions:
            n -= self.seq * self.d_model
        if not self.tied:
            n -= self.vocab * self.d_model
        return n


DEFAULT_VOCAB = 50257  # GPT-2's BPE, which GPT-3 and OPT (padded to 50272) used


def shape_from_config(m: ModelConfig, *, seq: int | None = None, head_dim: int | None = None) -> Shape:
    """The Shape of ``m``. ``seq`` fills an unset block_size; ``head_dim`` overrides n_embd/n_head
    for models whose heads are narrower than that (PaLM 540B: 48 heads of 256 at d_model 18432),
    which gptlab's ModelConfig cannot express yet."""
    m.check()
    return Shape(
        n_layer=m.n_layer, d_model=m.n_embd, n_head=m.n_head, n_kv_head=m.n_kv_head or m.n_head,
        head_dim=head_dim or m.head_dim, ffn=m.ffn_hidden, gated=m.gated,
        vocab=m.vocab_size or DEFAULT_VOCAB, seq=m.block_size or seq or 2048,
        tied=m.tie_embeddings, bias=m.bias, norm_bias=m.norm == "layernorm" and m.norm_bias,
        norms_per_layer=1 if m.block == "parallel" else 2, learned_positions=m.position == "learned",
        embed_norm=m.embed_norm, final_norm=m.placement == "pre", dropout=m.dropout,
    )
