"""Train/inference mismatch: truncated importance sampling weights and the logged gap, by hand."""

import math

import pytest
import torch
from toymodels import ToyRun

from rlvr.agents import GRPO, GRPOConfig
from rlvr.agents.losses import ppo_clip_loss
from rlvr.agents.mismatch import mismatch_stats, tis_weights

OLD = torch.log(torch.tensor([[0.5, 0.2, 0.9]]))  # trainer's pi_old
MU = torch.log(torch.tensor([[0.25, 0.4, 0.1]]))  # the sampler's: ratios 2.0, 0.5, (masked)
MASK = torch.tensor([[1, 1, 0]])


def test_token_level_weights_are_capped_ratios():
    w = tis_weights(OLD, MU, MASK, "token", cap=1.5)
    assert w.tolist()[0] == pytest.approx([1.5, 0.5, 1.0])  # masked token: weight 1


def test_sequence_level_weight_is_the_capped_product():
    w = tis_weights(OLD, MU, MASK, "sequence", cap=2.0)
    assert w.tolist()[0] == pytest.approx([1.0, 1.0, 1.0])  # 2.0 * 0.5 = 1
    w = tis_weights(OLD, torch.log(torch.tensor([[0.1, 0.1, 0.1]])), MASK, "sequence", cap=3.0)
    assert w.tolist()[0] == pytest.approx([3.0, 3.0, 1.0])  # 5 * 2 = 10, capped
    assert tis_weights(OLD, MU, MASK, "off").tolist() == [[1.0, 1.0, 1.0]]
    with pytest.raises(ValueError, match="cap"):
        tis_weights(OLD, MU, MASK, "token", cap=0.0)


def test_mismatch_stats_by_hand():
    w = tis_weights(OLD, MU, MASK, "token", cap=1.5)
    stats = mismatch_stats(OLD, MU, MASK, w, cap=1.5)
    assert stats["mismatch/logp_abs_diff"] == pytest.approx(math.log(2))
    # k3 of KL(mu || pi_old): r - 1 - log r with r = 2 and 0.5: 0.3069 and 0.1931
    assert stats["mismatch/kl"] == pytest.approx(((2 - 1 - math.log(2)) + (0.5 - 1 + math.log(2))) / 2)
    assert stats["mismatch/tis_weight_mean"] == pytest.approx(1.0) and stats["mismatch/tis_clipped_fraction"] == 0.5


def test_weights_scale_each_tokens_policy_loss():
    logp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    adv, mask = torch.tensor([1.0]), torch.ones(1, 2)
    weights = torch.tensor([[2.0, 0.5]])
    plain, _ = ppo_clip_loss(logp, logp.detach(), adv, mask)
    weighted, _ = ppo_clip_loss(logp, logp.detach(), adv, mask, weights=weights)
    assert plain.item() == pytest.approx(-1.0) and weighted.item() == pytest.approx(-(2.0 + 0.5) / 2)


@pytest.mark.parametrize("tis", ["off", "token", "sequence"])
def test_grpo_logs_the_gap_and_it_is_noise_when_the_sampler_is_the_trainer_in_float32(tis):
    run = ToyRun(seed=0)
    agent = GRPO(run.policy, torch.optim.AdamW(run.model.parameters(), lr=1e-3), GRPOConfig(beta=0.0, tis=tis))
    metrics = agent.update(run.experience(0))
    assert metrics["mismatch/logp_abs_diff"] < 1e-4 and metrics["mismatch/kl"] < 1e-6
    if tis != "off":
        assert metrics["mismatch/tis_weight_mean"] == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(ValueError, match="tis must be"):
        GRPOConfig(tis="tokens")
