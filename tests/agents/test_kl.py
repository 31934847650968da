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


def test_k3_gradient_is_never_of_the_wrong_sign():
    """Below the clamp the gradient is 0, never the +1 that pushes the log-prob further down."""
    log_ratio = torch.linspace(-40.0, 0.0, 401, dtype=torch.float64, requires_grad=True)
    k3 = kl_estimate(log_ratio[None], torch.zeros_like(log_ratio)[None], "k3")[0]
    k3.sum().backward()
    x, grad = log_ratio.detach(), log_ratio.grad
    true_grad = 1 - torch.exp(-x)  # d k3 / d log_ratio: negative for every log-ratio below 0
    assert not ((grad > 0) & (true_grad < 0)).any(), grad[(grad > 0) & (true_grad < 0)]
    inside = x >= -20
    torch.testing.assert_close(grad[inside], true_grad[inside])
    assert (grad[~inside] == 0).all()
    assert torch.isfinite(k3).all() and (k3[~inside] == k3[inside][0]).all()  # the value at the clamp


# --- Which divergence each estimator/placement pair follows, computed exactly -------------------------
#
# One categorical "token" pi = softmax(theta) with 4 outcomes. The samples' probabilities are constants
# of the update (detached). As a loss term the penalty's gradient is E_pi[grad k(x)]; in the reward it is
# the REINFORCE gradient of the penalty, E_pi[grad log pi * k(x)] with k detached. x = log pi - log pi_ref.

THETA = T([1.0, -0.5, 0.3, 0.0], dtype=torch.float64)
REF = torch.softmax(T([0.2, 0.4, -1.0, 0.5], dtype=torch.float64), 0)


def penalty_gradient(estimator: str, placement: str) -> torch.Tensor:
    theta = THETA.clone().requires_grad_()
    logp = torch.log_softmax(theta, 0)
    pi = logp.exp().detach()  # the sampling weights
    k = kl_estimate(logp[:, None], REF.log()[:, None], estimator)[:, 0]  # one row per outcome, one token each
    penalty = (pi * k).sum() if placement == "loss" else (pi * logp * k.detach()).sum()
    penalty.backward()
    return theta.grad


def divergence_gradient(divergence) -> torch.Tensor:
    theta = THETA.clone().requires_grad_()
    divergence(torch.log_softmax(theta, 0)).backward()
    return theta.grad


def kl_pi_ref(logp):  # KL(pi || pi_ref)
    return (logp.exp() * (logp - REF.log())).sum()


def kl_ref_pi(logp):  # KL(pi_ref || pi)
    return (REF * (REF.log() - logp)).sum()


def half_sq_log_ratio(logp):  # E_pi[k2], the value k2 estimates
    return (logp.exp() * 0.5 * (logp - REF.log()) ** 2).sum()


def close(a, b):
    return torch.allclose(a, b, rtol=1e-10, atol=1e-12)


def test_each_estimator_and_placement_follows_the_gradient_the_docs_state():
    g_pi_ref, g_ref_pi = divergence_gradient(kl_pi_ref), divergence_gradient(kl_ref_pi)
    assert not close(g_pi_ref, g_ref_pi)  # the example tells the two divergences apart
    # As a loss term
    assert (penalty_gradient("k1", "loss") == 0).all()  # E_pi[grad log pi] = 0: no pull towards pi_ref
    assert close(penalty_gradient("k2", "loss"), g_pi_ref)  # E_pi[x grad log pi] = grad KL(pi || pi_ref)
    assert close(penalty_gradient("k3", "loss"), g_ref_pi)  # E_pi[(1 - pi_ref/pi) grad log pi] = grad KL(pi_ref || pi)
    # In the reward (REINFORCE on the penalty)
    assert close(penalty_gradient("k1", "reward"), g_pi_ref)
    k2_reward, k3_reward = penalty_gradient("k2", "reward"), penalty_gradient("k3", "reward")
    assert close(k2_reward, divergence_gradient(half_sq_log_ratio) - g_pi_ref)
    assert close(k3_reward, g_pi_ref - g_ref_pi)
    for g in (k2_reward, k3_reward):  # neither is the gradient of either KL
        assert not close(g, g_pi_ref) and not close(g, g_ref_pi)
    # k3 in the reward even points the wrong way here: a step against it raises KL(pi || pi_ref)
    assert torch.dot(k3_reward, g_pi_ref) < 0


def test_per_token_loss_terms_hold_the_visited_states_fixed():
    """Two tokens, two choices each: the loss placement follows each visited state's KL with the states fixed.

    In the reward, k1 gives the gradient of the whole sequence's KL(pi || pi_ref), state distribution included.
    """
    theta0 = T([[0.3, -0.2], [1.0, 0.1], [-0.4, 0.6]], dtype=torch.float64)  # rows: first token, second after 0 / 1
    ref = torch.softmax(T([[0.0, 0.5], [-0.3, 0.2], [0.8, -0.1]], dtype=torch.float64), 1).log()
    seqs = [(a, b) for a in range(2) for b in range(2)]

    def token_logps(theta):  # [4 sequences, 2 tokens] under pi and pi_ref
        logp = torch.log_softmax(theta, 1)
        pick = [[(0, a), (1 + a, b)] for a, b in seqs]
        return torch.stack([torch.stack([logp[r, c] for r, c in p]) for p in pick]), torch.stack(
            [torch.stack([ref[r, c] for r, c in p]) for p in pick]
        )

    def grad(fn):
        theta = theta0.clone().requires_grad_()
        fn(theta).backward()
        return theta.grad

    def weights(theta):
        return token_logps(theta)[0].sum(1).exp().detach()  # P(sequence), a constant of the update

    def loss_placement(estimator):
        def f(theta):
            lp, rp = token_logps(theta)
            return (weights(theta) * kl_estimate(lp, rp, estimator).sum(1)).sum()

        return f

    def k1_in_reward(theta):
        lp, rp = token_logps(theta)
        return (weights(theta) * lp.sum(1) * kl_estimate(lp, rp, "k1").sum(1).detach()).sum()

    def sequence_kl(theta):
        lp, rp = token_logps(theta)
        return (lp.sum(1).exp() * (lp - rp).sum(1)).sum()

    def per_state(kl):  # sum over visited states of the state's KL, the state probabilities held fixed
        def f(theta):
            logp = torch.log_softmax(theta, 1)
            p_first = logp[0].exp().detach()
            return kl(logp[0], ref[0]) + sum(p_first[a] * kl(logp[1 + a], ref[1 + a]) for a in range(2))

        return f

    def kl_fwd(lp, rp):
        return (lp.exp() * (lp - rp)).sum()

    def kl_rev(lp, rp):
        return (rp.exp() * (rp - lp)).sum()

    assert close(grad(k1_in_reward), grad(sequence_kl))
    assert close(grad(loss_placement("k2")), grad(per_state(kl_fwd)))
    assert close(grad(loss_placement("k3")), grad(per_state(kl_rev)))
    assert not close(grad(loss_placement("k2")), grad(sequence_kl))  # the future-state term is left out
