"""Agents: an algorithm is a choice of advantage estimator, loss and KL placement.

Each agent takes its dependencies (policy, optimiser, reference, critic) as
arguments and offers ``update(experience) -> metrics``. Importing this package
imports torch; nothing in ``rlvr``'s environments or verifiers does.
"""

from rlvr.agents.experience import Experience
from rlvr.agents.grpo import GRPO, GRPOConfig
from rlvr.agents.ppo import PPO, PPOConfig
from rlvr.agents.reinforce import Reinforce, ReinforceConfig

__all__ = ["GRPO", "PPO", "Experience", "GRPOConfig", "PPOConfig", "Reinforce", "ReinforceConfig"]
