"""KL to the reference policy: estimators, reward shaping, and coefficient controllers.

All estimators take per-token log-probabilities of the *sampled* tokens under
the policy (``logp``) and the reference (``ref_logp``), ``[N, T]``, and estimate
``KL(pi || pi_ref)`` per token with ``log_ratio = logp - ref_logp``:

* ``k1 = log_ratio`` — unbiased, high variance, can be negative;
* ``k2 = log_ratio**2 / 2`` — biased, low variance, >= 0;
* ``k3 = exp(-log_ratio) - 1 + log_ratio`` — unbiased, >= 0 (Schulman's "k3").

Sampled tokens come from the policy, so these are Monte Carlo estimates whose
expectation (for k1, k3) is the KL (ref 004, "the per-sample log-ratio is a
Monte Carlo estimator of the KL").
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "AdaptiveKLController",
    "FixedKLController",
    "KLEstimator",
    "kl_controller",
    "kl_estimate",
    "kl_penalty_loss",
    "shaped_token_rewards",
]

KLEstimator = Literal["k1", "k2", "k3"]


def kl_estimate(logp: Tensor, ref_logp: Tensor, estimator: KLEstimator = "k3") -> Tensor:
    """Per-token KL estimate ``[N, T]`` from ``logp, ref_logp [N, T]`` (see module docstring)."""
    log_ratio = logp - ref_logp
    if estimator == "k1":
        return log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio**2
    if estimator == "k3":
        # exp(-x) - 1 + x with x clamped: the estimator explodes for log-ratios far
        # below 0, which only happen on tokens the reference finds very unlikely.
        neg = (-log_ratio).clamp(max=20.0)
        return torch.expm1(neg) + log_ratio
    raise ValueError(f"unknown KL estimator {estimator!r}; choose k1, k2 or k3")


def shaped_token_rewards(rewards: Tensor, kl: Tensor, mask: Tensor, beta: float) -> Tensor:
    """Per-token rewards with KL shaping (ref 004, "Step 3.2"; ref 002, "KL shaping"):

    ``r~_t = -beta * KL_t`` on every completion token, and the verifier reward is
    added on the final (last unmasked) token: ``r~_T = r - beta * KL_T``.

    rewards: ``[N]``; kl, mask: ``[N, T]`` (kl computed with pi_old, not pi_theta,
    so it is a constant of the update). Returns ``[N, T]``, 0 where mask is 0.
    Rows with no completion token get nothing (their reward has no token to sit on).
    """
    mask = mask.to(kl.dtype)
    shaped = -beta * kl * mask
    lengths = mask.sum(dim=1).long()
    has_tokens = lengths > 0
    rows = torch.arange(len(rewards), device=rewards.device)[has_tokens]
    shaped[rows, lengths[has_tokens] - 1] += rewards[has_tokens].to(shaped.dtype)
    return shaped


def kl_penalty_loss(logp: Tensor, ref_logp: Tensor, mask: Tensor, estimator: KLEstimator = "k3") -> Tensor:
    """KL as a loss term (GRPO's placement): the per-token estimate ``[N, T]`` to be
    multiplied by beta and aggregated like the policy loss. Gradients flow through ``logp``."""
    return kl_estimate(logp, ref_logp, estimator) * mask.to(logp.dtype)


class FixedKLController:
    """A constant KL coefficient."""

    def __init__(self, beta: float) -> None:
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        self.beta = float(beta)

    def update(self, kl: float) -> float:
        return self.beta

    def state_dict(self) -> dict[str, float]:
        return {"beta": self.beta}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.beta = float(state["beta"])


class AdaptiveKLController(FixedKLController):
    """PPO-penalty's adaptive coefficient (ref 004, "PPO-penalty"): after each update,
    halve beta when the measured KL is below ``target / 1.5`` and double it when
    above ``1.5 * target``; otherwise keep it. Bounded to ``[beta_min, beta_max]``.
    """

    def __init__(self, beta: float, target: float, beta_min: float = 1e-6, beta_max: float = 100.0) -> None:
        super().__init__(beta)
        if target <= 0:
            raise ValueError(f"target KL must be > 0, got {target}")
        self.target, self.beta_min, self.beta_max = float(target), float(beta_min), float(beta_max)

    def update(self, kl: float) -> float:
        if kl < self.target / 1.5:
            self.beta /= 2.0
        elif kl > self.target * 1.5:
            self.beta *= 2.0
        self.beta = min(max(self.beta, self.beta_min), self.beta_max)
        return self.beta


def kl_controller(beta: float, target: float | None = None) -> FixedKLController:
    """A fixed coefficient, or an adaptive one when a target KL is given."""
    return AdaptiveKLController(beta, target) if target else FixedKLController(beta)
