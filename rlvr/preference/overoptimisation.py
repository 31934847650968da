"""Reward over-optimisation: a learned proxy's score and a gold verifier's, against KL to the reference.

Gao, Schulman and Hilton (2022, "Scaling laws for reward model over-optimization")
train a policy against a proxy reward model and watch a gold reward model: as the
policy moves away from its start, measured by ``d = sqrt(KL(pi || pi_init))``,
the proxy score keeps rising while the gold score rises, peaks and falls. Here the
gold standard is a rule-based verifier (a synthetic gold that is exact, not a
larger reward model), and the proxy is a reward model trained on pairs that
verifier labelled, so the whole curve is measured without human labels.

A point is measured on held-out problems from ``n`` samples per problem at the
training temperature, so KL, proxy and gold are averages over the same
completions drawn from the policy:

* ``kl``: ``E_{y ~ pi}[ sum_t log pi(y_t | .) - log pi_ref(y_t | .) ]``, the
  sequence-level KL in nats (the k1 estimator, unbiased for samples from pi);
* ``proxy``: the reward model's raw score (a logit: only differences mean much);
* ``gold``: the verifier's mean reward, and ``accuracy`` its share of correct
  verdicts; a sample it cannot score (a crash, an unscorable reply) counts as 0
  and wrong, so failing the verifier never raises the gold.

Deviation from the paper: Gao et al. fit functional forms to many reward-model
sizes; this module only measures and plots the points of each run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlvr.rollout import SamplingParams
from rlvr.types import Problem

__all__ = ["Point", "gold_peak", "measure", "plot_overoptimisation", "read_points", "write_point"]


@dataclass(frozen=True)
class Point:
    """One measurement of one run.

    Attributes:
        run: the run's name (e.g. ``"ppo beta=0.05"``); points of a run form a curve.
        beta: the run's KL coefficient.
        step: optimiser steps taken before the measurement.
        kl: mean sequence-level KL to the reference, in nats.
        proxy: mean raw reward-model score.
        gold: mean gold (verifier) reward.
        accuracy: share of samples the gold verifier called correct.
    """

    run: str
    beta: float
    step: int
    kl: float
    proxy: float
    gold: float
    accuracy: float


@torch.no_grad()
def measure(
    engine: Any,
    reference: Any,
    problems: Sequence[Problem],
    proxy: Callable[[list[str], list[Problem]], list[float]],
    gold_env: Any,
    *,
    n: int,
    max_new_tokens: int,
    temperature: float,
    seed: int,
    batch_prompts: int = 8,
) -> dict[str, float]:
    """KL, proxy and gold of ``n`` samples per problem from the policy behind ``engine``.

    Args:
        engine: the rollout engine of the policy (its ``sampler_logprobs`` are the
            policy's log-probs at ``temperature``).
        reference: the frozen reference :class:`rlvr.policy.Policy`, at ``temperature``.
        problems: held-out problems.
        proxy: raw reward-model scores of completions (``[N]`` floats).
        gold_env: a ``BatchedEnv`` whose reward is the gold verifier.
        n: samples per problem.
        max_new_tokens: the longest sample.
        temperature: the sampling temperature (the reference's too).
        seed: seeds the sampling (the chunk of problems from ``start`` on draws with
            ``seed + start``).
        batch_prompts: problems per generation call.

    Returns:
        ``{"kl", "proxy", "gold", "accuracy"}``.
    """
    if reference.temperature != temperature:
        raise ValueError(f"the reference's temperature {reference.temperature} is not the sampling's {temperature}")
    kls, proxies, golds, correct = [], [], [], []
    for start in range(0, len(problems), batch_prompts):
        chunk = list(problems[start : start + batch_prompts])
        params = SamplingParams(n=n, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed + start)
        rollouts = engine.generate([p.prompt for p in chunk], params)
        ref = reference.logprobs(rollouts.input_ids, rollouts.attention_mask, rollouts.prompt_len)  # [N, T]
        mask = rollouts.completion_mask.to(ref.dtype)
        kls += ((rollouts.sampler_logprobs.to(ref) - ref) * mask).sum(-1).tolist()  # [N]: sequence KL, k1
        repeated = [p for p in chunk for _ in range(n)]
        proxies += list(proxy(list(rollouts.texts), repeated))
        # A sample the verifier could not score counts as 0 and wrong: left out, it
        # would let a policy raise its gold by writing what the verifier fails on.
        result = gold_env.step(chunk, rollouts.groups(), on_error="record")
        golds += result.rewards.ravel().tolist()  # 0.0 where unscored
        correct += [info["status"] == "correct" for row in result.infos for info in row]
    return {
        "kl": float(np.mean(kls)),
        "proxy": float(np.mean(proxies)),
        "gold": float(np.mean(golds)),
        "accuracy": float(np.mean(correct)),
    }


def gold_peak(
    points: Sequence[Point], min_drop: float = 0.0, trained_on_gold: Collection[str] = ()
) -> dict[str, tuple[Point, bool | None]]:
    """Per run, the point of highest gold and whether the run over-optimised past it.

    A run over-optimised when a later point has a higher proxy score and a gold
    score more than ``min_drop`` below the peak: the proxy kept climbing while the
    gold fell. Each gold is a mean over samples, so a fall within its noise is no
    evidence: pass about two standard errors (``1 / sqrt(samples)`` bounds that
    for a reward in [0, 1]). Ties in gold go to the earliest point (the least KL
    spent for that gold).

    The runs named in ``trained_on_gold`` (a ceiling run against the verifier
    itself) get None instead of a verdict: their proxy is only watched, so a fall
    of their gold is the optimisation's own noise, not a proxy exploited. The
    threshold does not cover that noise either: it is measured per point, not
    across training runs.

    Raises:
        ValueError: ``min_drop`` is negative (a rise would count as a fall).
    """
    if min_drop < 0:
        raise ValueError(f"min_drop must be >= 0 (a fall of the gold, in reward units), got {min_drop}")
    runs: dict[str, list[Point]] = {}
    for p in points:
        runs.setdefault(p.run, []).append(p)
    out = {}
    for run, curve in runs.items():
        curve = sorted(curve, key=lambda p: p.step)
        peak = max(curve, key=lambda p: (p.gold, -p.step))
        later = [p for p in curve if p.step > peak.step]
        passed = any(p.proxy > peak.proxy and p.gold < peak.gold - min_drop for p in later)
        out[run] = (peak, None if run in trained_on_gold else passed)
    return out


def write_point(point: Point, path: str | Path) -> None:
    """Append one point to a JSON-lines file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(asdict(point)) + "\n")


def read_points(path: str | Path) -> list[Point]:
    """Every point of a JSON-lines file written by :func:`write_point`."""
    with Path(path).open() as f:
        return [Point(**json.loads(line)) for line in f if line.strip()]


def plot_overoptimisation(
    points: Sequence[Point], path: str | Path, min_drop: float = 0.0, trained_on_gold: Collection[str] = ()
) -> Path:
    """Proxy (left) and gold (right) against ``sqrt(KL)``, one line per run, the gold peak marked.

    ``sqrt(KL)`` is Gao et al.'s distance; a negative KL estimate (noise near the
    start) is drawn at 0. A peak the run went past (:func:`gold_peak` with
    ``min_drop`` and ``trained_on_gold``) is drawn as a star, with the same point
    marked on the proxy panel; runs trained on the gold are drawn dashed.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_proxy, ax_gold) = plt.subplots(1, 2, figsize=(11, 4))
    peaks = gold_peak(points, min_drop, trained_on_gold)
    for i, (run, (peak, overshot)) in enumerate(sorted(peaks.items(), key=lambda kv: kv[1][0].beta)):
        curve = sorted((p for p in points if p.run == run), key=lambda p: p.step)
        xs = [math.sqrt(max(p.kl, 0.0)) for p in curve]
        colour, line = f"C{i}", "--" if run in trained_on_gold else "-"
        ax_proxy.plot(xs, [p.proxy for p in curve], marker="o", color=colour, linestyle=line, label=run)
        ax_gold.plot(xs, [p.gold for p in curve], marker="o", color=colour, linestyle=line, label=run)
        if overshot:
            x = math.sqrt(max(peak.kl, 0.0))
            ax_gold.plot([x], [peak.gold], marker="*", markersize=16, color=colour, markeredgecolor="black")
            ax_proxy.plot([x], [peak.proxy], marker="*", markersize=16, color=colour, markeredgecolor="black")
    ax_proxy.set_title("proxy: reward model score")
    ax_gold.set_title("gold: verifier reward (star: gold peak, passed)")
    for ax in (ax_proxy, ax_gold):
        ax.set_xlabel("sqrt(KL to reference), nats^0.5 per sequence")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
