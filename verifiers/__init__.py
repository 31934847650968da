"""Built-in verifiers, installed as ``rlvr.verifiers``.

Importing this package registers every built-in by name (``rlvr verifiers`` lists
them) without importing any of them: ``math-verify`` and ``sympy`` load only when
the math verifier is first built. Classes are also reachable as attributes,
e.g. ``from rlvr.verifiers import MathVerifier``, loaded on first access.
"""

from __future__ import annotations

import importlib
from typing import Any

from rlvr.registry import VerifierEntry, _register_verifier

_BUILTINS = {
    # name: (target, description)
    "exact-match": ("rlvr.verifiers.exact_match:ExactMatch", "normalised exact match against one or more gold answers"),
    "math": ("rlvr.verifiers.math_equivalence:MathVerifier", "math equivalence of the \\boxed{} answer (math-verify, sympy)"),
    "boxed-once": ("rlvr.verifiers.format:BoxedOnce", "format: exactly one non-empty \\boxed{}"),
    "think-answer": ("rlvr.verifiers.format:ThinkAnswer", "format: <think>...</think><answer>...</answer>"),
    "regex": ("rlvr.verifiers.format:RegexFormat", "format: the completion matches a regular expression (pattern=...)"),
    "countdown": ("rlvr.verifiers.countdown:CountdownVerifier", "Countdown: an expression over the numbers that hits the target"),
}

for _name, (_target, _description) in _BUILTINS.items():
    _register_verifier(VerifierEntry(_name, _target, {}, _description, "rlvr"))

_CLASSES = {target.rpartition(":")[2]: target for target, _ in _BUILTINS.values()}
__all__ = sorted(_CLASSES)


def __getattr__(name: str) -> Any:
    if name in _CLASSES:
        module, _, attr = _CLASSES[name].partition(":")
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'rlvr.verifiers' has no attribute {name!r}")
