"""Evaluation on held-out problems: greedy accuracy, pass@k, per-component reward rates.

Scoring goes through the environment (``BatchedEnv.step``), the same path as
training, so an evaluation and a training reward can never disagree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlvr.batched import BatchedEnv
from rlvr.rollout import RolloutEngine, SamplingParams, derive_seed
from rlvr.types import Problem

__all__ = ["EvalReport", "evaluate", "evaluate_episodes", "pass_at_k"]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` are correct (Chen et al., 2021).

    ``1 - C(n - c, k) / C(n, k)``.

    Raises:
        ValueError: ``k > n``.
    """
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@dataclass
class EvalReport:
    """What ``rlvr eval`` prints and training logs as ``eval/...``.

    ``accuracy``: share of problems whose greedy completion earned status CORRECT
    (full credit on every reward component). ``components``: mean score of each
    reward leaf under greedy decoding (e.g. ``answer/correct``, ``format``).
    ``pass_at``: unbiased pass@k from sampled completions, keyed by k.
    """

    n: int
    accuracy: float
    mean_reward: float
    components: dict[str, float]
    response_length: float
    truncated_fraction: float
    pass_at: dict[int, float] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def merge(cls, reports: Sequence[EvalReport], keep_samples: int = 8) -> EvalReport:
        """One report from reports on disjoint problems (data-parallel ranks' shares), weighted by problem count.

        Every figure is a mean over problems, so the merged one equals the report
        on all the problems at once. Samples are the first reports' first ones.
        """
        if len(reports) == 1:
            return reports[0]
        n = sum(r.n for r in reports)

        def mean(values: list[tuple[float, int]]) -> float:
            weight = sum(w for _, w in values)
            return sum(v * w for v, w in values) / weight if weight else math.nan

        live = [r for r in reports if r.n]
        keys = dict.fromkeys(k for r in live for k in r.components)
        ks = dict.fromkeys(k for r in live for k in r.pass_at)
        return cls(
            n=n,
            accuracy=mean([(r.accuracy, r.n) for r in live]),
            mean_reward=mean([(r.mean_reward, r.n) for r in live]),
            components={k: mean([(r.components[k], r.n) for r in live if k in r.components]) for k in keys},
            response_length=mean([(r.response_length, r.n) for r in live]) if live else 0.0,
            truncated_fraction=mean([(r.truncated_fraction, r.n) for r in live]) if live else 0.0,
            pass_at={k: mean([(r.pass_at[k], r.n) for r in live if k in r.pass_at]) for k in ks},
            samples=[s for r in reports for s in r.samples][:keep_samples],
        )

    def flat(self) -> dict[str, float]:
        """The report as flat ``eval/...`` metrics for logging (``samples`` are left out)."""
        out = {
            "eval/accuracy": self.accuracy,
            "eval/mean_reward": self.mean_reward,
            "eval/response_length": self.response_length,
            "eval/truncated_fraction": self.truncated_fraction,
        }
        out.update({f"eval/{k}": v for k, v in self.components.items()})
        out.update({f"eval/pass@{k}": v for k, v in self.pass_at.items()})
        return out


def evaluate(
    engine: RolloutEngine,
    env: BatchedEnv,
    problems: Sequence[Problem],
    *,
    max_new_tokens: int,
    pass_k: Sequence[int] = (),
    temperature: float = 1.0,
    batch_size: int = 32,
    seed: int = 0,
    keep_samples: int = 8,
) -> EvalReport:
    """Greedy accuracy on ``problems``; with ``pass_k``, also ``max(pass_k)`` samples each."""
    rewards, statuses, lengths, truncated = [], [], [], []
    components: dict[str, list[float]] = {}
    samples = []
    for start in range(0, len(problems), batch_size):
        chunk = list(problems[start : start + batch_size])
        rollouts = engine.generate(
            [p.prompt for p in chunk], SamplingParams(max_new_tokens=max_new_tokens, greedy=True)
        )
        result = env.step(chunk, [[t] for t in rollouts.texts], on_error="record")
        for i, problem in enumerate(chunk):
            info = result.infos[i][0]
            rewards.append(float(result.rewards[i][0]))
            statuses.append(info["status"])
            for key, value in info.get("components", {}).items():
                components.setdefault(key, []).append(value)
            lengths.append(int(rollouts.completion_mask[i].sum()))
            truncated.append(rollouts.finish_reasons[i] == "length")
            if len(samples) < keep_samples:
                samples.append(
                    {
                        "problem_id": problem.id,
                        "prompt": problem.prompt,
                        "completion": rollouts.texts[i],
                        "reward": rewards[-1],
                        "components": info.get("components", {}),
                    }
                )
    report = EvalReport(
        n=len(problems),
        accuracy=float(np.mean([s == "correct" for s in statuses])) if statuses else math.nan,
        mean_reward=float(np.mean(rewards)) if rewards else math.nan,
        components={k: float(np.mean(v)) for k, v in components.items()},
        response_length=float(np.mean(lengths)) if lengths else 0.0,
        truncated_fraction=float(np.mean(truncated)) if truncated else 0.0,
        samples=samples,
    )
    if pass_k:
        n_samples = max(pass_k)
        per_problem = max(1, batch_size // n_samples)
        correct_counts = []
        for start in range(0, len(problems), per_problem):
            chunk = list(problems[start : start + per_problem])
            params = SamplingParams(
                n=n_samples, max_new_tokens=max_new_tokens, temperature=temperature, seed=derive_seed(seed, start)
            )
            rollouts = engine.generate([p.prompt for p in chunk], params)
            result = env.step(chunk, rollouts.groups(), on_error="record")
            correct_counts += [sum(info["status"] == "correct" for info in row) for row in result.infos]
        report.pass_at = {
            k: float(np.mean([pass_at_k(n_samples, c, k) for c in correct_counts])) for k in sorted(pass_k)
        }
    return report


def evaluate_episodes(
    model: Any,
    tokenizer: Any,
    make_env: Callable[[], Any],
    problems: Sequence[Problem],
    *,
    max_new_tokens: int,
    max_total_tokens: int,
    chat_template: bool = True,
    autocast: Any = None,
    batch_size: int = 32,
    keep_samples: int = 8,
) -> EvalReport:
    """Greedy episodes of a multi-step environment, one per problem (:func:`rlvr.episode_rollout.generate_episodes`).

    ``accuracy`` is the share of episodes whose final turn earned status CORRECT;
    ``mean_reward`` the mean return; ``components`` the episode and tool figures of
    :func:`rlvr.episode_rollout.episode_metrics` (turns, tool calls per episode,
    tool success rate, ...), weighted by problem count; ``response_length`` the
    policy's tokens per episode. ``make_env`` builds one environment per episode.
    """
    from rlvr.episode_rollout import episode_metrics, generate_episodes

    envs = [make_env() for _ in range(min(batch_size, len(problems)))]
    solved, returns, lengths, truncated, samples = [], [], [], [], []
    figures: dict[str, list[tuple[float, int]]] = {}
    for start in range(0, len(problems), batch_size):
        chunk = list(problems[start : start + batch_size])
        episodes = generate_episodes(
            model, tokenizer, envs[: len(chunk)], chunk, SamplingParams(n=1, greedy=True, max_new_tokens=max_new_tokens),
            max_total_tokens=max_total_tokens, chat_template=chat_template, autocast=autocast,
        )  # fmt: skip
        for i, problem in enumerate(chunk):
            infos = episodes.infos[i]
            solved.append(bool(infos) and infos[-1].get("status") == "correct")
            returns.append(float(episodes.returns[i]))
            lengths.append(int(episodes.completion_mask[i].sum()))
            truncated.append(episodes.finish_reasons[i] == "length")
            if len(samples) < keep_samples:
                samples.append(
                    {
                        "problem_id": problem.id,
                        "prompt": problem.prompt,
                        "turns": episodes.turn_texts[i],
                        "reward": returns[-1],
                    }
                )
        for key, value in episode_metrics(episodes).items():
            if key not in ("episode/return_mean", "episode/solved_fraction") and not math.isnan(value):
                figures.setdefault(key, []).append((value, len(chunk)))
    return EvalReport(
        n=len(problems),
        accuracy=float(np.mean(solved)) if solved else math.nan,
        mean_reward=float(np.mean(returns)) if returns else math.nan,
        components={k: sum(v * w for v, w in vs) / sum(w for _, w in vs) for k, vs in figures.items()},
        response_length=float(np.mean(lengths)) if lengths else 0.0,
        truncated_fraction=float(np.mean(truncated)) if truncated else 0.0,
        samples=samples,
    )
