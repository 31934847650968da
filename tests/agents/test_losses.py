import math

import pytest
import torch

from rlvr.agents.losses import (
    DEFAULT_CLIP,
    POLICY_LOSSES,
    aggregate,
    cispo_loss,
    entropy_bonus,
    gspo_loss,
    ppo_clip_loss,
    reinforce_loss,
    value_loss,
)

T = torch.tensor


def test_aggregation_modes_hand_computed():
    x = T([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    m = T([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert aggregate(x, m, "token_mean").item() == pytest.approx(10 / 4)
    assert aggregate(x, m, "sequence_mean").item() == pytest.approx((2.0 + 4.0) / 2)
    assert aggregate(x, m, "constant", constant=5).item() == pytest.approx(10 / (2 * 5))
    # micro-batches add up to the batch when given the batch totals
    halves = [aggregate(x[i : i + 1], m[i : i + 1], "token_mean", total_tokens=4) for i in range(2)]
    assert sum(h.item() for h in halves) == pytest.approx(10 / 4)
    seq_halves = [aggregate(x[i : i + 1], m[i : i + 1], "sequence_mean", total_seqs=2) for i in range(2)]
    assert sum(h.item() for h in seq_halves) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="constant"):
        aggregate(x, m, "constant")
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregate(x, m, "sum")


def test_reinforce_loss_hand_computed():
    logp = T([[-1.0, -2.0], [-0.5, -0.5]], requires_grad=True)
    loss, stats = reinforce_loss(logp, T([2.0, -1.0]), T([[1.0, 1.0], [1.0, 0.0]]))
    # -(2*-1 + 2*-2 + -1*-0.5) / 3
    assert loss.item() == pytest.approx(-(-2 - 4 + 0.5) / 3)
    loss.backward()
    torch.testing.assert_close(logp.grad, T([[-2 / 3, -2 / 3], [1 / 3, 0.0]]))


@pytest.mark.parametrize(
    "ratio, adv, expected, clipped",
    [
        (1.1, 1.0, -1.1, False),  # inside the band: unclipped
        (1.5, 1.0, -1.2, True),  # clipped high (A > 0, ratio > 1 + eps)
        (0.5, -1.0, 0.8, True),  # clipped low (A < 0, ratio < 1 - eps)
        (0.5, 1.0, -0.5, False),  # A > 0, ratio low: min takes the unclipped (pessimistic)
        (1.5, -5.0, 7.5, False),  # A < 0, ratio high: unclipped (ref 004's table, -min(-7.5, -6))
    ],
)
def test_ppo_clip_cases(ratio, adv, expected, clipped):
    old = T([[0.0]])
    logp = T([[math.log(ratio)]], requires_grad=True)
    loss, stats = ppo_clip_loss(logp, old, T([adv]), T([[1.0]]), clip_eps=0.2)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert stats["clip_fraction"].item() == float(clipped)
    loss.backward()
    assert (logp.grad.abs().item() == 0.0) is clipped  # clipped tokens carry no gradient
    assert stats["approx_kl"].item() == pytest.approx(ratio - 1 - math.log(ratio), abs=1e-6)


def test_ppo_clip_higher():
    loss, _ = ppo_clip_loss(T([[math.log(1.25)]]), T([[0.0]]), T([1.0]), T([[1.0]]), clip_eps=0.2, clip_eps_high=0.28)
    assert loss.item() == pytest.approx(-1.25)


def test_value_loss_hand_computed():
    values, old, returns, mask = T([[1.0, 0.0]]), T([[0.5, 0.0]]), T([[0.0, 1.0]]), T([[1.0, 1.0]])
    # token 0: unclipped (1-0)^2 = 1; clipped V = 0.5 + clip(0.5, -0.2, 0.2) = 0.7 -> 0.49; max = 1
    # token 1: unclipped 1; clipped V = 0 -> 1 ; total 0.5 * mean(1, 1)
    loss, stats = value_loss(values, old, returns, mask, clip_eps=0.2)
    assert loss.item() == pytest.approx(0.5)
    values2 = T([[0.0, 0.0]])
    old2 = T([[1.0, 0.0]])
    # token 0: unclipped 0; clipped V = 1 - 0.2 = 0.8 -> 0.64 ; max 0.64 ; token 1: 1 ; 0.5 * (0.64 + 1) / 2
    loss2, stats2 = value_loss(values2, old2, returns, mask, clip_eps=0.2)
    assert loss2.item() == pytest.approx(0.5 * 1.64 / 2)
    assert stats2["value_clip_fraction"].item() == pytest.approx(0.5)
    loss3, _ = value_loss(values2, old2, returns, mask, clip_eps=None)
    assert loss3.item() == pytest.approx(0.5 * 1 / 2)


def test_entropy_bonus_sign():
    h = T([[1.0, 3.0]])
    loss, stats = entropy_bonus(h, T([[1.0, 1.0]]))
    assert loss.item() == -2.0 and stats["entropy"].item() == 2.0


def test_dropped_rows_count_in_no_denominator():
    """One rule for every aggregation: a row with no token in the mask (dropped, unscored) counts nowhere."""
    x = T([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0], [9.0, 9.0, 9.0]])
    m = T([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # the third row was dropped
    assert aggregate(x, m, "token_mean").item() == pytest.approx(10 / 4)
    assert aggregate(x, m, "sequence_mean").item() == pytest.approx((2.0 + 4.0) / 2)
    assert aggregate(x, m, "constant", constant=5).item() == pytest.approx(10 / (2 * 5))
    # the same as without the row
    for mode in ["token_mean", "sequence_mean", "constant"]:
        assert aggregate(x, m, mode, constant=5).item() == pytest.approx(
            aggregate(x[:2], m[:2], mode, constant=5).item()
        )
    # nothing left: 0, not a division by zero
    assert aggregate(x, torch.zeros_like(m), "sequence_mean").item() == 0.0
    assert aggregate(x, torch.zeros_like(m), "constant", constant=5).item() == 0.0


def test_gspo_hand_computed():
    """Sequence ratio = exp(mean token log-ratio); a sequence is clipped as a whole; the gradient is GSPO's."""
    old = T([[-1.0, -2.0], [-0.5, 0.0]])
    logp = (old + T([[0.1, -0.3], [0.2, 0.0]])).requires_grad_()  # log-ratios; row 1 has one token
    mask = T([[1.0, 1.0], [1.0, 0.0]])
    s0, s1 = math.exp((0.1 - 0.3) / 2), math.exp(0.2)  # 0.905 (inside [0.8, 1.2]), 1.221 (above 1.2)
    loss, stats = gspo_loss(logp, old, T([1.0, 1.0]), mask, clip_eps=0.2, clip_eps_high=0.2, mode="sequence_mean")
    # row 0 unclipped: -s0 on each token, mean -s0; row 1 clipped: -1.2; mean over the two sequences
    assert loss.item() == pytest.approx((-s0 - 1.2) / 2, abs=1e-6)
    assert stats["clip_fraction"].item() == pytest.approx(1 / 3)  # the one token of the clipped sequence
    assert stats["ratio_mean"].item() == pytest.approx((2 * s0 + s1) / 3, abs=1e-6)
    loss.backward()
    # d/dlogp_{0,t} of -(1/2) * s0(theta), s0 = exp(mean_t(logp - old)): -(1/2) * s0 * (1/2); row 1: clipped, 0
    torch.testing.assert_close(logp.grad, T([[-s0 / 4, -s0 / 4], [0.0, 0.0]]))


def test_gspo_equals_the_sequence_level_objective_of_the_paper():
    """The GSPO-token form with sequence_mean has exactly the gradient of the paper's per-sequence objective."""
    g = torch.Generator().manual_seed(0)
    old = -torch.rand(4, 5, generator=g, dtype=torch.float64)
    logp = (old + 0.02 * torch.randn(4, 5, generator=g, dtype=torch.float64)).requires_grad_()
    mask = (torch.arange(5)[None, :] < T([5, 3, 1, 4])[:, None]).double()
    adv = T([1.0, -0.5, 2.0, -1.5], dtype=torch.float64)
    loss, _ = gspo_loss(logp, old, adv, mask, clip_eps=3e-3, clip_eps_high=4e-3, mode="sequence_mean")
    (grad,) = torch.autograd.grad(loss, logp)
    s = torch.exp(((logp - old) * mask).sum(1) / mask.sum(1))  # [N], with its gradient
    paper = -torch.minimum(s * adv, s.clamp(1 - 3e-3, 1 + 4e-3) * adv).mean()
    (paper_grad,) = torch.autograd.grad(paper, logp)
    torch.testing.assert_close(loss, paper)
    torch.testing.assert_close(grad, paper_grad)
    assert (grad.abs().sum(1) == 0).any() and (grad.abs().sum(1) > 0).any(), "both clipped and kept sequences"


def test_gspo_default_range_is_the_papers_and_negative_advantages_clip_low():
    assert DEFAULT_CLIP["gspo"] == (3e-4, 4e-4)
    logp = T([[math.log(1.0005)]], requires_grad=True)  # ratio 1 + 5e-4, above 1 + 4e-4
    loss, stats = gspo_loss(logp, T([[0.0]]), T([1.0]), T([[1.0]]), mode="sequence_mean")
    assert loss.item() == pytest.approx(-(1 + 4e-4)) and stats["clip_fraction"].item() == 1.0
    low = T([[math.log(0.7)]], requires_grad=True)
    loss, stats = gspo_loss(low, T([[0.0]]), T([-1.0]), T([[1.0]]), clip_eps=0.2, mode="sequence_mean")
    assert loss.item() == pytest.approx(0.8) and stats["clip_fraction"].item() == 1.0  # -min(-0.7, -0.8)
    loss.backward()
    assert low.grad.item() == 0.0


def test_cispo_hand_computed_keeps_the_gradient_of_clipped_tokens():
    old = T([[-1.0, -2.0]])
    logp = (old + T([[math.log(1.5), math.log(0.5)]])).requires_grad_()  # ratios 1.5 and 0.5
    mask, adv = T([[1.0, 1.0]]), T([2.0])
    loss, stats = cispo_loss(logp, old, adv, mask, clip_eps=1.0, clip_eps_high=0.2)  # weights 1.2 and 0.5
    lp = logp.detach()[0]
    assert loss.item() == pytest.approx(-(1.2 * 2 * lp[0] + 0.5 * 2 * lp[1]).item() / 2, abs=1e-6)
    assert stats["clip_fraction"].item() == 0.5  # the ratio 1.5 was clipped; 0.5 is above the (absent) lower bound
    loss.backward()
    torch.testing.assert_close(logp.grad, T([[-1.2 * 2 / 2, -0.5 * 2 / 2]]))  # -w * A / tokens, never 0
    # PPO's clip drops the gradient of the same token: ratio 1.5 > 1.2 with A > 0
    ppo_logp = logp.detach().clone().requires_grad_()
    ppo_loss, _ = ppo_clip_loss(ppo_logp, old, adv, mask, clip_eps=0.2)
    ppo_loss.backward()
    assert ppo_logp.grad[0, 0].item() == 0.0 and ppo_logp.grad[0, 1].item() != 0.0
    # with a lower bound, the small ratio is raised to it
    logp2 = logp.detach().clone().requires_grad_()
    loss2, stats2 = cispo_loss(logp2, old, adv, mask, clip_eps=0.2, clip_eps_high=0.2)
    loss2.backward()
    torch.testing.assert_close(logp2.grad, T([[-1.2, -0.8]]))
    assert stats2["clip_fraction"].item() == 1.0


@pytest.mark.parametrize("name", sorted(POLICY_LOSSES))
@pytest.mark.parametrize("mode", ["token_mean", "sequence_mean"])
def test_every_policy_loss_is_the_policy_gradient_on_policy(name, mode):
    """At pi = pi_old (one pass over one minibatch) all three losses give REINFORCE's gradient."""
    g = torch.Generator().manual_seed(1)
    logp = -torch.rand(3, 4, generator=g, dtype=torch.float64).requires_grad_()
    mask = (torch.arange(4)[None, :] < T([4, 2, 3])[:, None]).double()
    adv = T([0.5, -1.0, 2.0], dtype=torch.float64)
    loss, stats = POLICY_LOSSES[name](logp, logp.detach(), adv, mask, *DEFAULT_CLIP[name], mode=mode)
    (grad,) = torch.autograd.grad(loss, logp)
    ref, _ = reinforce_loss(logp, adv, mask, mode=mode)
    (ref_grad,) = torch.autograd.grad(ref, logp)
    torch.testing.assert_close(grad, ref_grad)
    assert stats["ratio_mean"].item() == 1.0 and stats["clip_fraction"].item() == 0.0
