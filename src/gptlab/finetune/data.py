"""The fine-tuning examples: JSON lines, one example per line, checked as they are read.

* classification: ``{"text": "...", "label": "..."}``
* generation:     ``{"input": "...", "target": "..."}``, optionally ``"rationale": "..."``
  (a labelling model's chain of thought, trained before the answer: distillation)
* instructions:   ``{"task": "NAME", "input": "...", "target": "..."}``, optionally
  ``"instruction": "..."`` (what the task asks, in words) and ``"options": [...]`` (the answer
  is one of them). One file holds the whole mixture.

A line that is not such an object stops the run with one line naming the file, the line and
the key: a silently dropped example would change what the model learns.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gptlab.errors import InputError
from gptlab.jsonl import jsonl_objects

TASKS = ("classification", "generation", "instructions")
FIELDS = {"classification": ("text", "label"), "generation": ("input", "target"),
          "instructions": ("task", "input", "target")}


class FinetuneDataError(InputError):
    """A training or validation line that cannot be used; the message names file, line and key."""


@dataclass
class Row:
    input: str
    target: str
    task: str = ""                       # instructions: the task the row belongs to
    instruction: str = ""
    options: list[str] = field(default_factory=list)
    rationale: str = ""


def _text(where: str, obj: dict, key: str, required: bool = True) -> str:
    v = obj.get(key)
    if v is None and not required:
        return ""
    if not isinstance(v, str) or not v.strip():
        raise FinetuneDataError(f"{where}: key {key!r} must be a non-empty string")
    return v


def read_rows(path: str | Path, task: str) -> list[Row]:
    """The rows of ``path`` for ``task`` (one of TASKS)."""
    if task not in TASKS:
        raise FinetuneDataError(f"--task: {task!r} is not one of {', '.join(TASKS)}")
    rows = []
    for where, obj in jsonl_objects(path, FinetuneDataError, "training file"):
        for key in FIELDS[task]:
            _text(where, obj, key)
        if task == "classification":
            rows.append(Row(obj["text"], obj["label"].strip()))
            continue
        row = Row(obj["input"], obj["target"].strip(), rationale=_text(where, obj, "rationale", False).strip())
        if task == "instructions":
            row.task = obj["task"].strip()
            row.instruction = _text(where, obj, "instruction", False).strip()
            opts = obj.get("options", [])
            if not (isinstance(opts, list) and all(isinstance(o, str) and o.strip() for o in opts)):
                raise FinetuneDataError(f"{where}: key 'options' must be a list of non-empty strings")
            row.options = [o.strip() for o in opts]
            if row.options and row.target not in row.options:
                raise FinetuneDataError(f"{where}: key 'target' ({row.target!r}) is not one of its 'options'")
        rows.append(row)
    if not rows:
        raise FinetuneDataError(f"{path}: no examples")
    if task == "classification" and len({r.target for r in rows}) < 2:
        raise FinetuneDataError(f"{path}: classification needs at least two different labels")
    return rows
