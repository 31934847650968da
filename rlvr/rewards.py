"""Rewards: a verifier called safely, or a composite of verifiers.

A verifier is anything called as ``fn(completion: str, problem: Problem)`` that
returns a :class:`~rlvr.types.Verdict` or a number. :func:`as_verifier` checks that
shape once, up front, with a message that says how to fix it, and wraps plain
functions so the rest of rlvr only ever sees verdicts; :func:`verify` and
:func:`verify_batch` call one safely.

Composition: weighted sums, gates and clipping over verifiers. A composite is
itself a verifier. It evaluates each *leaf* verifier once and combines the leaf
scores with a pure function, :meth:`Composite.combine`, so every reward can be
recomputed from its breakdown: ``reward == r.combine(info["components"])`` holds
for every environment step (a property test checks it).

Leaf names are flat paths: ``WeightedSum({"correct": Gate(...), "format": ...})``
names the gate's leaves ``correct/condition`` and ``correct/reward``.

Hidden cost: every leaf is evaluated, even one a failed gate will zero out, so
the breakdown is always complete. Put an expensive verifier behind a cheap gate
only if you accept that cost, or write a verifier that short-circuits.
"""

from __future__ import annotations

import functools
import inspect
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rlvr.types import Problem, Status, Verdict, Verifier, VerifierError

__all__ = [
    "Clip",
    "Composite",
    "FunctionVerifier",
    "Gate",
    "WeightedSum",
    "as_verifier",
    "check_signature",
    "combine_status",
    "describe",
    "verifier_name",
    "verify",
    "verify_batch",
]


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
        """Call the function; a float (or bool) result becomes a :class:`Verdict`.

        Raises:
            TypeError: the function returned neither a number nor a Verdict.
        """
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
    """The verifier's ``name`` attribute, or its class name when it has none."""
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


def combine_status(statuses: Sequence[Status]) -> Status:
    """The status of a composite, from the statuses of its leaves.

    A machinery failure outranks an unscorable reference, which outranks any score;
    CORRECT only when every leaf is.
    """
    if Status.ERROR in statuses:
        return Status.ERROR
    if Status.UNSCORABLE in statuses:
        return Status.UNSCORABLE
    return Status.CORRECT if all(s is Status.CORRECT for s in statuses) else Status.INCORRECT


class Composite:
    """Base class: named children, flat leaves, and a pure ``combine``."""

    name: str = "composite"

    def __init__(self, children: Mapping[str, Verifier]) -> None:
        if not children:
            raise ValueError(f"{type(self).__name__} needs at least one verifier")
        self.children: dict[str, Verifier] = {}
        for key, child in children.items():
            if "/" in key:
                raise ValueError(f"component name {key!r} must not contain '/'")
            self.children[key] = child if isinstance(child, Composite) else as_verifier(child, key)

    def leaves(self) -> dict[str, Verifier]:
        """The leaf verifiers, nested composites flattened, keyed by ``/``-joined component paths."""
        out: dict[str, Verifier] = {}
        for key, child in self.children.items():
            if isinstance(child, Composite):
                out.update({_join(key, k): v for k, v in child.leaves().items()})
            else:
                out[key] = child
        return out

    def child_score(self, key: str, scores: Mapping[str, float]) -> float:
        """The score of child ``key`` from the leaf ``scores``: a leaf's own, a composite's combined."""
        child = self.children[key]
        if isinstance(child, Composite):
            prefix = f"{key}/" if key else ""
            return child.combine({k[len(prefix) :]: v for k, v in scores.items() if k.startswith(prefix)})
        return float(scores[key])

    def combine(self, scores: Mapping[str, float]) -> float:
        """The reward as a pure function of the leaf scores (keys from :meth:`leaves`)."""
        raise NotImplementedError

    def _verdict(self, leaf_verdicts: dict[str, Verdict]) -> Verdict:
        scores = {k: v.score for k, v in leaf_verdicts.items()}
        components = {
            k: {"score": v.score, "status": v.status.value, "details": dict(v.details)}
            for k, v in leaf_verdicts.items()
        }
        status = combine_status([v.status for v in leaf_verdicts.values()])
        return Verdict(self.combine(scores), status, {"components": components})

    def __call__(self, completion: str, problem: Problem) -> Verdict:
        """Score ``completion`` with every leaf and combine.

        Returns:
            A verdict with the combined score, the status from :func:`combine_status`,
            and each leaf's score, status and details in ``details["components"]``.
        """
        return self._verdict({k: verify(v, completion, problem) for k, v in self.leaves().items()})

    def batch(self, completions: Sequence[str], problems: Sequence[Problem]) -> list[Verdict]:
        """Score a batch with each leaf (through its own ``batch`` where it has one), then combine per item."""
        per_leaf = {k: verify_batch(v, completions, problems) for k, v in self.leaves().items()}
        return [self._verdict({k: vs[i] for k, vs in per_leaf.items()}) for i in range(len(completions))]


def _join(prefix: str, key: str) -> str:
    return f"{prefix}/{key}" if prefix else key


class WeightedSum(Composite):
    """``reward = sum_i w_i * score_i``; weights default to 1.

    Example: ``WeightedSum({"correct": MathVerifier(), "format": BoxedOnce()},
    weights={"correct": 0.9, "format": 0.1})`` stays in [0, 1].
    """

    name = "weighted-sum"

    def __init__(self, children: Mapping[str, Verifier], weights: Mapping[str, float] | None = None) -> None:
        super().__init__(children)
        weights = dict(weights or {})
        unknown = set(weights) - set(self.children)
        if unknown:
            raise ValueError(
                f"weights name unknown components {sorted(unknown)}; components are {sorted(self.children)}"
            )
        self.weights = {k: float(weights.get(k, 1.0)) for k in self.children}

    def combine(self, scores: Mapping[str, float]) -> float:
        """The weighted sum of the children's scores."""
        return sum(w * self.child_score(k, scores) for k, w in self.weights.items())

    def __repr__(self) -> str:
        return f"WeightedSum({self.children!r}, weights={self.weights!r})"


class Gate(Composite):
    """``reward`` counts only when ``condition`` scores at least ``threshold``.

    Typical use: correctness counts only when the format holds, so a right answer
    in a sprayed or malformed response earns ``otherwise`` (default 0).
    """

    name = "gate"

    def __init__(
        self,
        condition: Verifier,
        reward: Verifier,
        *,
        threshold: float = 1.0,
        otherwise: float = 0.0,
        names: tuple[str, str] = ("condition", "reward"),
    ) -> None:
        if names[0] == names[1]:
            raise ValueError(f"Gate needs two distinct component names, got {names}")
        super().__init__({names[0]: condition, names[1]: reward})
        self.condition_key, self.reward_key = names
        self.threshold = float(threshold)
        self.otherwise = float(otherwise)

    def combine(self, scores: Mapping[str, float]) -> float:
        """The reward's score when the condition reaches the threshold, else ``otherwise``."""
        if self.child_score(self.condition_key, scores) >= self.threshold:
            return self.child_score(self.reward_key, scores)
        return self.otherwise


class Clip(Composite):
    """``reward = min(max(inner, low), high)``; the inner breakdown is kept as is."""

    name = "clip"

    def __init__(self, inner: Verifier, low: float = 0.0, high: float = 1.0, *, name: str = "reward") -> None:
        if low > high:
            raise ValueError(f"Clip needs low <= high, got low={low}, high={high}")
        # A composite inner keeps its own leaf names (no prefix); a leaf is named `name`.
        super().__init__({"" if isinstance(inner, Composite) else name: inner})
        self.low, self.high = float(low), float(high)

    def combine(self, scores: Mapping[str, float]) -> float:
        """The inner score clamped to ``[low, high]``."""
        (key,) = self.children
        return min(max(self.child_score(key, scores), self.low), self.high)


def describe(reward: Any) -> str:
    """One line naming a reward's structure, for logs and the CLI."""
    if isinstance(reward, WeightedSum):
        return " + ".join(f"{w:g}*{describe(reward.children[k])}[{k}]" for k, w in reward.weights.items())
    if isinstance(reward, Gate):
        cond, inner = reward.children[reward.condition_key], reward.children[reward.reward_key]
        return f"({describe(inner)} if {describe(cond)} >= {reward.threshold:g} else {reward.otherwise:g})"
    if isinstance(reward, Clip):
        (inner,) = reward.children.values()
        return f"clip({describe(inner)}, {reward.low:g}, {reward.high:g})"
    return getattr(reward, "name", None) or type(reward).__name__
