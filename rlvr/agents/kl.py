"""KL to the reference policy: estimators, reward shaping, and coefficient controllers.

All estimators take per-token log-probabilities of the *sampled* tokens under
the policy (``logp``) and the reference (``ref_logp``), ``[N, T]``, and estimate
``KL(pi || pi_ref)`` per token with ``log_ratio = logp - ref_logp``:

* ``k1 = log_ratio`` — unbiased, high variance, can be negative;
* ``k2 = log_ratio**2 / 2`` — biased, low variance, >= 0;
* ``k3 = exp(-log_ratio) - 1 + log_ratio`` — unbiased, >= 0.

The three are Schulman's estimators ("Approximating KL Divergence", 2020).
Sampled tokens come from the policy, so these are Monte Carlo estimates whose
expectation (for k1, k3) is the KL.

An unbiased *value* is not an unbiased *gradient*. On-policy, per token, the
expected gradient of the penalty is (``tests/agents/test_kl.py`` computes each
exactly on a categorical):

* as a loss term, ``E[grad k]``: k1 gives 0 (``E[grad log pi] = 0``), k2 gives
  grad KL(pi || pi_ref), k3 gives grad KL(pi_ref || pi);
* in the reward, ``E[grad log pi * k]``: k1 gives grad KL(pi || pi_ref), k2 gives
  grad E[k2] - grad KL(pi || pi_ref) and k3 gives grad KL(pi || pi_ref) - grad
  KL(pi_ref || pi), the gradients of no divergence.

:func:`check_kl_choice` refuses the three pairs that follow no KL; docs/agents.md
says why k3 as a loss term (GRPO's choice) is kept.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "AdaptiveKLController",
    "FixedKLController",
    "KLEstimator",
    "check_kl_choice",
    "kl_controller",
    "kl_estimate",
    "kl_penalty_loss",
    "shaped_token_rewards",
]

KLEstimator = Literal["k1", "k2", "k3"]


KL_LOG_RATIO_CLAMP = 20.0
"""k3's log-ratio is clamped to ``[-20, 20]`` nats."""


def kl_estimate(logp: Tensor, ref_logp: Tensor, estimator: KLEstimator = "k3") -> Tensor:
    """Per-token KL estimate ``[N, T]`` from ``logp, ref_logp [N, T]`` (see module docstring).

    Deviation from Schulman's k3: the log-ratio is clamped to ``[-20, 20]`` first,
    so the value is constant and the gradient 0 beyond (never of the wrong sign).
    """
    log_ratio = logp - ref_logp
    if estimator == "k1":
        return log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio**2
    if estimator == "k3":
        # The log-ratio itself is clamped (as verl and OpenRLHF do), not only the
        # exponential: exp(-x) explodes for x far below 0, and clamping exp alone
        # leaves the "+ x" term, whose gradient +1 there has the wrong sign (minimising
        # it pushes the log-prob further down). Outside [-20, 20] the gradient is 0.
        x = log_ratio.clamp(min=-KL_LOG_RATIO_CLAMP, max=KL_LOG_RATIO_CLAMP)
        return torch.expm1(-x) + x
    raise ValueError(f"unknown KL estimator {estimator!r}; choose k1, k2 or k3")


def shaped_token_rewards(rewards: Tensor, kl: Tensor, mask: Tensor, beta: float) -> Tensor:
    """Per-token rewards with KL shaping, as in InstructGPT (Ouyang et al., 2022).

    ``r~_t = -beta * KL_t`` on every completion token, and the verifier reward is
    added on the final (last unmasked) token: ``r~_T = r - beta * KL_T``. The
    mask may have holes (an episode's environment tokens).

    rewards: ``[N]``; kl, mask: ``[N, T]`` (kl computed with pi_old, not pi_theta,
    so it is a constant of the update). Returns ``[N, T]``, 0 where mask is 0.
    Rows with no completion token get nothing (their reward has no token to sit on).
    """
    mask = mask.to(kl.dtype)
    shaped = -beta * kl * mask
    has_tokens = mask.sum(dim=1) > 0
    # The last masked-in column, not the mask's length: an episode's mask has holes
    # (environment tokens) between the policy's turns.
    last = mask.shape[1] - 1 - mask.flip(1).argmax(dim=1)  # [N]
    rows = torch.arange(len(rewards), device=rewards.device)[has_tokens]
    shaped[rows, last[has_tokens]] += rewards[has_tokens].to(shaped.dtype)
    return shaped


def kl_penalty_loss(logp: Tensor, ref_logp: Tensor, mask: Tensor, estimator: KLEstimator = "k3") -> Tensor:
    """KL as a loss term (GRPO's placement): the masked per-token estimate ``[N, T]``.

    It is to be multiplied by beta and aggregated like the policy loss. Gradients
    flow through ``logp``.
    """
    return kl_estimate(logp, ref_logp, estimator) * mask.to(logp.dtype)


class FixedKLController:
    """A constant KL coefficient."""

    def __init__(self, beta: float) -> None:
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        self.beta = float(beta)

    def update(self, kl: float) -> float:
        """The coefficient for the next update: always the same, whatever the measured ``kl``."""
        return self.beta

    def state_dict(self) -> dict[str, float]:
        """The current coefficient, for checkpoints."""
        return {"beta": self.beta}

    def load_state_dict(self, state: dict[str, float]) -> None:
        """Restore the coefficient saved by :meth:`state_dict`."""
        self.beta = float(state["beta"])


class AdaptiveKLController(FixedKLController):
    """PPO-penalty's adaptive KL coefficient (Schulman et al., 2017).

    After each update, halve beta when the measured KL is below ``target / 1.5``
    and double it when above ``1.5 * target``; otherwise keep it. Bounded to
    ``[beta_min, beta_max]``.
    """

    def __init__(self, beta: float, target: float, beta_min: float = 1e-6, beta_max: float = 100.0) -> None:
        super().__init__(beta)
        if beta <= 0:
            raise ValueError(f"an adaptive KL coefficient must start above 0, got beta={beta}")
        if target <= 0:
            raise ValueError(f"target KL must be > 0, got {target}")
        self.target, self.beta_min, self.beta_max = float(target), float(beta_min), float(beta_max)

    def update(self, kl: float) -> float:
        """Halve, double or keep beta for the measured per-token ``kl``; returns the new beta."""
        if kl < self.target / 1.5:
            self.beta /= 2.0
        elif kl > self.target * 1.5:
            self.beta *= 2.0
        self.beta = min(max(self.beta, self.beta_min), self.beta_max)
        return self.beta


def kl_controller(beta: float, target: float | None = None) -> FixedKLController:
    """A fixed coefficient, or an adaptive one when a target KL is given.

    The agents call the controller's ``update`` only after an update that measured
    a KL (some token was in the loss): a batch with every row dropped says nothing.
    """
    return FixedKLController(beta) if target is None else AdaptiveKLController(beta, target)


_REFUSED = {
    ("k1", "loss"): "has zero expected gradient (E[grad log pi] = 0): it does not hold the policy near the reference",
    ("k2", "reward"): "follows the gradient of E[k2] - KL(pi || pi_ref), which is no divergence",
    ("k3", "reward"): "follows grad KL(pi || pi_ref) - grad KL(pi_ref || pi), which is no divergence",
}


def check_kl_choice(
    beta: float,
    kl_target: float | None,
    estimator: str,
    placement: str,
    placements: tuple[str, ...] = ("loss", "reward"),
) -> None:
    """Refuse a KL configuration whose gradient is not what it claims (the agents' configs call it).

    Refused: a ``kl_target`` with ``beta = 0`` (no reference is used, so there is
    nothing to measure or adapt) or ``kl_target <= 0``; an unknown estimator; and,
    when ``beta > 0``, the estimator/placement pairs whose expected gradient follows
    no KL (see the module docstring): k1 as a loss, k2 or k3 in the reward. k3 as a
    loss term follows KL(pi_ref || pi) and is accepted (docs/agents.md says why).
    The message names the unbiased alternatives among ``placements``.

    Raises:
        ValueError: saying which keys to change, and to what.
    """
    if kl_target is not None and kl_target <= 0:
        raise ValueError(f"kl_target must be > 0 (or None for a fixed beta), got {kl_target}")
    if kl_target is not None and beta <= 0:
        raise ValueError(
            f"kl_target={kl_target} needs beta > 0: beta=0 turns the KL term and the reference off, so there is "
            "no KL to adapt to; set beta to the starting coefficient, or drop kl_target"
        )
    if estimator not in ("k1", "k2", "k3"):
        raise ValueError(f"kl_estimator must be 'k1', 'k2' or 'k3', got {estimator!r}")
    problem = _REFUSED.get((estimator, placement))
    if beta > 0 and problem is not None:
        alternatives = ["kl_estimator='k1' in the reward (the REINFORCE gradient of KL(pi || pi_ref))"]
        if "loss" in placements:
            alternatives = [
                "kl_estimator='k1' with kl_placement='reward' (the REINFORCE gradient of KL(pi || pi_ref))",
                "kl_estimator='k2' with kl_placement='loss' (the gradient of KL(pi || pi_ref) on-policy)",
            ]
            if estimator == "k1":
                alternatives.reverse()
        where = f" with kl_placement={placement!r}" if "loss" in placements else " in the reward"
        raise ValueError(f"kl_estimator={estimator!r}{where} {problem}; use " + ", or ".join(alternatives))
