import math

import pytest
import torch

from rlvr.agents.losses import aggregate, entropy_bonus, ppo_clip_loss, reinforce_loss, value_loss

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
