"""Cloze tasks cut from held-out documents: a ready-made local task for any run.

Each row takes a held-out passage as the query; the gold answer is the words that follow
it, and the distractors are the words that follow a passage of other documents. Because
the text is held out, it never reached the tokenizer or the model in training, which is
the rule for every task (see tasks.py).
"""
from __future__ import annotations

import json
import random
from pathlib import Path

from gptlab.data.documents import read_shards, shard_paths
from gptlab.errors import InputError
from gptlab.manifest import atomic_write


def cloze_rows(texts: list[str], n_rows: int, query_words: int = 12, answer_words: int = 3,
               n_choices: int = 4, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(multiple-choice rows, generation rows) from ``texts``; one passage per text at most."""
    rng = random.Random(seed)
    spans = []
    for text in texts:
        words = text.split()
        if len(words) < query_words + answer_words:
            continue
        start = rng.randrange(0, len(words) - query_words - answer_words + 1)
        spans.append((" ".join(words[start:start + query_words]),
                      " ".join(words[start + query_words:start + query_words + answer_words])))
    rng.shuffle(spans)
    spans = spans[:n_rows]
    if len(spans) < n_choices:
        raise InputError(f"{len(spans)} usable passages; a {n_choices}-way cloze task needs at least {n_choices}")
    mc, gen = [], []
    for i, (query, answer) in enumerate(spans):
        others = [a for j, (_, a) in enumerate(spans) if j != i and a != answer]
        choices = rng.sample(others, n_choices - 1) + [answer]
        rng.shuffle(choices)
        mc.append({"query": query, "choices": choices, "gold": choices.index(answer)})
        gen.append({"query": query, "answer": answer.split()[0]})
    return mc, gen


def write_cloze_tasks(heldout: str | Path, out_dir: str | Path, n_rows: int = 40, seed: int = 0) -> list[Path]:
    """``heldout_cloze_mc.jsonl`` and ``heldout_cloze_gen.jsonl`` from a held-out shard folder."""
    heldout = Path(heldout)
    files = [heldout] if heldout.is_file() else shard_paths(heldout)
    mc, gen = cloze_rows([d.text for d in read_shards(files)], n_rows, seed=seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, rows in (("heldout_cloze_mc", mc), ("heldout_cloze_gen", gen)):
        p = out / f"{name}.jsonl"
        atomic_write(p, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        paths.append(p)
    return paths
