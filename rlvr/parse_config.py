"""Reading a run configuration: defaults, then a YAML file, then ``key=value`` overrides, strictly.

Unknown keys are errors that name the close matches, and every value is
coerced to its field's type or refused with its key's path; the sections'
own checks (:mod:`rlvr.config`) then run on construction. The resolved
configuration is saved as ``config.yaml`` in the run folder (:func:`to_yaml`),
and loading that file reproduces the run's configuration exactly.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal

from rlvr.config import ConfigError, RunConfig

__all__ = ["build", "load_config", "parse_override", "to_dict", "to_yaml"]


def build(cls: type, data: Any, path: str = "") -> Any:
    """An instance of the dataclass ``cls`` from a mapping, each value coerced to its field's type.

    ``path`` is the mapping's place in the whole configuration (``"rollout"``), so an
    error names the full key (``rollout.group_size``).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'}: expected a mapping of {cls.__name__} fields, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=2, cutoff=0.6)
            hint = (
                f"; did you mean {' or '.join(repr(_join(path, c)) for c in close)}?"
                if close
                else f"; valid keys: {', '.join(sorted(known))}"
            )
            raise ConfigError(f"unknown key {_join(path, key)!r}{hint}")
    values = {k: _coerce(hints[k], v, _join(path, k)) for k, v in data.items()}
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path or 'config'}: {exc}") from None


def _coerce(tp: Any, value: Any, path: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return build(tp, value, path)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(option, value, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{path}: {value!r} fits none of {tp}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{path}: {value!r} is not one of {', '.join(repr(a) for a in args)}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{path}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML 1.1 reads "3e-5" (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if tp in (int, str, bool) and type(value) is tp:
        return value
    raise ConfigError(f"{path}: expected {getattr(tp, '__name__', tp)}, got {value!r} ({type(value).__name__})")


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def to_dict(config: Any) -> Any:
    """Plain data (dicts, lists, scalars) from a configuration, recursively; tuples become lists."""
    if dataclasses.is_dataclass(config):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, tuple):
        return [to_dict(v) for v in config]
    if isinstance(config, dict):
        return {k: to_dict(v) for k, v in config.items()}
    return config


def to_yaml(config: RunConfig) -> str:
    """The configuration as YAML, sections and keys in declaration order; :func:`load_config` reads it back."""
    import yaml

    return yaml.safe_dump(to_dict(config), sort_keys=False)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_override(text: str) -> dict[str, Any]:
    """``"a.b.c=value"`` -> ``{"a": {"b": {"c": value}}}``, the value read as YAML."""
    import yaml

    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} must look like section.key=value (e.g. train.steps=50)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({exc.problem})") from None
    out: dict[str, Any] = {}
    node = out
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Defaults, updated by the YAML file at ``path``, updated by ``overrides``."""
    import yaml

    data = to_dict(RunConfig())
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections (model, env, rollout, ...)")
        data = _merge(data, loaded)
    for text in overrides:
        data = _merge(data, parse_override(text))
    return build(RunConfig, data)
