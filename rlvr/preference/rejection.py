"""Rejection sampling and best-of-N (ref 002).

Generate N completions per prompt, score them with any verifier or reward model
(through the environment), keep the best.

* :func:`sample_and_score` — the ``M x N`` reward matrix and its completions.
* :func:`select` — ``top_per_prompt`` (argmax of each row: every prompt represented)
  or ``top_k`` (the K best of the flattened matrix: higher quality, biased towards
  easy prompts), optionally above a ``min_reward``.
* :func:`write_sft` — the selection as an SFT-ready JSON-lines file
  (``{"prompt", "completion"}`` or chat ``{"messages"}``).
* :func:`best_of_n` — the inference helper: the best completion per prompt and a
  report of how much picking helps (mean reward of one sample vs of the best, and
  the share of prompts whose pick is CORRECT, a pass@N read through the scorer).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rlvr.rollout import SamplingParams, derive_seed
from rlvr.types import Problem

__all__ = ["BestOfN", "Scored", "best_of_n", "sample_and_score", "select", "write_sft"]


@dataclass
class Scored:
    """``M`` problems x ``N`` completions and their scores.

    Attributes:
        problems: the ``M`` problems.
        texts: the completions, ``texts[m][n]``.
        rewards: ``[M, N]`` rewards (``-inf`` where unscored, so it is never selected).
        correct: ``[M, N]``, whether each completion is CORRECT.
    """

    problems: list[Problem]
    texts: list[list[str]]
    rewards: np.ndarray
    correct: np.ndarray


def sample_and_score(
    engine: Any,
    env: Any,
    problems: Sequence[Problem],
    *,
    n: int,
    max_new_tokens: int = 256,
    temperature: float = 1.0,
    seed: int = 0,
    batch_prompts: int = 4,
) -> Scored:
    """Sample ``n`` completions for each problem and score them with ``env`` (a ``BatchedEnv``)."""
    texts, rewards, correct = [], [], []
    for start in range(0, len(problems), batch_prompts):
        chunk = list(problems[start : start + batch_prompts])
        params = SamplingParams(
            n=n, max_new_tokens=max_new_tokens, temperature=temperature, seed=derive_seed(seed, start)
        )
        rollouts = engine.generate([p.prompt for p in chunk], params)
        groups = rollouts.groups()
        result = env.step(chunk, groups, on_error="record")
        for b in range(len(chunk)):
            texts.append(groups[b])
            rewards.append(np.where(result.scored[b], result.rewards[b], -np.inf))
            correct.append(np.array([info["status"] == "correct" for info in result.infos[b]]))
    return Scored(
        list(problems),
        texts,
        np.array(rewards, dtype=float).reshape(len(problems), n),
        np.array(correct).reshape(len(problems), n),
    )


def select(
    scored: Scored,
    how: Literal["top_per_prompt", "top_k"] = "top_per_prompt",
    *,
    k: int | None = None,
    min_reward: float | None = None,
) -> list[tuple[int, int]]:
    """``(m, n)`` indices of the kept completions, best first for ``top_k``.

    Ties within a prompt go to the earliest sample (``argmax``); unscored samples
    are never kept.
    """
    r = scored.rewards
    if how == "top_per_prompt":
        picks = [(m, int(np.argmax(r[m]))) for m in range(len(r))]
    elif how == "top_k":
        if k is None or k <= 0:
            raise ValueError("top_k selection needs k > 0")
        flat = np.argsort(-r, axis=None, kind="stable")[:k]
        picks = [(int(i) // r.shape[1], int(i) % r.shape[1]) for i in flat]
    else:
        raise ValueError(f"how must be 'top_per_prompt' or 'top_k', got {how!r}")
    floor = -np.inf if min_reward is None else min_reward
    return [(m, j) for m, j in picks if np.isfinite(r[m, j]) and r[m, j] >= floor]


def write_sft(scored: Scored, picks: Sequence[tuple[int, int]], path: str | Path, *, chat: bool = False) -> Path:
    """Write the picked completions as SFT rows; each row also records its problem id and reward."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for m, j in picks:
            problem, text = scored.problems[m], scored.texts[m][j]
            meta = {"problem_id": problem.id, "reward": float(scored.rewards[m, j])}
            if chat:
                prompt = (
                    [{"role": "user", "content": problem.prompt}]
                    if isinstance(problem.prompt, str)
                    else [dict(x) for x in problem.prompt]
                )
                row = {"messages": [*prompt, {"role": "assistant", "content": text}], **meta}
            else:
                if not isinstance(problem.prompt, str):
                    raise ValueError("chat prompts need write_sft(..., chat=True)")
                row = {"prompt": problem.prompt, "completion": text, **meta}
            f.write(json.dumps(row) + "\n")
    return path


@dataclass
class BestOfN:
    """What picking the best of ``n`` gains.

    Attributes:
        n: samples per prompt.
        mean_reward: mean reward of all scored samples, to compare with ``best_reward``.
        best_reward: mean reward of the picks.
        sample_accuracy: share of all samples CORRECT, to compare with ``best_accuracy``.
        best_accuracy: share of prompts whose pick is CORRECT.
        any_correct: share of prompts with at least one CORRECT sample: what a perfect
            picker gets.
        best: the picked completions, one per prompt that has a scored sample.
    """

    n: int
    mean_reward: float
    best_reward: float
    sample_accuracy: float
    best_accuracy: float
    any_correct: float
    best: list[str] = field(default_factory=list)


def best_of_n(engine: Any, env: Any, problems: Sequence[Problem], *, n: int, **sampling: Any) -> BestOfN:
    """Sample ``n`` per problem, keep each problem's highest-scoring completion."""
    scored = sample_and_score(engine, env, problems, n=n, **sampling)
    picks = select(scored, "top_per_prompt")
    finite = scored.rewards[np.isfinite(scored.rewards)]
    best = [scored.texts[m][j] for m, j in picks]
    return BestOfN(
        n=n,
        mean_reward=float(finite.mean()) if finite.size else float("nan"),
        best_reward=float(np.mean([scored.rewards[m, j] for m, j in picks])) if picks else float("nan"),
        sample_accuracy=float(scored.correct.mean()),
        best_accuracy=float(np.mean([scored.correct[m, j] for m, j in picks])) if picks else 0.0,
        any_correct=float(scored.correct.any(axis=1).mean()),
        best=best,
    )
