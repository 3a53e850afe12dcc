"""Tokenize and pack the training split into one pre-shuffled global order.

The mixture (per-source epochs or weights, as in GPT-3's table) is sampled here, at
construction time. The output is a folder of token shards (raw little-endian
``uint16``/``uint32`` arrays of whole sequences of ``seq_len + 1`` tokens, read with
``numpy.memmap``), an ``index.json`` mapping sequence *i* to (shard, offset) with each
shard's checksum, and a manifest. The order is fixed here, once;
the trainer's position is a sequence index, so a batch is a pure function of the step.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gptlab.console import log, progress_task
from gptlab.data.documents import read_shards, shard_paths
from gptlab.errors import InputError
from gptlab.manifest import Stage, atomic_path, atomic_write_json, file_checksum, stage_key
from gptlab.pack.config import PackConfig
from gptlab.pack.packed import INDEX, PackedData  # noqa: F401  (re-exported)
from gptlab.schema import ConfigError, section_dict
from gptlab.tokenizer import eos_id, load_tokenizer


def _encode_docs(tok, texts: list[str], eos: int, batch: int = 512, advance=None) -> list[np.ndarray]:
    """Token ids of each document followed by EOS (documents end with EOS)."""
    out = []
    for i in range(0, len(texts), batch):
        for enc in tok.encode_batch(texts[i:i + batch]):
            ids = np.empty(len(enc.ids) + 1, dtype=np.uint32)
            ids[:-1] = enc.ids
            ids[-1] = eos
            out.append(ids)
        if advance:
            advance(min(batch, len(texts) - i))
    return out


def _parse_mixture(items: list[str]) -> dict[str, float]:
    return {name.strip(): float(value) for name, _, value in (i.partition("=") for i in items)}


def mixture_epochs(pcfg, groups: dict[str, int]) -> dict[str, float]:
    """Epochs per source from ``pack.epochs`` or ``pack.weights``; ``groups`` maps each source
    to its token count. Weights are shares of the packed stream, as in GPT-3's mixture table."""
    if pcfg.weights:
        w = _parse_mixture(pcfg.weights)
        missing = sorted(set(groups) - set(w))
        if missing:
            raise ConfigError(f"pack.weights: no weight for source {missing[0]!r} (sources: {', '.join(sorted(groups))})")
        total_w = sum(w[s] for s in groups) or 1.0
        total = pcfg.total_tokens or sum(groups.values())
        return {s: (w[s] / total_w) * total / max(1, n) for s, n in groups.items()}
    e = _parse_mixture(pcfg.epochs)
    return {s: e.get(s, 1.0) for s in groups}


def _sample(rng: np.random.Generator, members: list[int], epochs: float) -> list[int]:
    """Whole passes over a source, then a seeded sample without replacement for the fraction."""
    full = int(epochs)
    extra = round((epochs - full) * len(members))
    chosen = [members[i] for i in sorted(rng.permutation(len(members))[:extra])]
    return members * full + chosen


def run_pack(pcfg: PackConfig, curate_dir: str | Path, tokenizer_dir: str | Path, out_dir: str | Path, *,
             force: bool = False) -> dict:
    """`gptlab data pack`: mixture → token shards + index + unigram counts, byte-identical per input."""
    key = stage_key({"pack": section_dict(pcfg)}, upstream=[curate_dir, tokenizer_dir])
    with Stage(out_dir, "pack", key, force=force) as st:
        if st.complete:
            return st.summary
        summary = _pack(pcfg, curate_dir, tokenizer_dir, st)
    log(f"pack: {summary['n_sequences']} sequences × {pcfg.seq_len + 1} tokens "
        f"({summary['bytes_per_token']} bytes/token) → {st.dir}")
    return summary


def _pack(pcfg: PackConfig, curate_dir: str | Path, tokenizer_dir: str | Path, st: Stage) -> dict:
    """The pack itself, into ``st.dir``: tokenize, sample the mixture, write shards, index, manifest."""
    out = st.dir
    tok = load_tokenizer(tokenizer_dir)
    eos = eos_id(tok)
    vocab = tok.get_vocab_size()
    docs = list(read_shards(shard_paths(Path(curate_dir) / "train")))
    with progress_task("pack: tokenize", len(docs)) as advance:
        ids = _encode_docs(tok, [d.text for d in docs], eos, advance=advance)

    # The mixture is sampled here, at construction time: a source named in pack.epochs /
    # pack.weights by its source or its domain gets that many passes (fractions sampled).
    named = set(_parse_mixture(pcfg.epochs or pcfg.weights))
    group_of = [d.source if d.source in named or d.domain not in named else d.domain for d in docs]
    members: dict[str, list[int]] = {}
    for i, g in enumerate(group_of):
        members.setdefault(g, []).append(i)
    tokens_in = {g: int(sum(len(ids[i]) for i in m)) for g, m in members.items()}
    epochs = mixture_epochs(pcfg, tokens_in)
    rng = np.random.default_rng(pcfg.seed)
    entries: list[int] = []
    for g in sorted(members):
        entries += _sample(rng, members[g], epochs[g])
    # Shuffle documents first (so one long document does not dominate a stretch of the
    # stream), then shuffle the fixed-length sequences cut from the stream.
    order = [entries[i] for i in rng.permutation(len(entries))]
    stream = np.concatenate([ids[i] for i in order]) if order else np.zeros(0, dtype=np.uint32)
    T1 = pcfg.seq_len + 1
    n_seq = len(stream) // T1
    if n_seq == 0:
        raise InputError(f"pack: only {len(stream)} tokens, fewer than one sequence of {T1}")
    dtype = np.uint16 if vocab <= 65536 else np.uint32
    seqs = stream[: n_seq * T1].reshape(n_seq, T1)[rng.permutation(n_seq)].astype(dtype)
    per_shard = max(1, pcfg.tokens_per_shard // T1)
    shards, outputs = [], []
    for k, start in enumerate(range(0, n_seq, per_shard)):
        rel = f"tokens-{k:05d}.bin"
        block = np.ascontiguousarray(seqs[start:start + per_shard])
        with atomic_path(out / rel) as tmp:
            block.tofile(tmp)
        shards.append({"file": rel, "first_sequence": start, "n_sequences": int(block.shape[0]),
                       "offset_tokens": int(start * T1), "bytes": int(block.nbytes),
                       "checksum": file_checksum(out / rel)})
        outputs.append(rel)
    counts = np.bincount(stream.astype(np.int64), minlength=vocab).astype(np.int64)
    with atomic_path(out / "unigram.npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, counts)
    outputs.append("unigram.npy")
    mixture = {g: {"docs": len(members[g]), "tokens": tokens_in[g], "epochs": round(epochs[g], 4),
                   "packed_docs": sum(1 for i in entries if group_of[i] == g)} for g in sorted(members)}
    index = {"seq_len": pcfg.seq_len, "dtype": np.dtype(dtype).name, "n_sequences": n_seq,
             "n_tokens": int(n_seq * T1), "vocab_size": vocab, "eos_id": eos, "shards": shards,
             "docs": len(docs), "packed_docs": len(entries), "mixture": mixture,
             "dropped_tail_tokens": int(len(stream) - n_seq * T1)}
    atomic_write_json(out / INDEX, index)
    outputs.append(INDEX)
    summary = {k: index[k] for k in ("seq_len", "n_sequences", "n_tokens", "vocab_size", "docs", "packed_docs", "mixture")}
    summary["bytes_per_token"] = round(sum(d.nbytes for d in docs) / max(1, sum(map(len, ids))), 3)
    return st.done(outputs, summary, config={"pack": section_dict(pcfg)})
