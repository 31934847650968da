"""Each algorithm learns a toy task from chance, and the KL term does its job, measured.

Task: a tiny Llama (2 layers, 32 wide, 14-token vocab) is rewarded with the
share of its first 4 generated characters that are the letter 'j' (chance is
about 1/14). 4 prompts x 8 completions per step, Adam 3e-3.
"""

import copy

import pytest
import torch
from toymodels import ToyRun

from rlvr.agents import GRPO, PPO, GRPOConfig, PPOConfig, Reinforce, ReinforceConfig
from rlvr.agents.critic import Critic

pytestmark = pytest.mark.filterwarnings("ignore:.*hit the length limit")
STEPS = 80


def make_agent(name: str, run: ToyRun, beta: float = 0.0):
    opt = torch.optim.Adam(run.policy.parameters(), lr=3e-3)
    if name == "reinforce":
        return Reinforce(run.policy, opt, ReinforceConfig(beta=beta), reference=run.reference)
    if name == "grpo":
        return GRPO(run.policy, opt, GRPOConfig(beta=beta), reference=run.reference)
    critic = Critic(copy.deepcopy(run.model))
    return PPO(
        run.policy,
        opt,
        critic,
        torch.optim.Adam(critic.parameters(), lr=3e-3),
        PPOConfig(beta=beta),
        reference=run.reference,
    )


@pytest.mark.parametrize("name", ["reinforce", "grpo", "ppo"])
def test_learns_the_toy_task_from_chance(name):
    run = ToyRun(seed=0)
    history = run.train(make_agent(name, run), STEPS)
    rewards = [h["reward_mean"] for h in history]
    assert sum(rewards[:3]) / 3 < 0.2, "starts near chance"
    assert sum(rewards[-5:]) / 5 > 0.9, f"{name} did not learn: {rewards[::10]}"


@pytest.mark.parametrize("name", ["reinforce", "grpo", "ppo"])
def test_large_beta_bounds_kl_while_beta_zero_drifts(name):
    """Every agent's KL term holds the policy near the reference (a sign error in any placement drifts)."""
    kl_bound = 0.15  # nats per token, k3 estimate against the frozen initial policy
    free = ToyRun(seed=0)
    free_kl = [h["kl_ref"] for h in free.train(make_agent(name, free, beta=0.0), 60)]
    held = ToyRun(seed=0)
    held_history = held.train(make_agent(name, held, beta=2.0), 60)
    held_kl = [h["kl_ref"] for h in held_history]
    assert max(held_kl) < kl_bound, held_kl
    assert free_kl[-1] > 5 * kl_bound, free_kl  # beta = 0 drifts far beyond the bound
    assert all(h["beta"] == 2.0 for h in held_history)


def test_adaptive_controller_moves_beta_towards_the_target():
    run = ToyRun(seed=0)
    agent = GRPO(
        run.policy,
        torch.optim.Adam(run.policy.parameters(), lr=3e-3),
        GRPOConfig(beta=0.01, kl_target=0.02),
        reference=run.reference,
    )
    history = run.train(agent, 40)
    betas = [h["beta"] for h in history]
    assert max(betas) > 0.01, "beta should have doubled once KL passed 1.5x the target"
    assert history[-1]["kl_ref"] < 0.5
