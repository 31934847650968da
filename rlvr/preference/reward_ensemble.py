"""``reward-model-ensemble``: several reward models' scores, less a multiple of their disagreement.

Coste, Anwar, Kirk and Krueger (2023), "Reward Model Ensembles Help Mitigate
Overoptimization": train K reward models on the same pairs from different seeds
and optimise a conservative combination of their scores. A policy's hack is a
text the pairs never showed; there the members extrapolate differently, their
spread grows, and the combined reward falls where a single model's would keep
rising. This module implements uncertainty-weighted optimisation (UWO):

    r(x, y) = mean_k z_k(x, y) - penalty * std_k z_k(x, y)

where ``z_k`` is member k's score, normalised by its own running mean and
standard deviation. ``penalty = 0`` is the plain ensemble mean.

Deviations from the paper:

- UWO there subtracts ``penalty`` times the members' *variance*; here it is their
  standard deviation, which has the score's own units, so ``penalty`` does not
  depend on how the scores are scaled.
- Each member is normalised by running moments of the scores it has given
  (Bradley-Terry fixes differences, not levels, so two members' raw logits are
  not comparable); the paper normalises each member once, on a reference set.
- The paper's worst-case rule (the lowest member) is not offered separately:
  with two members it equals UWO at ``penalty = 1``; with more it subtracts
  between about 0.7 and 1.4 standard deviations, depending on the scores.

Limits: the members share the pairs and the trunk's pretraining, so they agree
on whatever those teach wrongly; an ensemble catches only the errors that differ
between seeds. Scoring costs one forward pass per member.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from rlvr.preference.reward_model import check_reward_model_folder
from rlvr.preference.reward_verifier import RewardModelVerifier
from rlvr.types import Problem, Status, Verdict

__all__ = ["RewardEnsembleVerifier", "uncertainty_weighted"]


def uncertainty_weighted(z: np.ndarray, penalty: float) -> tuple[np.ndarray, dict[str, float]]:
    """UWO with a standard-deviation penalty: ``mean_k z - penalty * std_k z``.

    Args:
        z: ``[K, N]`` scores of K members for N completions, on a common scale.
        penalty: the multiple of the members' (population) standard deviation to
            subtract; ``>= 0``.

    Returns:
        ``([N] combined scores, stats)``, stats holding ``spread``: the mean over
        the N completions of the members' standard deviation.
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"z must be [K >= 2, N], got shape {z.shape}")
    if penalty < 0:
        raise ValueError(f"penalty must be >= 0, got {penalty}")
    spread = z.std(axis=0)  # [N]
    combined = z.mean(axis=0) - penalty * spread  # [N]
    return combined, {"spread": float(spread.mean()) if spread.size else 0.0}


class RewardEnsembleVerifier:
    """Score completions with K >= 2 reward models and combine them with :func:`uncertainty_weighted`.

    Args:
        paths: the members: folders written by ``rlvr train-rm``, or loaded
            ``(reward_model, tokenizer)`` tuples.
        penalty: how many of the members' standard deviations to subtract from
            their mean score (0: the plain mean).
        clip: after combining, clamp to ``[-clip, clip]``.
        correct_above: a verdict is ``CORRECT`` when the combined score is at
            least this (``None``: never).
        batch_size, device, chat_template, max_length: as for
            :class:`~rlvr.preference.reward_verifier.RewardModelVerifier`, per member.
    """

    def __init__(
        self,
        paths: Sequence[Any],
        *,
        penalty: float = 1.0,
        batch_size: int = 16,
        device: str = "auto",
        clip: float | None = None,
        correct_above: float | None = None,
        chat_template: bool = True,
        max_length: int = 512,
    ) -> None:
        if not isinstance(paths, list | tuple) or (paths and isinstance(paths[0], nn.Module)):
            raise TypeError("paths must be a list of reward models: folders or (reward_model, tokenizer) tuples")
        if len(paths) < 2:
            raise ValueError("paths must list at least two reward models (one model: the reward-model verifier)")
        if penalty < 0:
            raise ValueError(f"penalty must be >= 0, got {penalty}")
        if clip is not None and clip <= 0:
            raise ValueError(f"clip must be > 0, got {clip}")
        for path in paths:  # every folder checked before any model is loaded
            if not isinstance(path, tuple):
                check_reward_model_folder(path)
        self.members = [
            RewardModelVerifier(
                path,
                batch_size=batch_size,
                device=device,
                normalize=True,
                chat_template=chat_template,
                max_length=max_length,
            )
            for path in paths
        ]
        self.penalty, self.clip, self.correct_above = penalty, clip, correct_above

    def batch(self, completions: Sequence[str], problems: Sequence[Problem]) -> list[Verdict]:
        """Score with every member, normalise each by its own running moments, combine, clip.

        Returns:
            One verdict per completion, scored with the combined score, with the
            members' raw scores (``raw_scores``), their normalised scores
            (``member_scores``) and standard deviation (``spread``) in ``details``.
        """
        if len(completions) != len(problems):
            raise ValueError(f"{len(completions)} completions for {len(problems)} problems")
        before = [copy.copy(member.moments) for member in self.members]
        try:
            verdicts = [member.batch(completions, problems) for member in self.members]  # [K][N]
        except Exception:  # a caller that retries the batch must not count it twice in any member
            for member, moments in zip(self.members, before, strict=True):
                member.moments = moments
            raise
        z = np.array([[v.score for v in row] for row in verdicts]).reshape(len(self.members), len(completions))
        combined, _ = uncertainty_weighted(z, self.penalty)
        if self.clip is not None:
            combined = np.clip(combined, -self.clip, self.clip)
        spread = z.std(axis=0)
        return [
            Verdict(
                score=float(c),
                status=Status.CORRECT
                if self.correct_above is not None and c >= self.correct_above
                else Status.INCORRECT,
                details={
                    "raw_scores": [row[i].details["raw_score"] for row in verdicts],
                    "member_scores": z[:, i].tolist(),
                    "spread": float(spread[i]),
                },
            )
            for i, c in enumerate(combined)
        ]

    def __call__(self, completion: str, problem: Problem) -> Verdict:
        """Score one completion; see :meth:`batch`."""
        return self.batch([completion], [problem])[0]
