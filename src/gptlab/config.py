"""One typed config tree for every stage.

A run is described by a :class:`RunConfig` made of small dataclasses. It loads from
TOML, takes dotted ``key=value`` overrides (``train.lr=3e-4 model.n_layer=4``), and
rejects unknown keys, wrong types and out-of-range values with a one-line error that
names the key. The resolved config is saved beside every stage's outputs.

Range limits live next to each field as ``field(metadata=...)`` so that the rule
and the default are read together.
"""
from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gptlab.data.config import DataConfig, PackConfig
from gptlab.eval.config import EvalConfig
from gptlab.fields import ConfigError, rng  # noqa: F401  (re-exported)
from gptlab.model.config import ModelConfig
from gptlab.tokenizer.config import TokenizerConfig
from gptlab.train.config import TrainConfig
from gptlab.train.stability_config import StabilityConfig


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    pack: PackConfig = field(default_factory=PackConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    stability: StabilityConfig = field(default_factory=StabilityConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


# ----------------------------------------------------------------------------- presets

def demo_preset(size: str) -> dict[str, Any]:
    """Config fragments for `gptlab demo --size`. tiny is for tests (~1-2 min on 2 cores)."""
    if size == "tiny":
        return {
            "data": {"recipe": "embedded", "max_mb_per_source": 0.4, "max_docs_per_source": 150,
                     "docs_per_shard": 200, "eval_max_docs_per_domain": 6, "eval_max_chars_per_doc": 3000},
            "tokenizer": {"vocab_size": 1024},
            "pack": {"seq_len": 64},
            "model": {"n_layer": 2, "n_head": 2, "n_embd": 64},
            "train": {"max_steps": 150, "batch_size": 16, "lr": 3e-3, "warmup_steps": 15,
                      "checkpoint_every": 50, "log_every": 10, "eval_every": 75},
        }
    if size == "small":
        return {
            "data": {"recipe": "embedded", "max_mb_per_source": 5.0, "max_docs_per_source": 3000},
            "tokenizer": {"vocab_size": 4096},
            "pack": {"seq_len": 256},
            "model": {"n_layer": 4, "n_head": 4, "n_embd": 192},
            # ~2M tokens: about 7 minutes of fp32 training on 2 CPU cores, half that with bf16.
            "train": {"max_steps": 480, "batch_size": 16, "lr": 2e-3, "warmup_steps": 40,
                      "checkpoint_every": 240, "eval_every": 240},
        }
    raise ConfigError(f"--size: unknown size {size!r} (choose tiny or small)")


# ----------------------------------------------------------------------------- loading

def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Check ``value`` against annotation ``tp``; allow int→float. Raise ConfigError naming key."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(key, value, a)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{key}: expected {' or '.join(_type_name(a) for a in args)}, got {value!r}")
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_coerce(f"{key}[{i}]", v, item) for i, v in enumerate(value)]
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    raise ConfigError(f"{key}: unsupported type {tp}")


def _check_range(key: str, value: Any, meta: typing.Mapping) -> None:
    lo, hi, choices = meta.get("lo"), meta.get("hi"), meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(str, choices))}")
    if value is None:
        return
    if lo is not None and value < lo:
        raise ConfigError(f"{key}: {value!r} is below the minimum {lo}")
    if hi is not None and value > hi:
        raise ConfigError(f"{key}: {value!r} is above the maximum {hi}")


def _apply(obj: Any, data: dict[str, Any], prefix: str = "") -> None:
    hints = typing.get_type_hints(type(obj))
    fields = {f.name: f for f in dataclasses.fields(obj)}
    for name, value in data.items():
        key = f"{prefix}{name}"
        if name not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{key}: unknown key (known keys here: {known})")
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"{key}: expected a table of settings, got {value!r}")
            _apply(getattr(obj, name), value, prefix=f"{key}.")
            continue
        coerced = _coerce(key, value, tp)
        _check_range(key, coerced, fields[name].metadata)
        setattr(obj, name, coerced)


def validate(cfg: Any, prefix: str = "") -> None:
    """Re-check every field (defaults included) and cross-field rules."""
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            validate(value, prefix=f"{key}.")
        else:
            _coerce(key, value, hints[f.name])
            _check_range(key, value, f.metadata)
    post = getattr(cfg, "check", None)
    if callable(post):
        try:
            post()
        except ValueError as e:
            raise ConfigError(f"{prefix}{e}") from None


def parse_override(item: str) -> tuple[list[str], Any]:
    """``a.b=value`` → (["a", "b"], parsed value). Values parse as TOML, else as a bare string."""
    if "=" not in item:
        raise ConfigError(f"{item}: overrides look like key=value, e.g. train.lr=3e-4")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"{item}: empty key")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.split("."), value


def nest(path: list[str], value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {path[-1]: value}
    for p in reversed(path[:-1]):
        out = {p: out}
    return out


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (),
                fragments: list[dict[str, Any]] | tuple = ()) -> RunConfig:
    """Defaults ← preset fragments ← TOML file ← dotted overrides, validated at the end."""
    data: dict[str, Any] = {}
    for frag in fragments:
        data = merge(data, frag)
    if path is not None:
        p = Path(path)
        try:
            data = merge(data, tomllib.loads(p.read_text()))
        except FileNotFoundError:
            raise ConfigError(f"{p}: config file not found") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{p}: invalid TOML ({e})") from None
    model_preset = None
    for item in overrides:
        keys, value = parse_override(item)
        if keys == ["model", "preset"]:
            model_preset = value
            continue
        data = merge(data, nest(keys, value))
    cfg = RunConfig()
    preset = model_preset or data.get("model", {}).get("preset")
    if "preset" in data.get("model", {}):
        data["model"] = {k: v for k, v in data["model"].items() if k != "preset"}
    if preset is not None:
        # A recipe preset is a RunConfig fragment (model plus its training defaults);
        # anything set explicitly in the file or on the command line wins over it.
        from gptlab.model.presets import preset_fragment
        data = merge(preset_fragment(preset), data)
    _apply(cfg, data)
    validate(cfg)
    return cfg


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(data: dict[str, Any]) -> RunConfig:
    cfg = RunConfig()
    _apply(cfg, data)
    validate(cfg)
    return cfg


def to_toml(cfg: Any) -> str:
    """A tiny TOML writer for our flat-tables config (scalars and lists of scalars)."""
    def fmt(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(fmt(x) for x in v) + "]"
        if v is None:
            raise ValueError("None cannot be written to TOML")
        raise TypeError(type(v))

    lines: list[str] = []
    for section, values in to_dict(cfg).items():
        lines.append(f"[{section}]")
        for k, v in values.items():
            if v is None:
                continue
            lines.append(f"{k} = {fmt(v)}")
        lines.append("")
    return "\n".join(lines)


def section_hash(cfg: RunConfig, *sections: str) -> str:
    """A stable hash of some config sections: a stage reruns when its sections change."""
    import hashlib
    d = to_dict(cfg)
    blob = json.dumps({s: d[s] for s in sections}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
