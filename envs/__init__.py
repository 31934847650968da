"""Built-in environments, installed as ``rlvr.envs``.

Importing this package registers every built-in id (also with gymnasium) without
importing the environment modules; classes load on first attribute access,
e.g. ``from rlvr.envs import ArithmeticEnv``.
"""

from __future__ import annotations

import importlib
from typing import Any

from rlvr.registry import EnvEntry, _register_env

_BUILTINS = {
    "rlvr/Arithmetic-v0": ("rlvr.envs.arithmetic:ArithmeticEnv", "integer arithmetic (digits, terms, operations); answer in \\boxed{}"),
    "rlvr/Countdown-v0": ("rlvr.envs.countdown:CountdownEnv", "Countdown: reach the target from the given numbers with + - * /"),
}

for _id, (_target, _description) in _BUILTINS.items():
    _register_env(EnvEntry(_id, _target, {}, _description, "rlvr"))

_CLASSES = {target.rpartition(":")[2]: target for target, _ in _BUILTINS.values()}
__all__ = sorted(_CLASSES)


def __getattr__(name: str) -> Any:
    if name in _CLASSES:
        module, _, attr = _CLASSES[name].partition(":")
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'rlvr.envs' has no attribute {name!r}")
