"""Single-step bandit environments with the gymnasium API.

``reset()`` draws a problem and returns its prompt; ``step(completion)`` scores the
completion with the environment's reward (a verifier or a composite of verifiers)
and ends the episode: ``(prompt, reward, terminated=True, truncated=False, info)``.

Scoring has one path, :meth:`BanditEnv.score_many`; ``step`` and the batched form
(:class:`rlvr.batched.BatchedEnv`) both go through it.

Subclass :class:`ProceduralEnv` (problems generated from a seed, no files) or
:class:`DatasetEnv` (a fixed list of problems), or :class:`BanditEnv` directly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from rlvr.rewards import Composite, as_verifier, verify_batch
from rlvr.spaces import UnicodeText, chat_space
from rlvr.types import Problem, Verdict, Verifier

__all__ = ["BanditEnv", "DatasetEnv", "ProceduralEnv", "SelfCheckError", "prompt_text", "verdict_info"]


class SelfCheckError(RuntimeError):
    """The environment's reward failed its start-up check (see :meth:`BanditEnv.self_check`)."""


_RESET_OPTIONS = {"problem", "problem_id"}
DEFAULT_MAX_PROMPT_CHARS = 65_536
# 1 Mi characters: far beyond what a rollout of a few thousand tokens produces,
# but a hard bound so a runaway string is an error, not an hour in a verifier.
DEFAULT_MAX_COMPLETION_CHARS = 1 << 20


def _plain(value: Any) -> Any:
    """A fresh, plain-Python deep copy (mappingproxy -> dict, tuple -> list)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def verdict_info(problem: Problem, verdict: Verdict, reward_fn: Verifier) -> dict[str, Any]:
    """The ``info`` dict of a step: status, per-component scores and details.

    ``info["components"]`` maps each leaf verifier's name to its score; for a
    composite reward ``reward == reward_fn.combine(info["components"])``.
    """
    if isinstance(reward_fn, Composite):
        components = {k: v["score"] for k, v in verdict.details["components"].items()}
    else:
        components = {getattr(reward_fn, "name", None) or type(reward_fn).__name__: verdict.score}
    return {
        "problem_id": problem.id,
        "status": verdict.status.value,
        "scored": verdict.status.scored,
        "components": components,
        "details": _plain(verdict.details),
    }


class BanditEnv(gym.Env):
    """Base class: one problem per episode, one completion per problem.

    Args:
        reward: the verifier (or composite) that scores completions; a registered
            verifier name also works. ``None`` takes :meth:`default_reward`.
        max_prompt_chars / max_completion_chars: the bounds of the observation and
            action spaces, in characters. A completion beyond the bound is an
            invalid action (ValueError), not a zero reward.
        prompt_format: ``"text"`` (observations are ``str``) or ``"chat"``
            (observations are tuples of ``{"role", "content"}`` dicts).
        render_mode: ``None`` or ``"ansi"`` (``render()`` returns the episode as text).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(
        self,
        *,
        reward: Verifier | str | None = None,
        max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS,
        max_completion_chars: int = DEFAULT_MAX_COMPLETION_CHARS,
        prompt_format: str = "text",
        render_mode: str | None = None,
    ) -> None:
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode {render_mode!r} is not one of {self.metadata['render_modes']} or None")
        if prompt_format not in ("text", "chat"):
            raise ValueError(f"prompt_format must be 'text' or 'chat', got {prompt_format!r}")
        self.render_mode = render_mode
        self.prompt_format = prompt_format
        self.reward_fn: Verifier = self._resolve_reward(reward)
        self.observation_space = (
            UnicodeText(max_prompt_chars, min_length=1) if prompt_format == "text" else chat_space(max_prompt_chars)
        )
        self.action_space = UnicodeText(max_completion_chars)
        self.problem: Problem | None = None
        self._last: tuple[str, float, dict[str, Any]] | None = None

    # -- for subclasses -----------------------------------------------------------
    def default_reward(self) -> Verifier:
        """The reward used when none is given (``reward=None``); environments that have one override this.

        Raises:
            NotImplementedError: the environment has no default reward.
        """
        raise NotImplementedError(f"{type(self).__name__} has no default reward; pass reward=...")

    def draw_problem(self, rng: np.random.Generator) -> Problem:
        """Draw the next problem using only ``rng`` (seeded by ``reset``)."""
        raise NotImplementedError

    def problem_from_id(self, problem_id: str) -> Problem:
        """The problem with id ``problem_id``, for ``reset(options={"problem_id": ...})``.

        Raises:
            KeyError: the id is unknown; the base class cannot look any problem up.
        """
        raise KeyError(f"{type(self).__name__} cannot look problems up by id")

    def system_prompt(self) -> str | None:
        """A system message this environment suggests to a chat policy, or ``None``.

        It shows how an answer should look (a worked example of the format), so a
        policy that has never seen the format can earn reward from its first
        samples. ``rlvr train`` uses it with ``model.system_prompt: auto``. It must
        not reveal the answer of any problem of the environment, in either split.
        """
        return None

    def known_answers(self, problem: Problem) -> tuple[list[str], list[str]] | None:
        """Completions that must score full reward and ones that must score 0.

        Returns ``(good, bad)`` for :meth:`self_check`, or ``None`` when the
        environment cannot say.
        """
        return None

    def self_check(self, n: int = 3, seed: int = 0) -> int:
        """Score known-good and known-bad completions of ``n`` drawn problems.

        Raises :class:`SelfCheckError` when a right answer does not earn full
        reward or a wrong one earns anything: a grader that fails open must stop a
        run before it trains on noise. Returns how many completions were checked.
        """
        rng = np.random.default_rng(seed)
        checked = 0
        for _ in range(n if type(self).known_answers is not BanditEnv.known_answers else 0):
            problem = self.draw_problem(rng)
            answers = self.known_answers(problem)
            if answers is None:  # this problem (or this environment) has no known answers
                continue
            good, bad = answers
            for completion, want in [(c, "good") for c in good] + [(c, "bad") for c in bad]:
                ((reward, info),) = self.score_many([problem], [completion])
                ok = info["status"] == "correct" if want == "good" else reward == 0.0
                if not ok:
                    raise SelfCheckError(
                        f"{type(self).__name__}: the reward scored a known-{want} completion {completion[:80]!r} "
                        f"for problem {problem.id!r} as {reward:g} ({info['status']}); refusing to train on it"
                    )
                checked += 1
        return checked

    # -- gymnasium API ------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode: pose a problem and return its prompt.

        Args:
            seed: seeds the environment's RNG (gymnasium's ``reset(seed=...)``).
            options: ``{"problem": Problem}`` poses that problem, ``{"problem_id": id}``
                looks one up (:meth:`problem_from_id`); without either, one is drawn.

        Returns:
            ``(observation, info)``: the prompt (a ``str``, or a tuple of messages with
            ``prompt_format="chat"``) and ``{"problem_id": ..., "meta": ...}``.

        Raises:
            ValueError: an unknown option, or a prompt that does not fit the observation space.
            TypeError: ``options["problem"]`` is not an :class:`rlvr.Problem`.
        """
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - _RESET_OPTIONS
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; known: {sorted(_RESET_OPTIONS)}")
        if "problem" in options:
            problem = options["problem"]
            if not isinstance(problem, Problem):
                raise TypeError(f"options['problem'] must be an rlvr.Problem, got {type(problem).__name__}")
        elif "problem_id" in options:
            problem = self.problem_from_id(str(options["problem_id"]))
        else:
            problem = self.draw_problem(self.np_random)
        observation = self._observation(problem)
        if observation not in self.observation_space:
            raise ValueError(
                f"problem {problem.id!r}: its prompt does not fit the observation space "
                f"{self.observation_space} (raise max_prompt_chars or check prompt_format)"
            )
        self.problem, self._last = problem, None
        return observation, {"problem_id": problem.id, "meta": _plain(problem.meta)}

    def step(self, action: str):
        """Score ``action``, the completion text, and end the episode.

        Returns:
            ``(observation, reward, terminated=True, truncated=False, info)``: the
            observation is the prompt again, ``info`` is :func:`verdict_info`'s dict.

        Raises:
            RuntimeError: no problem is posed, or this episode has already been stepped.
            TypeError: ``action`` is not a ``str``.
            ValueError: the completion is longer than ``max_completion_chars``.
            rlvr.VerifierError: a verifier raised (see :meth:`score_many`).
        """
        if self.problem is None:
            raise RuntimeError("step() before reset(): call env.reset() to pose a problem first")
        if self._last is not None:
            raise RuntimeError(
                "this single-step episode is over (terminated=True); call env.reset() to pose the next problem"
            )
        self._check_action(action, "completion", "the completion text")
        ((reward, info),) = self.score_many([self.problem], [action])
        self._last = (action, reward, info)
        return self._observation(self.problem), reward, True, False, info

    def _check_action(self, action: Any, name: str, described: str) -> None:
        """A text action within the action space, or a TypeError / ValueError that says which bound it broke."""
        if not isinstance(action, str):
            raise TypeError(f"the action is {described} (str), got {type(action).__name__}")
        if action not in self.action_space:
            raise ValueError(
                f"{name} has {len(action)} characters; this environment accepts at most "
                f"{self.action_space.max_length} (max_completion_chars)"
            )

    def render(self) -> str | None:
        """The episode as text with ``render_mode="ansi"``, else ``None``.

        The text is the prompt, then, once stepped, the completion and its reward.
        """
        if self.render_mode != "ansi":
            return None
        if self.problem is None:
            return "(no problem posed yet: call reset())"
        text = f"[{self.problem.id}]\n{prompt_text(self.problem.prompt)}\n"
        if self._last is not None:
            completion, reward, info = self._last
            text += f"--- completion ---\n{completion}\n--- reward {reward:g} ({info['status']}) {info['components']}\n"
        return text

    # -- scoring: the one path ----------------------------------------------------
    def score_many(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[tuple[float, dict[str, Any]]]:
        """``(reward, info)`` for ``completions[i]`` against ``problems[i]``.

        Raises :class:`rlvr.VerifierError` naming the problem when a verifier raises:
        a crash is never swallowed as a zero reward.
        """
        verdicts = verify_batch(self.reward_fn, completions, problems)
        return [(v.score, verdict_info(p, v, self.reward_fn)) for p, v in zip(problems, verdicts, strict=True)]

    # -- helpers ------------------------------------------------------------------
    def _resolve_reward(self, reward: Verifier | str | None) -> Verifier:
        if reward is None:
            return self.default_reward()
        if isinstance(reward, str):
            from rlvr.registry import make_verifier

            return make_verifier(reward)
        return reward if isinstance(reward, Composite) else as_verifier(reward)

    def _observation(self, problem: Problem) -> str | tuple[dict[str, str], ...]:
        if self.prompt_format == "text":
            if not isinstance(problem.prompt, str):
                raise ValueError(
                    f"problem {problem.id!r} has a chat prompt but this environment has prompt_format='text'"
                )
            return problem.prompt
        if isinstance(problem.prompt, str):
            return ({"role": "user", "content": problem.prompt},)
        return tuple({"role": m["role"], "content": m["content"]} for m in problem.prompt)


def prompt_text(prompt: str | tuple) -> str:
    """A prompt as one string: itself, or a chat prompt's messages as ``role: content`` lines."""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{m['role']}: {m['content']}" for m in prompt)


class ProceduralEnv(BanditEnv):
    """Problems generated from an integer seed; needs no files.

    Subclasses implement :meth:`generate`. A problem's id is its seed, so
    ``reset(options={"problem_id": "42"})`` regenerates problem 42.

    Splits: a problem belongs to ``"test"`` when a hash of its prompt falls in the
    held-out fraction, else to ``"train"``; ``reset`` draws only from the split
    asked for, so held-out problems are never trained on even when two seeds
    generate the same problem. ``"all"`` draws from both.
    """

    holdout_fraction = 0.1
    _MAX_TRIES = 10_000

    def __init__(self, *, split: str = "train", **kwargs: Any) -> None:
        if split not in ("train", "test", "all"):
            raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
        self.split = split
        super().__init__(**kwargs)

    def generate(self, rng: np.random.Generator, problem_id: str) -> Problem:
        """The problem with id ``problem_id``, drawn from ``rng`` alone; subclasses implement it.

        ``rng`` is seeded with the id, so an id always regenerates the same problem.
        """
        raise NotImplementedError

    def split_of(self, problem: Problem) -> str:
        """``"test"`` when a hash of the problem's prompt falls in the held-out fraction, else ``"train"``."""
        digest = hashlib.sha256(prompt_text(problem.prompt).encode("utf-8", "surrogatepass")).digest()
        return "test" if int.from_bytes(digest[:8], "big") / 2**64 < self.holdout_fraction else "train"

    def problem_from_id(self, problem_id: str) -> Problem:
        """Regenerate a problem from its id, the integer seed.

        Raises:
            KeyError: the id is not an integer.
        """
        try:
            seed = int(problem_id)
        except ValueError:
            raise KeyError(f"{type(self).__name__} problem ids are integer seeds, got {problem_id!r}") from None
        return self.generate(np.random.default_rng(seed), problem_id)

    def draw_problem(self, rng: np.random.Generator) -> Problem:
        """Draw seeds from ``rng`` until the problem belongs to this environment's split.

        Raises:
            RuntimeError: no problem of the split in ``_MAX_TRIES`` draws.
        """
        for _ in range(self._MAX_TRIES):
            problem = self.problem_from_id(str(int(rng.integers(0, 2**63 - 1))))
            if self.split == "all" or self.split_of(problem) == self.split:
                return problem
        raise RuntimeError(
            f"{type(self).__name__}: no {self.split!r} problem in {self._MAX_TRIES} draws; "
            "the difficulty settings leave too few distinct problems for a held-out split"
        )


class DatasetEnv(BanditEnv):
    """Problems from a fixed list, drawn uniformly with replacement."""

    def __init__(self, problems: Sequence[Problem], **kwargs: Any) -> None:
        self.problems = list(problems)
        if not self.problems:
            raise ValueError(f"{type(self).__name__} needs at least one problem, got none")
        self._by_id: dict[str, Problem] = {}
        for p in self.problems:
            if p.id in self._by_id:
                raise ValueError(f"duplicate problem id {p.id!r}")
            self._by_id[p.id] = p
        super().__init__(**kwargs)

    def __len__(self) -> int:
        return len(self.problems)

    def draw_problem(self, rng: np.random.Generator) -> Problem:
        """A problem drawn uniformly, with replacement, using ``rng``."""
        return self.problems[int(rng.integers(len(self.problems)))]

    def problem_from_id(self, problem_id: str) -> Problem:
        """The problem with id ``problem_id``.

        Raises:
            KeyError: no problem has that id.
        """
        try:
            return self._by_id[problem_id]
        except KeyError:
            raise KeyError(f"no problem with id {problem_id!r} in {type(self).__name__}") from None
