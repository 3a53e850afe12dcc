"""Byte-level BPE tokenizer, trained with Hugging Face ``tokenizers`` on the training split only."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from gptlab.console import log, progress_task
from gptlab.data.documents import read_shards, shard_paths
from gptlab.errors import InputError
from gptlab.manifest import Stage, atomic_path, stage_key
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


def _budgeted(texts: Iterable[str], max_bytes: int) -> Iterator[str]:
    used = 0
    for t in texts:
        if used >= max_bytes:
            return
        used += len(t)
        yield t


def run_tokenizer(tcfg: TokenizerConfig, curate_dir: str | Path, out_dir: str | Path, *, force: bool = False) -> dict:
    """`gptlab tokenizer train`: BPE on the curated training split (never the held-out one)."""
    key = stage_key({"tokenizer": section_dict(tcfg)}, upstream=[curate_dir])
    with Stage(out_dir, "tokenizer", key, force=force) as st:
        if st.complete:
            return st.summary
        train_shards = shard_paths(Path(curate_dir) / "train")
        with progress_task("tokenizer", None) as advance:
            texts = (d.text for d in read_shards(train_shards))
            tok = train_tokenizer(_budgeted(texts, int(tcfg.max_train_mb * 1e6)),
                                  tcfg.vocab_size, tcfg.min_frequency)
            advance(1)
        with atomic_path(st.dir / TOKENIZER_FILE) as tmp:
            tok.save(str(tmp))
        summary = {"vocab_size": tok.get_vocab_size(), "eos_id": eos_id(tok)}
        st.done([TOKENIZER_FILE], summary, config={"tokenizer": section_dict(tcfg)})
    log(f"tokenizer: vocab {summary['vocab_size']} → {st.dir / TOKENIZER_FILE}")
    return summary
