"""Preference losses against hand-computed values (ref 002: Bradley-Terry, DPO, SimPO)."""

import math

import pytest
import torch

from rlvr.preference.losses import bradley_terry_loss, dpo_loss, implicit_accuracy, sequence_logprobs, simpo_loss


def softplus(x: float) -> float:  # log(1 + e^x); -log sigma(z) = softplus(-z)
    return math.log1p(math.exp(x))


def test_bradley_terry_by_hand():
    loss, stats = bradley_terry_loss(torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0]))
    # margins 1 and -1: -log sigma(1) = log(1 + e^-1) = 0.31326, -log sigma(-1) = 1.31326
    assert loss.item() == pytest.approx((0.3132617 + 1.3132617) / 2, abs=1e-6)
    assert stats["rewards/accuracy"] == 0.5 and stats["rewards/margin"] == pytest.approx(0.0)
    assert stats["rewards/chosen"] == pytest.approx(1.0) and stats["rewards/rejected"] == pytest.approx(1.0)


def test_bradley_terry_stays_finite_for_huge_margins():
    loss, _ = bradley_terry_loss(torch.tensor([-1000.0]), torch.tensor([1000.0]))
    assert loss.item() == pytest.approx(2000.0)
    loss, _ = bradley_terry_loss(torch.tensor([1000.0]), torch.tensor([-1000.0]))
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="shapes differ"):
        bradley_terry_loss(torch.zeros(2), torch.zeros(3))


def test_dpo_by_hand():
    # implicit rewards: 0.5 * (-1 - -2) = 0.5 and 0.5 * (-3 - -2) = -0.5, so h = 1
    args = (torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]), torch.tensor([-2.0]))
    loss, stats = dpo_loss(*args, beta=0.5)
    assert loss.item() == pytest.approx(softplus(-1.0), abs=1e-6)  # 0.3132617
    assert stats["rewards/chosen"] == pytest.approx(0.5) and stats["rewards/rejected"] == pytest.approx(-0.5)
    assert stats["rewards/margin"] == pytest.approx(1.0) and stats["rewards/accuracy"] == 1.0
    smoothed, _ = dpo_loss(*args, beta=0.5, label_smoothing=0.1)
    assert smoothed.item() == pytest.approx(0.9 * 0.3132617 + 0.1 * 1.3132617, abs=1e-6)


def test_dpo_gradient_is_the_papers():
    # dL/d log pi(y_w) = -beta * sigma(-h); dL/d log pi(y_l) = +beta * sigma(-h)  (ref 002, "DPO loss gradient")
    chosen = torch.tensor([-1.0], requires_grad=True)
    rejected = torch.tensor([-3.0], requires_grad=True)
    loss, _ = dpo_loss(chosen, rejected, torch.tensor([-2.0]), torch.tensor([-2.0]), beta=0.5)
    loss.backward()
    weight = 0.5 * (1 / (1 + math.exp(1.0)))  # beta * sigma(-1)
    assert chosen.grad.item() == pytest.approx(-weight) and rejected.grad.item() == pytest.approx(weight)


def test_dpo_at_the_reference_is_log_two_and_rejects_bad_settings():
    x = torch.tensor([-4.0, -7.0])
    loss, stats = dpo_loss(x, x, x, x)
    assert loss.item() == pytest.approx(math.log(2)) and stats["rewards/accuracy"] == 0.0  # ties count as wrong
    with pytest.raises(ValueError, match="beta"):
        dpo_loss(x, x, x, x, beta=0.0)
    with pytest.raises(ValueError, match="label_smoothing"):
        dpo_loss(x, x, x, x, label_smoothing=0.5)


def test_simpo_by_hand():
    # 2 * -0.5 - 2 * -1.0 - 0.5 = 0.5; -log sigma(0.5) = log(1 + e^-0.5) = 0.474077
    loss, stats = simpo_loss(torch.tensor([-0.5]), torch.tensor([-1.0]), beta=2.0, gamma=0.5)
    assert loss.item() == pytest.approx(0.4740770, abs=1e-6)
    assert stats["rewards/chosen"] == pytest.approx(-1.0) and stats["rewards/rejected"] == pytest.approx(-2.0)


def test_sequence_logprobs_sum_and_mean_over_the_mask():
    logp = torch.tensor([[-1.0, -2.0, -3.0], [-5.0, -5.0, -5.0]])
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]])
    assert sequence_logprobs(logp, mask).tolist() == [-3.0, 0.0]
    assert sequence_logprobs(logp, mask, average=True).tolist() == [-1.5, 0.0]
    assert implicit_accuracy(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.0])) == 0.5
