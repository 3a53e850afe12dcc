"""The user's labelled examples: JSON lines, one example per line.

* classification: ``{"text": "...", "label": "..."}``
* generation: ``{"input": "...", "target": "..."}``, optionally ``"rationale": "..."`` (the
  reasoning before the answer, one line: the fine-tuned arms learn to produce it, then the answer)

Blank lines are skipped; anything else that is not such an object stops the run with an
error naming the file, the line and the key, because a silently dropped test example
would change the measured accuracy.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from gptlab.data.documents import read_shard, shard_paths
from gptlab.jsonl import jsonl_objects
from gptlab.manifest import atomic_write
from gptlab.schema import ConfigError

FIELDS = {"classification": ("text", "label"), "generation": ("input", "target")}


class LabelledDataError(ConfigError):
    """A labelled-data line that cannot be used; the message names file, line and key.

    A ConfigError, because like a bad config value it is the user's input to fix, and the
    CLI prints it as one line."""


@dataclass
class Example:
    x: str
    y: str
    r: str = ""          # generation: a rationale (chain of thought) for y, when there is one


def read_examples(path: str | Path, task: str) -> list[Example]:
    p = Path(path)
    if task not in FIELDS:
        raise LabelledDataError(f"--task: {task!r} is not one of {', '.join(FIELDS)}")
    xkey, ykey = FIELDS[task]
    out = []
    for where, row in jsonl_objects(p, LabelledDataError, "labelled file"):
        for key in (xkey, ykey):
            v = row.get(key)
            if not isinstance(v, str) or not v.strip():
                raise LabelledDataError(f"{where}: key {key!r} must be a non-empty string")
        rationale = row.get("rationale", "") if task == "generation" else ""
        if not isinstance(rationale, str):
            raise LabelledDataError(f"{where}: key 'rationale' must be a string")
        out.append(Example(row[xkey], row[ykey].strip(), " ".join(rationale.split())))
    if not out:
        raise LabelledDataError(f"{p}: no examples")
    return out


def write_examples(path: str | Path, examples: list[Example], task: str) -> None:
    xkey, ykey = FIELDS[task]
    atomic_write(path, "".join(json.dumps({xkey: e.x, ykey: e.y, **({"rationale": e.r} if e.r else {})},
                                          ensure_ascii=False) + "\n" for e in examples))


def domain_examples(curate_dir: str | Path, out_dir: str | Path, per_domain: int = 12,
                    max_chars: int = 600) -> tuple[Path, Path]:
    """A labelled set from a curate folder: classify a document's domain (prose, bible, man...).

    Training examples come from the curated training split (at most ``per_domain`` per domain),
    test examples from the held-out split, so no test document was seen in training."""

    curate, out = Path(curate_dir), Path(out_dir)
    train: list[Example] = []
    seen: dict[str, int] = {}
    for f in shard_paths(curate / "train"):
        for d in read_shard(f):
            if seen.get(d.domain, 0) < per_domain:
                seen[d.domain] = seen.get(d.domain, 0) + 1
                train.append(Example(d.text[:max_chars], d.domain))
    test = [Example(d.text[:max_chars], d.domain) for f in shard_paths(curate / "heldout") for d in read_shard(f)]
    if not train or not test:
        raise LabelledDataError(f"{curate}: needs documents in both train/ and heldout/")
    write_examples(out / "train.jsonl", train, "classification")
    write_examples(out / "test.jsonl", test, "classification")
    return out / "train.jsonl", out / "test.jsonl"
