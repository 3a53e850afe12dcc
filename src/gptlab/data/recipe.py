"""A recipe is a readable list of steps, written in TOML or in Python.

    description = "exact plus fuzzy dedup only"
    [[steps]]
    type = "normalize"
    [[steps]]
    type = "minhash"
    bands = 14
    rows = 8

Each entry names a step ``type`` and sets that step's parameters; unknown types, unknown
parameters and out-of-range values are one-line ConfigErrors naming the step. The built-in
recipes ship as package data in ``gptlab/data/recipes/<name>.toml``; ``configs/data/`` links to them.
"""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from gptlab.data import classifier, dedup, steps
from gptlab.schema import ConfigError, apply, from_toml_file, validate

DOC_STEPS: dict[str, type[steps.Step]] = {
    "normalize": steps.Normalize,
    "basic": steps.Basic,
    "langid": steps.LangId,
    "gopher_quality": steps.GopherQuality,
    "gopher_repetition": steps.GopherRepetition,
    "c4": steps.C4,
    "classifier": classifier.QualityClassifier,
}
# Global steps see the whole corpus: they run as a map (keys per shard) and a reduce.
GLOBAL_STEPS: dict[str, type] = {
    "exact_dedup": dedup.ExactDedupParams,
    "url_dedup": dedup.UrlDedupParams,
    "minhash": dedup.MinHashParams,
}
STEP_TYPES = sorted([*DOC_STEPS, *GLOBAL_STEPS])


@dataclass
class StepSpec:
    """One validated recipe entry: its type, its name in the funnel, its parameters."""
    type: str
    name: str
    params: Any

    @property
    def is_global(self) -> bool:
        return self.type in GLOBAL_STEPS

    def build(self) -> steps.Step:
        return DOC_STEPS[self.type](self.name, self.params)


@dataclass
class Recipe:
    name: str
    steps: list[StepSpec]
    description: str = ""
    source: str = "built-in"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description,
                "steps": [{"type": s.type, **dataclasses.asdict(s.params)} for s in self.steps]}


RECIPES_DIR = resources.files("gptlab.data") / "recipes"


def builtin_names() -> list[str]:
    """The built-in recipes: the ``*.toml`` files shipped in ``gptlab/data/recipes/``."""
    return sorted(f.name.removesuffix(".toml") for f in RECIPES_DIR.iterdir() if f.name.endswith(".toml"))


def builtin(name: str) -> dict[str, Any]:
    return tomllib.loads((RECIPES_DIR / f"{name}.toml").read_text(encoding="utf-8"))


BUILTIN = builtin_names()


def _params_class(step_type: str) -> type:
    if step_type in GLOBAL_STEPS:
        return GLOBAL_STEPS[step_type]
    return DOC_STEPS[step_type].Params


def parse_recipe(data: dict[str, Any], name: str, where: str) -> Recipe:
    extra = set(data) - {"description", "steps", "name"}
    if extra:
        raise ConfigError(f"{where}: unknown key {sorted(extra)[0]!r} (a recipe has description and steps)")
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise ConfigError(f"{where}: a recipe needs a non-empty list of [[steps]]")
    specs: list[StepSpec] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(raw_steps):
        key = f"{where}: steps[{i}]"
        if not isinstance(entry, dict) or "type" not in entry:
            raise ConfigError(f"{key}: each step needs a type (one of {', '.join(STEP_TYPES)})")
        entry = dict(entry)
        step_type = entry.pop("type")
        if step_type not in STEP_TYPES:
            raise ConfigError(f"{key}.type: unknown step {step_type!r} (known: {', '.join(STEP_TYPES)})")
        params = _params_class(step_type)()
        apply(params, entry, prefix=f"{key} ({step_type}).")
        validate(params, prefix=f"{key} ({step_type}).")
        seen[step_type] = seen.get(step_type, 0) + 1
        step_name = step_type if seen[step_type] == 1 else f"{step_type}#{seen[step_type]}"
        specs.append(StepSpec(step_type, step_name, params))
    return Recipe(name=name, steps=specs, description=str(data.get("description", "")), source=where)


def load_recipe(recipe: str | dict[str, Any] | Recipe) -> Recipe:
    """A built-in name, a TOML file, a dict (a recipe written in Python) or a Recipe."""
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, dict):
        return parse_recipe(recipe, str(recipe.get("name", "python")), "recipe")
    if recipe in BUILTIN:
        return parse_recipe(builtin(recipe), recipe, f"recipe {recipe}")
    p = Path(recipe)
    if p.suffix == ".toml":
        return parse_recipe(from_toml_file(p), p.stem, str(p))
    raise ConfigError(f"data.recipe: unknown recipe {recipe!r} (built-in: {', '.join(BUILTIN)}; or a .toml file)")


def segments(recipe: Recipe) -> list[tuple[list[StepSpec], StepSpec | None]]:
    """Split a recipe at its global steps: [(doc steps, the global step after them), ...];
    the last segment's global step is None."""
    out: list[tuple[list[StepSpec], StepSpec | None]] = []
    current: list[StepSpec] = []
    for s in recipe.steps:
        if s.is_global:
            out.append((current, s))
            current = []
        else:
            current.append(s)
    out.append((current, None))
    return out


__all__ = ["Recipe", "StepSpec", "load_recipe", "segments", "BUILTIN", "STEP_TYPES"]
