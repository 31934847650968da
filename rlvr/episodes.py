"""Multi-step episodes on the same ``gymnasium.Env``: conversations with tool results or feedback.

The contract (docs/multiturn.md):

- ``reset(seed=, options=)`` poses a problem and returns the first observation,
  the conversation so far: a tuple of ``{"role", "content"}`` messages.
- ``step(assistant_message)`` takes the assistant's turn as text and returns
  ``(observation, reward, terminated, truncated, info)``: the *new* messages (a
  tool result, a user turn; ``()`` when there is nothing more to say), the reward
  of this turn, ``terminated`` when the episode has ended on its own terms, and
  ``truncated`` when it hit ``max_turns``. The episode's return is the sum of its
  turns' rewards.

:class:`EpisodeEnv` is a :class:`rlvr.core.BanditEnv`: problems, splits, reset
options, the reward and its one scoring path (``score_many``) are the bandit's.
A turn that ends the episode with an answer is scored by that reward, so a
one-turn episode is exactly the bandit step. Subclasses implement
:meth:`EpisodeEnv.respond`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rlvr.core import BanditEnv

__all__ = ["EpisodeEnv", "Response", "message"]


def message(role: str, content: str) -> dict[str, str]:
    """A chat message."""
    return {"role": role, "content": content}


@dataclass(frozen=True)
class Response:
    """What the environment says to one assistant turn.

    Attributes:
        observation: the new messages (``()`` when the episode ends with nothing to add).
        reward: this turn's reward.
        terminated: the episode is over (answered, solved, forfeited).
        info: the turn's info; scored turns carry :func:`rlvr.core.verdict_info`'s keys.
    """

    observation: tuple[dict[str, str], ...] = ()
    reward: float = 0.0
    terminated: bool = False
    info: dict[str, Any] = field(default_factory=dict)


class EpisodeEnv(BanditEnv):
    """Base class of multi-step environments; observations are chat messages.

    Args:
        max_turns: assistant turns per episode; the episode is ``truncated`` after
            the last one unless that turn ended it. 1 makes a bandit of any episode.
        *args, **kwargs: the other bases' (``DatasetEnv``'s problems), and :class:`rlvr.core.BanditEnv`'s (``reward``, ``max_prompt_chars``, ...);
            ``prompt_format`` is always ``"chat"``.

    The step info has ``turn`` (1-based) and whatever :meth:`respond` adds
    (``tool_calls``, ``tool_errors`` for tool environments); a turn that is scored
    adds ``status``, ``scored``, ``components`` and ``details``.
    """

    def __init__(self, *args: Any, max_turns: int = 4, **kwargs: Any) -> None:
        if not (isinstance(max_turns, int) and max_turns >= 1):
            raise ValueError(f"max_turns must be an integer >= 1, got {max_turns!r}")
        kwargs["prompt_format"] = "chat"
        super().__init__(*args, **kwargs)
        self.max_turns = max_turns
        self.turns = 0
        self.history: list[dict[str, str]] = []
        self.done = False
        self.episode_return = 0.0

    # -- for subclasses -----------------------------------------------------------
    def respond(self, action: str) -> Response:
        """The environment's answer to the assistant turn ``action`` (``self.history`` holds the turns before)."""
        raise NotImplementedError

    def score(self, action: str) -> tuple[float, dict[str, Any]]:
        """``(reward, info)`` of ``action`` as a final answer to the posed problem (the bandit's scoring path)."""
        ((reward, info),) = self.score_many([self.problem], [action])
        return reward, info

    # -- gymnasium API ------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Pose a problem; returns ``(messages, info)`` as :meth:`rlvr.core.BanditEnv.reset`."""
        observation, info = super().reset(seed=seed, options=options)
        self.turns, self.history, self.done, self.episode_return = 0, list(observation), False, 0.0
        return observation, info

    def step(self, action: str):
        """Take one assistant turn.

        Returns:
            ``(new messages, reward, terminated, truncated, info)``.

        Raises:
            RuntimeError: before ``reset``, or after the episode ended.
            TypeError: ``action`` is not a ``str``.
            ValueError: ``action`` is longer than ``max_completion_chars``.
        """
        if self.problem is None:
            raise RuntimeError("step() before reset(): call env.reset() to pose a problem first")
        if self.done:
            raise RuntimeError("this episode is over (terminated or truncated); call env.reset() for the next one")
        self._check_action(action, "turn", "the assistant's turn as text")
        self.turns += 1
        response = self.respond(action)
        terminated = bool(response.terminated)
        truncated = not terminated and self.turns >= self.max_turns
        self.done = terminated or truncated
        self.history.append(message("assistant", action))
        observation = tuple(response.observation)
        self.history.extend(observation)
        self.episode_return += float(response.reward)
        info = {**response.info, "turn": self.turns}
        return observation, float(response.reward), terminated, truncated, info

    def render(self) -> str | None:
        """The conversation so far as text with ``render_mode="ansi"``, else ``None``."""
        if self.render_mode != "ansi":
            return None
        if self.problem is None:
            return "(no problem posed yet: call reset())"
        lines = [f"[{self.problem.id}] turn {self.turns}/{self.max_turns}, return {self.episode_return:g}"]
        lines += [f"{m['role']}: {m['content']}" for m in self.history]
        return "\n".join(lines) + "\n"
