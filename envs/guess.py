"""``rlvr/Guess-v0``: guess the number, told "higher" or "lower" after each wrong guess."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import numpy as np

from rlvr.core import ProceduralEnv
from rlvr.episodes import EpisodeEnv, Response, message
from rlvr.rewards import WeightedSum, as_verifier
from rlvr.types import Problem, Verifier

__all__ = ["GuessEnv"]

DEFAULT_PROMPT = (
    "I am thinking of a whole number from {low} to {high}. Guess it in at most {turns} tries. "
    "Reply with your guess as 'guess: N'. After each wrong guess I say 'higher' or 'lower'."
)
GUESS_PATTERN = r"(?i)guess\s*[:=]?\s*(-?\d{1,12})"


class GuessEnv(EpisodeEnv, ProceduralEnv):
    """Find a secret number from ``low`` to ``high`` in at most ``max_turns`` guesses.

    A turn's guess is the first match of ``pattern`` (default ``guess: N``). A right
    guess ends the episode with the reward (1); a wrong one is answered with a user
    message, ``higher`` or ``lower``, and earns ``-turn_penalty``; a turn without a
    guess forfeits the game (terminated, reward 0). After ``max_turns`` wrong
    guesses the episode is truncated. With ``high - low + 1 <= 2 ** max_turns - 1``
    binary search always wins.

    Args:
        low, high: the range of the secret (inclusive).
        max_turns: guesses allowed (default 7: enough for 1 to 100).
        turn_penalty: subtracted for each wrong guess (a per-turn reward; 0 by default).
        pattern: a regular expression whose first group is the guess.
        feedback: the words said after a guess that is too low and too high.
        prompt: the question, with ``{low}``, ``{high}`` and ``{turns}``.
        split, reward, ...: see :class:`rlvr.core.ProceduralEnv` and :class:`rlvr.episodes.EpisodeEnv`.

    The held-out split is chosen by a hash of the secret (the prompt is the same for all).
    Default reward: ``guess``, 1 when the turn's guess is the secret.
    """

    def __init__(
        self,
        low: int = 1,
        high: int = 100,
        max_turns: int = 7,
        turn_penalty: float = 0.0,
        pattern: str = GUESS_PATTERN,
        feedback: tuple[str, str] = ("higher", "lower"),
        prompt: str = DEFAULT_PROMPT,
        **kwargs: Any,
    ) -> None:
        if not (isinstance(low, int) and isinstance(high, int) and low <= high):
            raise ValueError(f"low and high must be integers with low <= high, got {low!r}, {high!r}")
        if turn_penalty < 0:
            raise ValueError(f"turn_penalty must be >= 0, got {turn_penalty}")
        self.low, self.high, self.turn_penalty = low, high, float(turn_penalty)
        self.pattern = re.compile(pattern)
        if self.pattern.groups < 1:
            raise ValueError("pattern needs a group that captures the guess")
        self.feedback, self.prompt = tuple(feedback), prompt
        super().__init__(max_turns=max_turns, **kwargs)

    def guess_of(self, text: str) -> int | None:
        """The turn's guess, or None when it has none (the first 4,000 characters are read)."""
        found = self.pattern.search(text[:4000])
        return int(found.group(1)) if found else None

    def default_reward(self) -> Verifier:
        """``guess``: 1 when the turn's guess is the secret, as a composite with one leaf."""

        def guess(completion: str, problem: Problem) -> float:
            return float(self.guess_of(completion) == int(problem.reference))

        return WeightedSum({"guess": as_verifier(guess, "guess")})

    def known_answers(self, problem: Problem) -> tuple[list[str], list[str]]:
        """The secret as a guess; a wrong guess and no guess."""
        secret = int(problem.reference)
        return [f"guess: {secret}"], [f"guess: {secret + 1}", f"{secret}", ""]

    def split_of(self, problem: Problem) -> str:
        """``"test"`` when a hash of the range and the secret falls in the held-out fraction."""
        key = f"{self.low}:{self.high}:{problem.reference}".encode()
        return (
            "test"
            if int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2**64 < self.holdout_fraction
            else "train"
        )

    def generate(self, rng: np.random.Generator, problem_id: str) -> Problem:
        """A secret drawn from ``rng``."""
        secret = int(rng.integers(self.low, self.high + 1))
        text = self.prompt.replace("{low}", str(self.low)).replace("{high}", str(self.high))
        text = text.replace("{turns}", str(self.max_turns))
        return Problem(id=problem_id, prompt=[message("user", text)], reference=str(secret))

    def respond(self, action: str) -> Response:
        """The reward for a right guess or none; ``higher`` or ``lower`` for a wrong one."""
        guess = self.guess_of(action)
        if guess is None or guess == int(self.problem.reference):
            reward, info = self.score(action)
            return Response((), reward, True, {**info, "guess": guess})
        word = self.feedback[0] if guess < int(self.problem.reference) else self.feedback[1]
        return Response(
            (message("user", word),), (-self.turn_penalty if self.turn_penalty else 0.0), False, {"guess": guess}
        )
