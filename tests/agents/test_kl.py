import math

import pytest
import torch

from rlvr.agents.kl import AdaptiveKLController, FixedKLController, kl_estimate, kl_penalty_loss, shaped_token_rewards

T = torch.tensor


def test_estimators_hand_computed():
    logp, ref = T([[math.log(0.5), math.log(0.2)]]), T([[math.log(0.25), math.log(0.4)]])
    x = [math.log(2.0), math.log(0.5)]
    torch.testing.assert_close(kl_estimate(logp, ref, "k1"), T([x]))
    torch.testing.assert_close(kl_estimate(logp, ref, "k2"), T([[0.5 * x[0] ** 2, 0.5 * x[1] ** 2]]))
    torch.testing.assert_close(kl_estimate(logp, ref, "k3"), T([[0.5 - 1 + x[0], 2.0 - 1 + x[1]]]))
    with pytest.raises(ValueError, match="k1, k2 or k3"):
        kl_estimate(logp, ref, "k4")


def test_k1_and_k3_are_unbiased_on_a_categorical():
    p, q = T([0.7, 0.2, 0.1], dtype=torch.float64), T([0.3, 0.3, 0.4], dtype=torch.float64)
    true_kl = float((p * (p / q).log()).sum())
    logp, ref = p.log()[None], q.log()[None]
    for est in ["k1", "k3"]:
        expectation = float((p * kl_estimate(logp, ref, est)[0]).sum())
        assert expectation == pytest.approx(true_kl, abs=1e-12)
    assert (kl_estimate(logp, ref, "k3") >= 0).all() and (kl_estimate(logp, ref, "k2") >= 0).all()


def test_shaped_rewards_put_the_reward_on_the_last_token():
    kl = T([[0.1, 0.2, 0.3], [0.5, 0.0, 0.0], [0.0, 0.0, 0.0]])
    mask = T([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    shaped = shaped_token_rewards(T([1.0, -1.0, 7.0]), kl, mask, beta=0.5)
    torch.testing.assert_close(shaped, T([[-0.05, -0.1, 1.0 - 0.15], [-1.0 - 0.25, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    # the shaped rewards sum to r - beta * sum(KL) (ref 004)
    torch.testing.assert_close(shaped.sum(1)[:2], T([1.0 - 0.5 * 0.6, -1.0 - 0.5 * 0.5]))


def test_kl_penalty_loss_is_masked_and_differentiable():
    logp = T([[-1.0, -2.0]], requires_grad=True)
    loss = kl_penalty_loss(logp, T([[-1.5, -2.0]]), T([[1.0, 0.0]]), "k3")
    torch.testing.assert_close(loss.detach(), T([[math.exp(-0.5) - 1 + 0.5, 0.0]]))
    loss.sum().backward()
    assert logp.grad[0, 1] == 0 and logp.grad[0, 0] > 0


def test_controllers():
    assert FixedKLController(0.1).update(100.0) == 0.1
    c = AdaptiveKLController(beta=0.1, target=0.01)
    assert c.update(0.001) == pytest.approx(0.05)  # below target/1.5: halve
    assert c.update(0.01) == pytest.approx(0.05)  # within band: keep
    assert c.update(0.1) == pytest.approx(0.1)  # above 1.5*target: double
    with pytest.raises(ValueError):
        FixedKLController(-1)
    with pytest.raises(ValueError):
        AdaptiveKLController(0.1, target=0)
