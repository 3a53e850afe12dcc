"""Instruction tasks made from the embedded corpus, for the instruction-tuning tests.

Each row is a run of words from a curated document (Bible, Python docstrings, Python code)
and a question about it, with its options. Three tasks form the training mixture; the fourth,
"mentions-god", is held out: its question and its inputs are never trained on, only its
answer words (yes, no) are shared with two training tasks, as FLAN's held-out clusters share
answer formats with the tasks it tunes on.
"""
from __future__ import annotations

import random
import re
from pathlib import Path

from gptlab.data.documents import read_shard, shard_paths

WORD = re.compile(r"[A-Za-z]{2,12}")
TASKS = {
    "is-bible": "Is this text from the Bible?",
    "is-code": "Is this text Python source code?",
    "domain": "Is this text from the Bible or from the Python documentation?",
    "mentions-god": "Does the text mention God or the Lord?",
}
HELD_OUT = "mentions-god"


def snippets(curated: Path, split: str, n_words: int = 10, stride: int = 30) -> list[tuple[list[str], str]]:
    """Runs of ``n_words`` words from the curated documents, with the document's domain."""
    out = []
    for f in shard_paths(curated / split):
        for d in read_shard(f):
            words = WORD.findall(d.text)
            for start in range(0, max(0, len(words) - n_words), stride):
                out.append((words[start:start + n_words], d.domain))
    return out


def _gold(task: str, words: list[str], domain: str) -> str:
    if task == "is-bible":
        return "yes" if domain == "bible" else "no"
    if task == "is-code":
        return "yes" if domain == "code" else "no"
    if task == "domain":
        return "bible" if domain == "bible" else "python"
    return "yes" if {"God", "LORD", "Lord"} & set(words) else "no"


def instruction_rows(snips: list[tuple[list[str], str]], task: str, rng: random.Random,
                     limit: int | None = None) -> list[dict]:
    """Rows of ``task``; the held-out task is balanced between its two answers."""
    rows = [{"task": task, "instruction": TASKS[task], "input": " ".join(w), "target": _gold(task, w, dom),
             "options": ["bible", "python"] if task == "domain" else ["yes", "no"]} for w, dom in snips]
    if task == HELD_OUT:
        yes = [r for r in rows if r["target"] == "yes"]
        no = [r for r in rows if r["target"] == "no"]
        n = min(len(yes), len(no))
        rows = rng.sample(yes, n) + rng.sample(no, n)
        rng.shuffle(rows)
    return rows[:limit] if limit else rows
