"""Typed config dataclasses: bounded fields, TOML, dotted overrides and validation.

This is a leaf module (it imports no other part of gptlab but the error types): every
stage's config section, the data recipes and the bake-off settings use it. A section is a
plain dataclass; a choice is a ``Literal[...]`` type; a numeric range sits next to its
field as ``bounded(lo, hi, default=...)`` so that the rule and the default read together.
Errors are one line that names the key.
"""
from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import types
import typing
from dataclasses import field
from pathlib import Path
from typing import Any, Literal

from gptlab.errors import ConfigError

__all__ = ["ConfigError", "apply", "bounded", "choices_of", "from_toml_file", "merge", "nest", "parse_override",
           "section_dict", "to_toml", "validate"]


def bounded(lo: float | None = None, hi: float | None = None, *,
            default: Any = dataclasses.MISSING, default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with inclusive bounds, checked on load and on validate."""
    meta = {"lo": lo, "hi": hi}
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def choices_of(tp: Any) -> tuple:
    """The allowed values of a ``Literal[...]`` annotation (also inside ``X | None``), else ()."""
    if typing.get_origin(tp) is Literal:
        return typing.get_args(tp)
    for a in typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else ():
        if typing.get_origin(a) is Literal:
            return typing.get_args(a)
    return ()


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return " or ".join(repr(c) for c in typing.get_args(tp))
    return {bool: "true or false"}.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Check ``value`` against annotation ``tp``; allow int→float. Raise ConfigError naming key."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices or type(value) is not type(next(c for c in choices if c == value)):
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(str, choices))}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(key, value, a)
            except ConfigError:
                pass
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
            if not math.isfinite(value):
                raise ConfigError(f"{key}: expected a finite number, got {value!r}")
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
    lo, hi = meta.get("lo"), meta.get("hi")
    if value is None:
        return
    if lo is not None and value < lo:
        raise ConfigError(f"{key}: {value!r} is below the minimum {lo}")
    if hi is not None and value > hi:
        raise ConfigError(f"{key}: {value!r} is above the maximum {hi}")


def apply(obj: Any, data: Any, prefix: str = "") -> Any:
    """Set ``data``'s keys on the dataclass ``obj`` (nested sections included), checking
    every key, type and range. Returns ``obj``."""
    if not isinstance(data, dict):
        where = prefix.rstrip(".") or "config"
        raise ConfigError(f"{where}: expected a table of settings, got {data!r}")
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
            apply(getattr(obj, name), value, prefix=f"{key}.")
            continue
        coerced = _coerce(key, value, tp)
        _check_range(key, coerced, fields[name].metadata)
        setattr(obj, name, coerced)
    return obj


def validate(cfg: Any, prefix: str = "") -> None:
    """Re-check every field (defaults included) and each section's cross-field ``check()``."""
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
            if isinstance(e, ConfigError):
                raise
            raise ConfigError(f"{prefix}{e}") from None


def parse_override(item: str) -> tuple[list[str], Any]:
    """``a.b=value`` → (["a", "b"], parsed value). Values parse as TOML, else as a bare string."""
    if "=" not in item:
        raise ConfigError(f"{item}: overrides look like key=value, e.g. train.lr=3e-4")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
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
    """A deep merge of nested dicts; ``extra`` wins."""
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def from_toml_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML file, with one-line errors naming the file."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{p}: is a folder, not a TOML file")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text") from None
    except OSError as e:
        raise ConfigError(f"{p}: cannot read ({e.strerror})") from None
    except RecursionError:   # tomllib recurses once per level of nesting
        raise ConfigError(f"{p}: invalid TOML (arrays or tables nested too deeply)") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: invalid TOML ({e})") from None


def section_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    raise TypeError(type(v))


def to_toml(tree: dict[str, dict[str, Any]]) -> str:
    """A small TOML writer for a tree of flat sections (scalars and lists of scalars)."""
    lines: list[str] = []
    for section, values in tree.items():
        lines.append(f"[{section}]")
        for k, v in values.items():
            if v is not None:
                lines.append(f"{k} = {_fmt(v)}")
        lines.append("")
    return "\n".join(lines)
