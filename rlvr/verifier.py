"""Turning user functions into verifiers, checking them, and calling them safely.

A verifier is anything called as ``fn(completion: str, problem: Problem)`` that
returns a :class:`~rlvr.types.Verdict` or a number. :func:`as_verifier` checks that
shape once, up front, with a message that says how to fix it, and wraps plain
functions so the rest of rlvr only ever sees verdicts.
"""

from __future__ import annotations

import functools
import inspect
import numbers
from collections.abc import Callable, Sequence
from typing import Any

from rlvr.types import Problem, Verdict, Verifier, VerifierError

__all__ = ["FunctionVerifier", "as_verifier", "check_signature", "verifier_name", "verify", "verify_batch"]

_HOW = (
    "a verifier is called as fn(completion: str, problem: rlvr.Problem) and returns a "
    "float or an rlvr.Verdict; the gold answer is problem.reference"
)


def check_signature(fn: Callable[..., Any], name: str, bound: dict[str, Any] | None = None) -> None:
    """Raise TypeError unless ``fn(completion, problem, **bound)`` is a valid call.

    Every parameter beyond the first two must have a default or be supplied in
    ``bound`` (the keyword arguments given at registration or lookup).
    """
    bound = bound or {}
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature: trust them
        return
    try:
        signature.bind("completion", "problem", **bound)
    except TypeError as exc:
        params = ", ".join(str(p) for p in signature.parameters.values())
        raise TypeError(
            f"verifier {name!r} has the signature ({params}), which cannot be called as "
            f"fn(completion, problem{''.join(f', {k}=...' for k in bound)}): {exc}. Fix: {_HOW}; "
            "extra parameters need defaults or values given at registration."
        ) from None


class FunctionVerifier:
    """Wraps ``fn(completion, problem, **kwargs) -> float | Verdict`` as a Verifier."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None, **kwargs: Any) -> None:
        self.name = name or getattr(fn, "__name__", type(fn).__name__)
        check_signature(fn, self.name, kwargs)
        self.fn = functools.partial(fn, **kwargs) if kwargs else fn

    def __call__(self, completion: str, problem: Problem) -> Verdict:
        return _coerce(self.fn(completion, problem), self.name)

    def __repr__(self) -> str:
        return f"FunctionVerifier({self.name!r})"


def _coerce(result: Any, name: str) -> Verdict:
    if isinstance(result, Verdict):
        return result
    if isinstance(result, bool | numbers.Real):
        return Verdict.from_score(float(result))
    raise TypeError(f"verifier {name!r} returned {type(result).__name__}; {_HOW}")


def as_verifier(obj: Any, name: str | None = None, **kwargs: Any) -> Verifier:
    """Return ``obj`` as a Verifier, checking its call signature.

    * a class is a factory: it is instantiated with ``kwargs`` and the instance checked;
    * an object with ``__call__`` taking (completion, problem) is used as is
      (kwargs are bound to a plain function with functools.partial).
    """
    label = name or getattr(obj, "__name__", type(obj).__name__)
    if isinstance(obj, type):
        obj = obj(**kwargs)
        kwargs = {}
    if not callable(obj):
        raise TypeError(f"verifier {label!r} is a {type(obj).__name__}, not callable; {_HOW}")
    if inspect.isfunction(obj) or inspect.ismethod(obj) or isinstance(obj, functools.partial):
        return FunctionVerifier(obj, label, **kwargs)
    if kwargs:
        raise TypeError(f"verifier {label!r} is an instance; keyword arguments {sorted(kwargs)} cannot be bound to it")
    check_signature(obj.__call__, label)
    return obj


def verifier_name(verifier: Any) -> str:
    return getattr(verifier, "name", None) or type(verifier).__name__


def verify(verifier: Verifier, completion: str, problem: Problem) -> Verdict:
    """Call ``verifier`` and return its verdict; an exception becomes VerifierError.

    Exceptions are never turned into a zero here: a crash says nothing about the
    completion. ``KeyboardInterrupt`` and other non-``Exception`` signals pass through.
    """
    try:
        return _coerce(verifier(completion, problem), verifier_name(verifier))
    except VerifierError:
        raise
    except Exception as exc:
        raise VerifierError(verifier_name(verifier), problem.id, exc) from exc


def verify_batch(verifier: Verifier, completions: Sequence[str], problems: Sequence[Problem]) -> list[Verdict]:
    """Verdicts for ``completions[i]`` against ``problems[i]``, in input order.

    Uses the verifier's own ``batch`` method when it has one (a pool, a GPU batch),
    else calls it item by item.
    """
    if len(completions) != len(problems):
        raise ValueError(f"{len(completions)} completions but {len(problems)} problems")
    batch = getattr(verifier, "batch", None)
    if batch is None:
        return [verify(verifier, c, p) for c, p in zip(completions, problems, strict=True)]
    try:
        verdicts = list(batch(completions, problems))
    except VerifierError:
        raise
    except Exception as exc:
        raise VerifierError(verifier_name(verifier), problems[0].id if problems else "?", exc) from exc
    if len(verdicts) != len(completions):
        raise VerifierError(
            verifier_name(verifier),
            "?",
            ValueError(f"batch returned {len(verdicts)} verdicts for {len(completions)} items"),
        )
    return [_coerce(v, verifier_name(verifier)) for v in verdicts]
