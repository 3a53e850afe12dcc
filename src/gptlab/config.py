"""The run's config tree: one typed section per stage, loaded from TOML and dotted overrides.

A run is described by a :class:`RunConfig` whose sections belong to the stages (each
stage function takes only its own section). The machinery (types, bounds, overrides,
one-line errors) lives in :mod:`gptlab.schema`; this module only assembles the tree,
applies a recipe preset, and loads and saves it. The resolved config is saved beside
every stage's outputs and inside every checkpoint.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gptlab.data.config import DataConfig
from gptlab.eval.config import EvalConfig
from gptlab.model.config import ModelConfig
from gptlab.model.presets import preset_fragment, under
from gptlab.pack.config import PackConfig
from gptlab.schema import ConfigError, apply, from_toml_file, merge, nest, parse_override, validate
from gptlab.schema import to_toml as _tree_to_toml
from gptlab.tokenizer.config import TokenizerConfig
from gptlab.train.config import StabilityConfig, TrainConfig

__all__ = ["ConfigError", "RunConfig", "from_dict", "load_config", "to_dict", "to_toml"]


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    pack: PackConfig = field(default_factory=PackConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    stability: StabilityConfig = field(default_factory=StabilityConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (),
                fragments: list[dict[str, Any]] | tuple = ()) -> RunConfig:
    """Defaults ← preset fragments ← TOML file ← dotted overrides, validated at the end.

    ``model.preset`` (in the file or on the command line) names a recipe: a fragment of
    model *and* training settings; anything set explicitly in the file or on the command
    line wins over it."""
    data: dict[str, Any] = {}
    for frag in fragments:
        data = merge(data, frag)
    if path is not None:
        data = merge(data, from_toml_file(path))
    model_preset = None
    for item in overrides:
        keys, value = parse_override(item)
        if keys == ["model", "preset"]:
            model_preset = value
            continue
        data = merge(data, nest(keys, value))
    if not isinstance(data.get("model", {}), dict):
        raise ConfigError(f"model: expected a table of settings, got {data['model']!r}")
    preset = model_preset or data.get("model", {}).get("preset")
    if "preset" in data.get("model", {}):
        data["model"] = {k: v for k, v in data["model"].items() if k != "preset"}
    if preset is not None:
        frag = preset_fragment(preset)
        user_train = data.get("train", {}) if isinstance(data.get("train", {}), dict) else {}
        if "precision" in frag.get("train", {}) and not {"precision", "precision_fallback"} & set(user_train):
            # The recipe's precision was chosen for its paper's GPUs/TPUs: where this device has no fast
            # path for it, train in fp32 and say so. A precision the user sets is kept as asked.
            frag["train"]["precision_fallback"] = True
        data = under(frag, data)  # an absolute key replaces the preset's fraction
    return from_dict(data)


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(data: dict[str, Any]) -> RunConfig:
    cfg = RunConfig()
    apply(cfg, data)
    validate(cfg)
    return cfg


def to_toml(cfg: RunConfig) -> str:
    return _tree_to_toml(to_dict(cfg))
