"""The batched form of a bandit environment, for training: B problems, G completions each.

A thin layer over one :class:`~rlvr.core.BanditEnv`: problems are drawn by the
environment's own ``reset`` and scored by its own ``score_many``, so training and
``env.step`` can never disagree about a reward.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from rlvr.core import BanditEnv, prompt_text
from rlvr.types import Problem, VerifierError

__all__ = ["BatchResult", "BatchedEnv"]


@dataclass(frozen=True)
class BatchResult:
    """Rewards of B problems x G completions.

    Attributes:
        rewards: ``[B, G]`` float64; 0.0 where ``scored`` is False.
        scored: ``[B, G]`` bool; False for UNSCORABLE / ERROR verdicts and for
            verifier crashes recorded with ``on_error="record"``. The trainer
            excludes these from baselines and losses.
        infos: ``infos[b][g]``, the same dict ``env.step`` returns in ``info``.
        errors: ``(b, g, message)`` for every recorded verifier crash.
    """

    rewards: np.ndarray
    scored: np.ndarray
    infos: list[list[dict[str, Any]]]
    errors: list[tuple[int, int, str]]


class BatchedEnv:
    """Draw problems and score groups of completions through one environment."""

    def __init__(self, env: gym.Env) -> None:
        unwrapped = env.unwrapped
        if not isinstance(unwrapped, BanditEnv):
            raise TypeError(f"BatchedEnv needs an rlvr BanditEnv, got {type(unwrapped).__name__}")
        self.env: BanditEnv = unwrapped

    def reset(self, n: int, *, seed: int | None = None) -> list[Problem]:
        """Draw ``n`` problems; with ``seed`` the sequence is reproducible."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        problems = []
        for i in range(n):
            self.env.reset(seed=seed if i == 0 else None)
            problems.append(self.env.problem)
        return problems

    def distinct_problems(self, n: int, *, seed: int, max_draws: int | None = None) -> list[Problem]:
        """``n`` different problems (by prompt and reference), drawn reproducibly; fewer if the split is smaller.

        The reference counts because a game can pose one prompt for many problems
        (``rlvr/Guess-v0``'s secret is only in the reference).

        Draws go through the environment's own ``reset``, so they respect its
        split; at most ``max_draws`` (default ``50 * n``) are tried.
        """
        seen: dict[Any, Problem] = {}
        drawn = self.reset(1, seed=seed)
        for _ in range(max_draws or 50 * n):
            for p in drawn:
                seen.setdefault((prompt_text(p.prompt), repr(p.reference)), p)  # a chat prompt is keyed by its text
            if len(seen) >= n:
                break
            drawn = self.reset(1)
        return list(seen.values())[:n]

    def state_dict(self) -> dict[str, Any]:
        """The position of the environment's problem stream (its RNG), for checkpoints."""
        return {"rng": self.env.np_random.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the problem stream from :meth:`state_dict`."""
        self.env.np_random.bit_generator.state = state["rng"]

    def step(
        self,
        problems: Sequence[Problem],
        completions: Sequence[Sequence[str]],
        *,
        on_error: str = "raise",
    ) -> BatchResult:
        """Score ``completions[b][g]`` against ``problems[b]``.

        ``on_error="raise"`` propagates a verifier crash (naming the problem);
        ``"record"`` marks that sample unscored, keeps its message in ``errors``
        and ``info["error"]``, and scores the rest.
        """
        if on_error not in ("raise", "record"):
            raise ValueError(f"on_error must be 'raise' or 'record', got {on_error!r}")
        if len(problems) != len(completions):
            raise ValueError(f"{len(problems)} problems but {len(completions)} groups of completions")
        flat = [
            (b, g, p, c)
            for b, (p, group) in enumerate(zip(problems, completions, strict=True))
            for g, c in enumerate(group)
        ]
        for b, g, _, c in flat:
            if not isinstance(c, str):
                raise TypeError(f"completions[{b}][{g}] must be str, got {type(c).__name__}")
        try:
            scored = self.env.score_many([p for _, _, p, _ in flat], [c for *_, c in flat])
        except VerifierError:
            if on_error == "raise":
                raise
            scored = [self._score_one(p, c) for _, _, p, c in flat]  # isolate the failing items

        rewards = [np.zeros(len(group)) for group in completions]
        mask = [np.zeros(len(group), dtype=bool) for group in completions]
        infos: list[list[dict[str, Any]]] = [[{} for _ in group] for group in completions]
        errors = []
        for (b, g, _, _), (reward, info) in zip(flat, scored, strict=True):
            infos[b][g] = info
            if "error" in info:
                errors.append((b, g, info["error"]))
            elif info["scored"]:
                rewards[b][g], mask[b][g] = reward, True
        return BatchResult(_stack(rewards), _stack(mask), infos, errors)

    def _score_one(self, problem: Problem, completion: str) -> tuple[float, dict[str, Any]]:
        try:
            return self.env.score_many([problem], [completion])[0]
        except VerifierError as exc:
            return 0.0, {
                "problem_id": problem.id,
                "status": "error",
                "scored": False,
                "components": {},
                "error": str(exc),
            }


def _stack(rows: list[np.ndarray]) -> np.ndarray:
    """[B, G] when every group has G completions; ragged groups stay an object array."""
    if len({len(r) for r in rows}) == 1:
        return np.stack(rows)
    out = np.empty(len(rows), dtype=object)
    out[:] = rows
    return out
