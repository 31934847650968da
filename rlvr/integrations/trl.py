"""An rlvr environment (or verifier) as the reward of TRL's ``GRPOTrainer``.

``dataset(env, n)`` builds the training set: the prompt (text, or chat messages
for a chat environment) plus ``problem_id`` and ``reference`` columns.
``reward_function(env)`` is a callable TRL passes to ``reward_funcs``: TRL calls
it with ``prompts``, ``completions``, ``completion_ids`` and every dataset column
as keyword arguments (one value per completion), and it returns one reward per
completion::

    from trl import GRPOConfig, GRPOTrainer
    from rlvr.integrations.trl import dataset, reward_function

    env = rlvr.make("rlvr/Arithmetic-v0")
    trainer = GRPOTrainer(model=..., reward_funcs=reward_function(env), train_dataset=dataset(env, 512), args=GRPOConfig(...))

Scoring goes through the environment's own scoring path (``score_many``), so
TRL's rewards are rlvr's rewards. A completion whose verdict is not scored
(UNSCORABLE, ERROR, or a verifier crash) gets ``None``, TRL's "no reward", never 0.
TRL turns ``None`` into NaN; from TRL 1.6 on, where every reward function
returned ``None`` for a completion, it logs a warning, leaves the completion out
of its group's mean and standard deviation and of the logged reward statistics,
and sets its advantage to 0, so it neither pulls nor pushes the policy (older
releases count it as 0).

With TRL versions that pass ``log_metric`` / ``log_extra`` to reward functions,
the share of scored completions and each reward component's mean are logged as
``rlvr/scored_fraction`` and ``rlvr/component/<name>``, and the verdict status
goes to the completions table as ``rlvr_status``.

TRL is not imported here; ``datasets`` is imported only by :func:`dataset`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym

from rlvr.batched import BatchedEnv
from rlvr.core import BanditEnv, verdict_info
from rlvr.rewards import Composite, as_verifier, verifier_name, verify_batch
from rlvr.types import Problem, Verifier, VerifierError

__all__ = ["RewardFunction", "completion_text", "dataset", "reward_function", "rows"]

Scored = tuple[float | None, dict[str, Any]]


def completion_text(completion: str | Sequence[Mapping[str, Any]]) -> str:
    """The policy's text of a TRL completion.

    A plain-text completion is itself; a conversational one is a list of
    messages, whose assistant contents (string, or a list of ``{"type": "text"}``
    blocks) are joined with newlines: tool results and other roles are not the
    policy's words.
    """
    if isinstance(completion, str):
        return completion
    parts = []
    for message in completion:
        if message.get("role", "assistant") != "assistant":
            continue
        content = message.get("content") or ""
        if not isinstance(content, str):
            content = "".join(block.get("text", "") for block in content if block.get("type") == "text")
        parts.append(content)
    return "\n".join(parts)


def _prompt(problem: Problem, chat: bool) -> str | list[dict[str, str]]:
    if not chat:
        if not isinstance(problem.prompt, str):
            raise ValueError(f"problem {problem.id!r} has a chat prompt; build the dataset with chat=True")
        return problem.prompt
    if isinstance(problem.prompt, str):
        return [{"role": "user", "content": problem.prompt}]
    return [{"role": m["role"], "content": m["content"]} for m in problem.prompt]


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def rows(problems: Sequence[Problem], *, chat: bool = False) -> list[dict[str, Any]]:
    """One dataset row per problem: ``prompt``, ``problem_id`` and ``reference`` (as JSON text).

    ``chat=True`` gives conversational prompts (lists of messages), which TRL
    renders with the tokenizer's chat template; otherwise prompts are plain text.
    """
    return [
        {"prompt": _prompt(p, chat), "problem_id": p.id, "reference": json.dumps(_plain(p.reference))} for p in problems
    ]


def dataset(env: gym.Env, n: int, *, seed: int = 0, chat: bool | None = None) -> Any:
    """A ``datasets.Dataset`` of ``n`` distinct problems of ``env`` (fewer if the split is smaller).

    Args:
        env: an rlvr environment (``rlvr.make(...)``); problems are drawn through its
            own ``reset``, so its split is respected.
        n: how many problems.
        seed: seeds the draw.
        chat: conversational prompts; None follows the environment's ``prompt_format``.
    """
    from datasets import Dataset

    bandit = _bandit(env)
    problems = BatchedEnv(bandit).distinct_problems(n, seed=seed)
    return Dataset.from_list(rows(problems, chat=bandit.prompt_format == "chat" if chat is None else chat))


def _bandit(env: gym.Env) -> BanditEnv:
    unwrapped = env.unwrapped
    if not isinstance(unwrapped, BanditEnv):
        raise TypeError(f"expected an rlvr environment, got {type(unwrapped).__name__}")
    return unwrapped


class RewardFunction:
    """A TRL reward function over an rlvr environment or verifier; build it with :func:`reward_function`.

    Attributes:
        __name__: the name TRL logs the reward under (``rewards/<name>/mean``).
    """

    def __init__(
        self,
        name: str,
        score: Callable[[Sequence[Problem], Sequence[str]], list[tuple[float, dict[str, Any]]]],
        lookup: Callable[[str, str], Problem],
    ) -> None:
        self.__name__ = name
        self._score = score
        self._lookup = lookup

    def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[str | Sequence[Mapping[str, Any]]],
        problem_id: Sequence[str] | None = None,
        reference: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        """One reward per completion: the rlvr reward when scored, else None.

        Args:
            prompts: TRL's prompts (unused: the problem comes from ``problem_id``).
            completions: plain strings or lists of messages.
            problem_id: the dataset column, one per completion.
            reference: the dataset column (JSON text), used with a bare verifier.
            **kwargs: TRL's other arguments; ``log_metric`` and ``log_extra`` are used when given.

        Raises:
            ValueError: the dataset has no ``problem_id`` column.
        """
        if problem_id is None:
            raise ValueError(
                "the training dataset has no problem_id column: build it with rlvr.integrations.trl.dataset(env, n)"
            )
        refs = reference if reference is not None else [""] * len(problem_id)
        cache: dict[str, Problem] = {}  # a group's G completions share one problem
        for pid, ref in zip(problem_id, refs, strict=True):
            if pid not in cache:
                cache[pid] = self._lookup(pid, ref)
        problems = [cache[pid] for pid in problem_id]
        texts = [completion_text(c) for c in completions]
        scored = _score_isolated(self._score, problems, texts)
        _report(scored, kwargs.get("log_metric"), kwargs.get("log_extra"))
        return [reward for reward, _ in scored]


def _score_isolated(
    score: Callable[[Sequence[Problem], Sequence[str]], list[tuple[float, dict[str, Any]]]],
    problems: Sequence[Problem],
    texts: Sequence[str],
) -> list[Scored]:
    """``(reward or None, info)`` per completion; a verifier crash costs only its own item."""
    try:
        results = score(problems, texts)
    except VerifierError:
        results = []
        for problem, text in zip(problems, texts, strict=True):
            try:
                results.extend(score([problem], [text]))
            except VerifierError as exc:
                results.append((0.0, {"status": "error", "scored": False, "components": {}, "error": str(exc)}))
    return [(float(reward) if info["scored"] else None, info) for reward, info in results]


def _report(scored: Sequence[Scored], log_metric: Any, log_extra: Any) -> None:
    if log_extra is not None:
        log_extra("rlvr_status", [info["status"] for _, info in scored])
    if log_metric is None or not scored:
        return
    kept = [info for reward, info in scored if reward is not None]
    log_metric("rlvr/scored_fraction", len(kept) / len(scored))
    for name in sorted({k for info in kept for k in info["components"]}):
        values = [info["components"][name] for info in kept if name in info["components"]]
        log_metric(f"rlvr/component/{name}", sum(values) / len(values))


def reward_function(
    env_or_verifier: gym.Env | Verifier | Callable[..., Any], *, name: str | None = None
) -> RewardFunction:
    """The TRL reward function of an rlvr environment, or of a bare verifier.

    With an environment, problems are looked up by ``problem_id`` through the
    environment (``problem_from_id``) and scored by its reward. With a verifier
    (or a plain ``fn(completion, problem)``), the problem is rebuilt from the
    ``problem_id`` and ``reference`` columns of :func:`dataset`.

    Args:
        env_or_verifier: ``rlvr.make(...)``'s environment, or a verifier.
        name: the name TRL logs it under; default ``rlvr`` plus the environment's
            id or the verifier's name (e.g. ``rlvr/Arithmetic-v0``).
    """
    if isinstance(env_or_verifier, gym.Env):
        bandit = _bandit(env_or_verifier)
        spec = getattr(env_or_verifier, "spec", None)
        default = spec.id if spec is not None else f"rlvr/{type(bandit).__name__}"
        return RewardFunction(name or default, bandit.score_many, lambda pid, _ref: bandit.problem_from_id(pid))
    verifier = env_or_verifier if isinstance(env_or_verifier, Composite) else as_verifier(env_or_verifier)

    def score(problems: Sequence[Problem], texts: Sequence[str]) -> list[tuple[float, dict[str, Any]]]:
        verdicts = verify_batch(verifier, texts, problems)
        return [(v.score, verdict_info(p, v, verifier)) for p, v in zip(problems, verdicts, strict=True)]

    def lookup(pid: str, ref: str) -> Problem:
        return Problem(id=pid, prompt="", reference=json.loads(ref) if ref else None)

    return RewardFunction(name or f"rlvr/{verifier_name(verifier)}", score, lookup)
