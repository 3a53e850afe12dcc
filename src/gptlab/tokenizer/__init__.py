"""Byte-level BPE tokenizer, trained with Hugging Face ``tokenizers`` on the training split only."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from gptlab.console import log, make_progress
from gptlab.data.documents import read_shards, shard_paths
from gptlab.errors import InputError
from gptlab.manifest import Stage, atomic_path, read_manifest, stage_key
from gptlab.schema import section_dict
from gptlab.tokenizer.config import TokenizerConfig

EOS = "<|endoftext|>"
TOKENIZER_FILE = "tokenizer.json"


def train_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    # Byte-level: every string is encodable, and token bytes are exact for bits-per-byte.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=[EOS], show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def load_tokenizer(path: str | Path) -> Tokenizer:
    p = Path(path)
    if p.is_dir():
        p = p / TOKENIZER_FILE
    if not p.exists():
        raise FileNotFoundError(f"{p}: no tokenizer here (run `gptlab tokenizer train`)")
    try:
        return Tokenizer.from_file(str(p))
    except Exception as e:  # noqa: BLE001  (the tokenizers library raises a bare Exception for a bad file)
        raise InputError(f"{p}: not a readable tokenizer file ({' '.join(str(e).split())[:200]})") from None


def eos_id(tok: Tokenizer) -> int:
    i = tok.token_to_id(EOS)
    if i is None:
        raise InputError(f"tokenizer has no {EOS} token")
    return i


def _budgeted(texts: Iterable[str], max_bytes: int, advance=None) -> Iterator[str]:
    used = 0
    for t in texts:
        if used >= max_bytes:
            return
        used += len(t)
        if advance is not None:
            advance(len(t))
        yield t


def _train_chars(curate_dir: Path, budget: int) -> int | None:
    """Characters the tokenizer will read: the curated training split, up to the budget. The
    curate manifest counts its UTF-8 bytes, an upper bound on characters; the bar's end is exact
    once the texts run out."""
    m = read_manifest(curate_dir) or {}
    n = (m.get("summary") or {}).get("train_bytes")
    return min(int(n), budget) if isinstance(n, int) and n > 0 else budget


def run_tokenizer(tcfg: TokenizerConfig, curate_dir: str | Path, out_dir: str | Path, *, force: bool = False) -> dict:
    """`gptlab tokenizer train`: BPE on the curated training split (never the held-out one)."""
    key = stage_key({"tokenizer": section_dict(tcfg)}, upstream=[curate_dir])
    with Stage(out_dir, "tokenizer", key, force=force) as st:
        if st.complete:
            return st.summary
        train_shards = shard_paths(Path(curate_dir) / "train")
        budget = int(tcfg.max_train_mb * 1e6)
        # A bar over the characters read (BPE's merges follow the last text, briefly).
        with make_progress() as prog:
            bar = prog.add_task("tokenizer (chars read)", total=_train_chars(Path(curate_dir), budget), info="")
            texts = (d.text for d in read_shards(train_shards))
            tok = train_tokenizer(_budgeted(texts, budget, lambda n: prog.advance(bar, n)),
                                  tcfg.vocab_size, tcfg.min_frequency)
            done = prog.tasks[0].completed
            prog.update(bar, total=done, info=f"{tok.get_vocab_size():,} tokens")   # the true end
        with atomic_path(st.dir / TOKENIZER_FILE) as tmp:
            tok.save(str(tmp))
        summary = {"vocab_size": tok.get_vocab_size(), "eos_id": eos_id(tok)}
        st.done([TOKENIZER_FILE], summary, config={"tokenizer": section_dict(tcfg)})
    log(f"tokenizer: vocab {summary['vocab_size']} → {st.dir / TOKENIZER_FILE}")
    return summary
