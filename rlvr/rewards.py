"""Reward composition: weighted sums, gates and clipping over verifiers.

A composite is itself a verifier. It evaluates each *leaf* verifier once and
combines the leaf scores with a pure function, :meth:`Composite.combine`, so every
reward can be recomputed from its breakdown: ``reward == r.combine(info["components"])``
holds for every environment step (a property test checks it).

Leaf names are flat paths: ``WeightedSum({"correct": Gate(...), "format": ...})``
names the gate's leaves ``correct/condition`` and ``correct/reward``.

Hidden cost: every leaf is evaluated, even one a failed gate will zero out, so
the breakdown is always complete. Put an expensive verifier behind a cheap gate
only if you accept that cost, or write a verifier that short-circuits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rlvr.types import Problem, Status, Verdict, Verifier
from rlvr.verifier import as_verifier, verify, verify_batch

__all__ = ["Clip", "Composite", "Gate", "WeightedSum", "combine_status", "describe"]


def combine_status(statuses: Sequence[Status]) -> Status:
    """The status of a composite: a machinery failure outranks an unscorable
    reference, which outranks any score; CORRECT only when every leaf is."""
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
        out: dict[str, Verifier] = {}
        for key, child in self.children.items():
            if isinstance(child, Composite):
                out.update({_join(key, k): v for k, v in child.leaves().items()})
            else:
                out[key] = child
        return out

    def child_score(self, key: str, scores: Mapping[str, float]) -> float:
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
        return self._verdict({k: verify(v, completion, problem) for k, v in self.leaves().items()})

    def batch(self, completions: Sequence[str], problems: Sequence[Problem]) -> list[Verdict]:
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
