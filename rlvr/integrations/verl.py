"""rlvr's rewards inside verl: ``compute_score`` for its custom reward hook, and its parquet layout.

verl reads training data from parquet files with one row per prompt::

    data_source   the environment id, e.g. "rlvr/GSM8K-v0" (it picks the reward)
    prompt        chat messages: [{"role": "user", "content": ...}]
    ability       "math", "code" or "instructions"
    reward_model  {"style": "rule", "ground_truth": <the reference>}
    extra_info    {"index", "split", "problem_id", "reference_json", "meta", "reward_options"}

``ground_truth`` is the problem's reference when it is a string (a math answer);
any other reference (a test suite, a list of constraints, a Countdown target)
travels as JSON text, with ``extra_info["reference_json"]`` set. ``meta`` and
``reward_options`` (an environment's reward settings, such as the instruction
mode or the code sandbox's limits) are JSON text too, so every row has the same
parquet schema.

verl's hook is a function named in its configuration::

    custom_reward_function:
      path: reward.py          # a file holding: from rlvr.integrations.verl import compute_score
      name: compute_score

verl calls ``compute_score(data_source=..., solution_str=..., ground_truth=...,
extra_info=...)`` once per response (``solution_str`` is the decoded response)
and takes a float or a dict with a ``"score"`` key; the other keys of the dict
are collected per sample as ``reward_extra_info``. verl has no "no reward": a
completion rlvr cannot score (UNSCORABLE, ERROR, a verifier crash) gets score 0
here and ``scored: False``, so the share of unscored samples can be watched.

The reward of a built-in environment is rebuilt from its data source (the same
composition as the environment's default reward; :func:`write_parquet` checks
that the environment uses it); any other registered environment is made once
per process with ``rlvr.make(data_source)`` and its reward used.

verl itself is never imported here.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym

from rlvr.batched import BatchedEnv
from rlvr.core import BanditEnv
from rlvr.rewards import describe, verify_batch
from rlvr.types import Problem, Status, Verifier, VerifierError

__all__ = ["BUILTINS", "compute_score", "problem_from_row", "reward_for", "rows", "write_parquet"]


def _boxed_math(options: Mapping[str, Any]) -> Verifier:
    from rlvr.verifiers.format import boxed_answer_reward
    from rlvr.verifiers.math_equivalence import MathVerifier

    return boxed_answer_reward(MathVerifier())


def _boxed_countdown(options: Mapping[str, Any]) -> Verifier:
    from rlvr.verifiers.countdown import CountdownVerifier
    from rlvr.verifiers.format import boxed_answer_reward

    return boxed_answer_reward(CountdownVerifier())


def _code_tests(options: Mapping[str, Any]) -> Verifier:
    from rlvr.rewards import WeightedSum
    from rlvr.verifiers.code_tests import CodeTests

    return WeightedSum({"tests": CodeTests(**options.get("reward_kwargs", {}))})


def _instructions(options: Mapping[str, Any]) -> Verifier:
    from rlvr.rewards import WeightedSum
    from rlvr.verifiers.instructions import InstructionFollowing

    return WeightedSum(
        {"constraints": InstructionFollowing(options.get("mode", "strict"), options.get("rules", "ifeval"))}
    )


def _ifbench(options: Mapping[str, Any]) -> Verifier:
    from rlvr.rewards import WeightedSum
    from rlvr.verifiers.ifbench import IFBenchFollowing

    return WeightedSum({"constraints": IFBenchFollowing(options.get("mode", "strict"), options.get("rules", "ifeval"))})


def _no_options(env: BanditEnv) -> dict[str, Any]:
    return {}


def _code_options(env: BanditEnv) -> dict[str, Any]:
    return {"reward_kwargs": dict(getattr(env, "reward_kwargs", {}))}


def _mode_options(env: BanditEnv) -> dict[str, Any]:
    return {"mode": env.mode, "rules": env.rules}


# data source -> (verl's ability, the reward from its options, the options of an environment)
BUILTINS: dict[str, tuple[str, Callable[[Mapping[str, Any]], Verifier], Callable[[BanditEnv], dict[str, Any]]]] = {
    "rlvr/Arithmetic-v0": ("math", _boxed_math, _no_options),
    "rlvr/GSM8K-v0": ("math", _boxed_math, _no_options),
    "rlvr/MATH-v0": ("math", _boxed_math, _no_options),
    "rlvr/Countdown-v0": ("math", _boxed_countdown, _no_options),
    "rlvr/HumanEval-v0": ("code", _code_tests, _code_options),
    "rlvr/MBPP-v0": ("code", _code_tests, _code_options),
    "rlvr/Instructions-v0": ("instructions", _instructions, _mode_options),
    "rlvr/IFEval-v0": ("instructions", _instructions, _mode_options),
    "rlvr/IFBench-v0": ("instructions", _ifbench, _mode_options),
}


@functools.lru_cache(maxsize=64)
def reward_for(data_source: str, options_json: str = "{}") -> Verifier:
    """The reward of ``data_source`` with its reward options (JSON text); built once per process.

    Raises:
        rlvr.NotRegisteredError: ``data_source`` is neither built in nor a registered environment.
    """
    if data_source in BUILTINS:
        return BUILTINS[data_source][1](json.loads(options_json))
    import rlvr

    return rlvr.make(data_source).unwrapped.reward_fn


def problem_from_row(ground_truth: Any, extra_info: Mapping[str, Any] | None) -> Problem:
    """The :class:`rlvr.Problem` a verl row stands for (verifiers never read the prompt, so it stays empty)."""
    info = extra_info or {}
    reference = json.loads(ground_truth) if info.get("reference_json") else ground_truth
    meta = json.loads(info["meta"]) if info.get("meta") else {}
    return Problem(id=str(info.get("problem_id") or "verl"), prompt="", reference=reference, meta=meta)


def compute_score(
    data_source: str, solution_str: str, ground_truth: Any, extra_info: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Score one verl response with the rlvr reward of ``data_source``.

    Args:
        data_source: the row's ``data_source``: an rlvr environment id.
        solution_str: the decoded response.
        ground_truth: the row's ``reward_model["ground_truth"]``.
        extra_info: the row's ``extra_info`` (verl may add keys such as ``num_turns``);
            without it, ``ground_truth`` is the reference as is.

    Returns:
        ``{"score": reward, "acc": completion fully correct, "scored": verdict scored}``;
        score 0 when not scored (verl has no "no reward").
    """
    info = extra_info or {}
    reward = reward_for(data_source, info.get("reward_options") or "{}")
    problem = problem_from_row(ground_truth, info)
    try:
        (verdict,) = verify_batch(reward, [solution_str], [problem])
    except VerifierError:  # a crash says nothing about the response: unscored, not a zero earned
        return {"score": 0.0, "acc": False, "scored": False}
    scored = verdict.status.scored
    return {"score": verdict.score if scored else 0.0, "acc": verdict.status is Status.CORRECT, "scored": scored}


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _messages(prompt: str | Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": m["role"], "content": m["content"]} for m in prompt]


def rows(env: gym.Env, n: int, *, seed: int = 0, data_source: str | None = None) -> list[dict[str, Any]]:
    """Rows in verl's layout for ``n`` distinct problems of ``env`` (fewer if its split is smaller).

    Args:
        env: an rlvr environment; problems are drawn through its own ``reset``.
        n: how many problems.
        seed: seeds the draw.
        data_source: the id the reward is rebuilt from; default the environment's id
            (``env.spec.id``, set by ``rlvr.make``).

    Raises:
        ValueError: no id is known, or the environment's reward is not the one
            :func:`compute_score` rebuilds for that id (a custom ``reward=``).
    """
    bandit = env.unwrapped
    if not isinstance(bandit, BanditEnv):
        raise TypeError(f"expected an rlvr environment, got {type(bandit).__name__}")
    spec = getattr(env, "spec", None)
    source = data_source or (spec.id if spec is not None else None)
    if source is None:
        raise ValueError("the environment has no id (make it with rlvr.make) and no data_source was given")
    ability, _, options_of = BUILTINS.get(source, ("rlvr", None, _no_options))
    options = json.dumps(options_of(bandit), sort_keys=True)
    if describe(reward_for(source, options)) != describe(bandit.reward_fn):
        raise ValueError(
            f"compute_score rebuilds {describe(reward_for(source, options))!r} for {source!r}, but this environment "
            f"scores with {describe(bandit.reward_fn)!r}; verl would train on another reward"
        )
    split = getattr(bandit, "split", "train")
    out = []
    for index, problem in enumerate(BatchedEnv(bandit).distinct_problems(n, seed=seed)):
        is_text = isinstance(problem.reference, str)
        out.append(
            {
                "data_source": source,
                "prompt": _messages(problem.prompt),
                "ability": ability,
                "reward_model": {
                    "style": "rule",
                    "ground_truth": problem.reference if is_text else json.dumps(_plain(problem.reference)),
                },
                "extra_info": {
                    "index": index,
                    "split": split,
                    "problem_id": problem.id,
                    "reference_json": not is_text,
                    "meta": json.dumps(_plain(problem.meta), default=str),
                    "reward_options": options,
                },
            }
        )
    return out


def write_parquet(env: gym.Env, path: str | Path, n: int, *, seed: int = 0, data_source: str | None = None) -> Path:
    """Write :func:`rows` to a parquet file verl reads (``data.train_files`` / ``data.val_files``); returns its path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows(env, n, seed=seed, data_source=data_source)), path)
    return path
