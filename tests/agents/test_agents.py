"""Bookkeeping every agent must get right: unscored samples, uninformative groups, metrics, bad config."""

import warnings

import pytest
import torch
from toymodels import ToyRun

from rlvr.agents import GRPO, GRPOConfig, Reinforce, ReinforceConfig
from rlvr.agents.experience import Experience

METRICS = {
    "reward_mean",
    "reward_std",
    "kl_ref",
    "entropy",
    "clip_fraction",
    "approx_kl",
    "response_length",
    "grad_norm",
}


def experience(run: ToyRun, rewards: list[float], scored: list[bool] | None = None) -> Experience:
    exp = run.experience(0)
    exp.rewards = torch.tensor(rewards)
    exp.scored = torch.tensor(scored if scored is not None else [True] * len(rewards))
    return exp


def grads_after(agent_cls, config, rewards, scored=None):
    run = ToyRun(seed=1, groups=2, group_size=4)
    agent = agent_cls(run.policy, torch.optim.SGD(run.policy.parameters(), lr=0.0), config, reference=run.reference)
    captured = {}

    def step_hook(optimizer, *args, **kwargs):
        captured["grad"] = torch.cat([p.grad.flatten() for p in run.policy.parameters() if p.grad is not None])

    agent.optimizer.register_step_pre_hook(step_hook)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metrics = agent.update(experience(run, rewards, scored))
    return captured["grad"], metrics


@pytest.mark.parametrize("agent_cls, config", [(GRPO, GRPOConfig(beta=0.0)), (Reinforce, ReinforceConfig(beta=0.0))])
def test_unscored_completions_are_left_out_not_zeroed(agent_cls, config):
    base = [1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    g_ref, _ = grads_after(agent_cls, config, base, [True] * 7 + [False])
    poisoned = base[:7] + [1000.0]  # an unscorable completion's reward must not matter
    g_poisoned, metrics = grads_after(agent_cls, config, poisoned, [True] * 7 + [False])
    torch.testing.assert_close(g_ref, g_poisoned)
    assert metrics["scored_fraction"] == pytest.approx(7 / 8)
    g_zero, _ = grads_after(
        agent_cls, type(config)(**{**config.__dict__, "unscored": "zero"}), poisoned, [True] * 7 + [False]
    )
    assert not torch.allclose(g_zero, g_ref)


def test_zero_std_groups_are_counted_and_optionally_dropped():
    rewards = [1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0]  # group 0 all equal: no signal
    grad_keep, metrics = grads_after(GRPO, GRPOConfig(beta=0.0, max_grad_norm=None), rewards)
    assert metrics["zero_std_groups"] == 1 and metrics["zero_std_group_fraction"] == 0.5
    grad_drop, _ = grads_after(GRPO, GRPOConfig(beta=0.0, max_grad_norm=None, drop_zero_std_groups=True), rewards)
    # with token_mean, dropping the group's tokens from the denominator scales the gradient up
    assert grad_drop.norm() > grad_keep.norm() * 1.2
    assert torch.allclose(grad_drop / grad_drop.norm(), grad_keep / grad_keep.norm(), atol=1e-5)


def test_metrics_are_reported_and_length_warning_fires():
    run = ToyRun(seed=0, groups=2, group_size=4, max_new_tokens=2)
    agent = GRPO(
        run.policy, torch.optim.Adam(run.policy.parameters(), lr=1e-3), GRPOConfig(beta=0.1), reference=run.reference
    )
    with pytest.warns(UserWarning, match="hit the length limit"):
        metrics = agent.update(run.experience(0))
    assert set(metrics) >= METRICS, METRICS - set(metrics)
    assert all(isinstance(v, float) for v in metrics.values())


def test_several_epochs_reuse_samples_against_pi_old():
    run = ToyRun(seed=0, groups=2, group_size=4)
    agent = GRPO(
        run.policy,
        torch.optim.Adam(run.policy.parameters(), lr=1e-2),
        GRPOConfig(beta=0.0, epochs=3, minibatch_size=4),
        reference=run.reference,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = run.experience(0)
        exp.rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0])
        metrics = agent.update(exp)
    assert metrics["approx_kl"] > 0 and metrics["ratio_mean"] != 1.0  # later passes see pi != pi_old


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="kl_placement"):
        GRPOConfig(kl_placement="logits")
    with pytest.raises(ValueError, match="baseline"):
        ReinforceConfig(baseline="median")
    with pytest.raises(ValueError, match="unscored"):
        GRPOConfig(unscored="skip")
    with pytest.raises(ValueError, match="rewards for"):
        run = ToyRun(groups=1, group_size=2)
        Experience.from_rollouts(
            run.engine.generate(["a"], __import__("rlvr.rollout").rollout.SamplingParams(n=2)), torch.zeros(3)
        )
