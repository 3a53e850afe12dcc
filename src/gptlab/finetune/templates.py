"""Prompt templates: how an example becomes (prompt, target) text, saved beside the model.

The loss falls on the target's tokens only, so the template is part of the model: the same
prompt must be used to query it. ``finetune.json`` in the fine-tuned checkpoint records the
template (and, for classification, the label set), and :func:`render` applies it.

The default templates match the bake-off's prompts (``Text: ...\\nLabel:`` and
``Input: ...\\nOutput:``), and the target starts with a space, as ``gptlab eval --tasks`` scores
a choice as the continuation ``" " + choice``: a classifier fine-tuned here is evaluated by a
multiple-choice task whose query is the rendered prompt and whose choices are the labels.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gptlab.errors import InputError
from gptlab.finetune.data import Row
from gptlab.manifest import atomic_write_json

META_FILE = "finetune.json"          # in the fine-tuned checkpoint folder
ANSWER_CUE = "The answer is"         # between a distilled rationale and its answer (Wei et al., 2022)
FIELDS = ("input", "instruction", "options", "task")


@dataclass
class Template:
    name: str
    prompt: str                      # a format string over {input}, {instruction}, {options}, {task}
    target: str = " {target}"        # the trained continuation; "\n" ends a generated answer

    def check(self) -> None:
        try:
            self.prompt.format(**{k: "" for k in FIELDS})
            self.target.format(target="", rationale="")
        except (KeyError, IndexError, ValueError) as e:
            raise InputError(f"template {self.name!r}: {self.prompt!r} may use only "
                             f"{', '.join('{' + k + '}' for k in FIELDS)} ({e})") from None
        if "{input}" not in self.prompt:
            raise InputError(f"template {self.name!r}: the prompt must contain {{input}}")


CLASSIFICATION = Template("classification", "Text: {input}\nLabel:", " {target}")
GENERATION = Template("generation", "Input: {input}\nOutput:", " {target}\n")

# FLAN-style instruction templates: several phrasings of the same request, so the model learns
# the instruction, not one layout (Wei et al., 2021: ten templates per task; we keep four).
INSTRUCTION_TEMPLATES = [
    Template("instruction-first", "{instruction}\n\n{input}{options}\nAnswer:", " {target}\n"),
    Template("input-first", "{input}\n\n{instruction}{options}\nAnswer:", " {target}\n"),
    Template("labelled-fields", "Instruction: {instruction}\nInput: {input}{options}\nOutput:", " {target}\n"),
    Template("question", "Q: {instruction}\n{input}{options}\nA:", " {target}\n"),
]
BETWEEN_SHOTS = "\n\n"


def default_template(task: str) -> Template:
    return {"classification": CLASSIFICATION, "generation": GENERATION}.get(task, INSTRUCTION_TEMPLATES[0])


def clip(text: str, n: int) -> str:
    return text if n <= 0 or len(text) <= n else text[:n]


def render_prompt(t: Template, row: Row, max_chars: int = 0) -> str:
    options = ("\nOptions: " + ", ".join(row.options)) if row.options else ""
    instruction = row.instruction or (f"Task: {row.task}." if row.task else "")
    return t.prompt.format(input=clip(row.input, max_chars), instruction=instruction, options=options,
                           task=row.task)


def render_target(t: Template, row: Row) -> str:
    """The trained continuation; a rationale (chain of thought) comes first, then the cue and the answer."""
    target = f"{row.rationale} {ANSWER_CUE} {row.target}." if row.rationale else row.target
    return t.target.format(target=target, rationale=row.rationale)


def render(t: Template, row: Row, shots: list[Row] = (), max_chars: int = 0) -> tuple[str, str]:
    """(prompt, target): k solved exemplars in the same template, then the query."""
    solved = [render_prompt(t, s, max_chars) + render_target(t, s).rstrip("\n") for s in shots]
    return BETWEEN_SHOTS.join(solved + [render_prompt(t, row, max_chars)]), render_target(t, row)


def extract_answer(text: str) -> str:
    """The answer in a generated continuation: after the last "The answer is", else its first line."""
    m = list(re.finditer(re.escape(ANSWER_CUE), text))
    if m:
        return text[m[-1].end():].strip().split("\n")[0].strip().rstrip(".").strip()
    return text.strip().split("\n")[0].strip()


def parse_template(spec: str, task: str) -> Template:
    """``--template``: a prompt format string (e.g. "Review: {input}\\nSentiment:")."""
    base = default_template(task)
    t = Template("custom", spec.replace("\\n", "\n"), base.target)
    t.check()
    return t


def write_meta(folder: str | Path, meta: dict[str, Any]) -> Path:
    p = Path(folder) / META_FILE
    atomic_write_json(p, meta)
    return p


def template_meta(t: Template) -> dict[str, Any]:
    return asdict(t)


def load_meta(checkpoint: str | Path) -> dict[str, Any] | None:
    """The fine-tuning record of a checkpoint (task, template, labels), or None for a plain one."""
    p = Path(checkpoint) / META_FILE
    if not p.exists():
        return None
    return json.loads(p.read_text())


def template_of(meta: dict[str, Any]) -> Template:
    return Template(**meta["template"])
