"""``reward-model``: scores from a learned reward model (a folder from ``rlvr train-rm``).

Unlike the rule-based verifiers, the score is **unbounded** (a Bradley-Terry logit)
unless ``normalize`` and ``clip`` bound it, and it says nothing about
correctness: every verdict is ``INCORRECT`` (scored, less than full credit)
unless ``correct_above`` names a threshold. A reward model can be fooled
(ref 002, "over-optimisation"): keep a reference-KL term when training against
it, and measure the policy with a rule-based verifier.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rlvr.types import Problem, Status, Verdict

__all__ = ["RewardModelVerifier", "RunningMoments"]


class RunningMoments:
    """Running mean and standard deviation over every score seen.

    Uses Welford's / Chan's parallel update, exact in one pass.
    """

    def __init__(self) -> None:
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def update(self, values: Sequence[float]) -> None:
        """Fold a batch of ``values`` into the running moments (an empty batch changes nothing)."""
        n = len(values)
        if n == 0:
            return
        mean = sum(values) / n
        m2 = sum((v - mean) ** 2 for v in values)
        delta, total = mean - self.mean, self.count + n
        self.mean += delta * n / total
        self.m2 += m2 + delta**2 * self.count * n / total
        self.count = total

    @property
    def std(self) -> float:
        """The population standard deviation of the values seen; 1.0 until two values are seen."""
        return math.sqrt(self.m2 / self.count) if self.count > 1 else 1.0


class RewardModelVerifier:
    """Score completions with a reward model, in batches, on its device.

    Args:
        path: a folder written by ``rlvr train-rm`` (or ``save_reward_model``); a
            loaded ``(reward_model, tokenizer)`` tuple is accepted too.
        batch_size: sequences per forward pass.
        device: ``auto`` (a CUDA GPU if there is one), ``cpu``, ``cuda:N``.
        normalize: subtract the running mean and divide by the running std of every
            score seen so far, updated with each batch before it is normalised (the
            first batch is normalised by its own moments).
        clip: after normalising, clamp to ``[-clip, clip]``.
        correct_above: a verdict is ``CORRECT`` when the final score is at least
            this (``None``: never; evaluation "accuracy" then reads 0).
        chat_template, max_length: how prompt and completion are encoded
            (:func:`rlvr.tokens.encode_texts`).
    """

    def __init__(
        self,
        path: Any,
        *,
        batch_size: int = 16,
        device: str = "auto",
        normalize: bool = False,
        clip: float | None = None,
        correct_above: float | None = None,
        chat_template: bool = True,
        max_length: int = 512,
    ) -> None:
        from rlvr.preference.reward_model import load_reward_model

        if clip is not None and clip <= 0:
            raise ValueError(f"clip must be > 0, got {clip}")
        if isinstance(path, tuple):
            self.model, self.tokenizer = path
        else:
            self.model, self.tokenizer = load_reward_model(path, device=device)
        self.model.eval().requires_grad_(False)
        self.batch_size, self.normalize, self.clip = batch_size, normalize, clip
        self.correct_above, self.chat_template, self.max_length = correct_above, chat_template, max_length
        self.moments = RunningMoments()

    def batch(self, completions: Sequence[str], problems: Sequence[Problem]) -> list[Verdict]:
        """Score completions with the reward model, normalising and clipping as configured.

        Args:
            completions: the completions to score.
            problems: the problem of each completion (its prompt is encoded with it).

        Returns:
            One verdict per completion, scored with the final score, ``CORRECT`` only
            when it reaches ``correct_above``, with the model's raw score in
            ``details["raw_score"]``.
        """
        from rlvr.preference.reward_model import score

        raw = score(
            self.model, self.tokenizer, [p.prompt for p in problems], list(completions),
            batch_size=self.batch_size, chat_template=self.chat_template, max_length=self.max_length,
        ).tolist()  # fmt: skip
        final = list(raw)
        if self.normalize:
            self.moments.update(raw)
            final = [(r - self.moments.mean) / (self.moments.std + 1e-6) for r in raw]
        if self.clip is not None:
            final = [max(-self.clip, min(self.clip, f)) for f in final]
        return [
            Verdict(
                score=f,
                status=Status.CORRECT
                if self.correct_above is not None and f >= self.correct_above
                else Status.INCORRECT,
                details={"raw_score": r},
            )
            for r, f in zip(raw, final, strict=True)
        ]

    def __call__(self, completion: str, problem: Problem) -> Verdict:
        """Score one completion; see :meth:`batch`."""
        return self.batch([completion], [problem])[0]
