"""Worker processes of tests/test_distributed.py: one update on a tiny model, on W ranks or in one process.

Every process builds the same model and the same global batch; rank r takes its
contiguous share of the groups, so the ranks together see exactly the batch one
process sees. The optimiser is SGD: Adam's first step is ``lr * sign(grad)``
whatever the gradient's scale, and would hide a wrong loss normalisation.
"""

from __future__ import annotations

import copy
import os
from dataclasses import replace
from datetime import timedelta

import torch
import torch.distributed as dist
from toymodels import ToyRun

from rlvr import distributed
from rlvr.agents import GRPO, PPO, Reinforce
from rlvr.agents import experience as experience_module
from rlvr.agents.critic import Critic
from rlvr.agents.grpo import GRPOConfig
from rlvr.agents.ppo import PPOConfig
from rlvr.agents.reinforce import ReinforceConfig
from rlvr.policy import Policy

GROUPS, GROUP_SIZE = 4, 4
# Rewards per group: groups 1 (and 0 in "empty") have no signal and are dropped by GRPO.
REWARDS = {
    "mixed": [[1, 0, 0.5, 0], [0.5] * 4, [0, 0, 1, 0.25], [1, 1, 0, 0.75]],
    "empty": [[0.0] * 4, [0.5] * 4, [0, 0, 1, 0.25], [1, 1, 0, 0.75]],
}

CASES = {
    "grpo-token": ("grpo", "mixed", {"aggregation": "token_mean"}),
    "grpo-sequence": ("grpo", "mixed", {"aggregation": "sequence_mean"}),
    "grpo-constant": ("grpo", "mixed", {"aggregation": "constant", "aggregation_constant": 6.0}),
    "grpo-empty-rank": ("grpo", "empty", {}),
    "grpo-local-norm": ("grpo", "mixed", {}),
    "ppo": ("ppo", "mixed", {}),
    "reinforce": ("reinforce", "mixed", {}),
}


def global_batch(seed: int = 0):
    """The same experience in every process: 4 prompts x 4 samples of the tiny model, with set rewards."""
    run = ToyRun(seed=seed, groups=GROUPS, group_size=GROUP_SIZE, max_new_tokens=6)
    return run, run.experience(0)


def shard_groups(exp, rank: int, world: int):
    """Rank ``rank``'s contiguous share of the groups, renumbered from 0."""
    per = GROUPS // world
    keep = (exp.group >= rank * per) & (exp.group < (rank + 1) * per)
    part = exp.rows(keep)
    return replace(part, group=part.group - rank * per)


def one_update(case: str, rank: int, world: int, strategy: str) -> dict:
    """One update of ``case`` on this rank's share; returns the policy's (and critic's) full weights and metrics."""
    algo, rewards, options = CASES[case]
    run, exp = global_batch()
    exp = replace(exp, rewards=torch.tensor(REWARDS[rewards], dtype=torch.float32).flatten())
    if world > 1:
        exp = shard_groups(exp, rank, world)
    model = run.model
    policy = Policy(model, share_prompts=strategy != "fsdp")
    reference = Policy(copy.deepcopy(model).eval().requires_grad_(False))
    critic = Critic(copy.deepcopy(model)) if algo == "ppo" else None
    if strategy == "fsdp":
        distributed.shard(policy, model)
        distributed.shard(reference, reference.model)
        if critic is not None:
            distributed.shard(critic, critic.trunk)
    optimizer = torch.optim.SGD([p for p in policy.parameters() if p.requires_grad], lr=1.0)
    if algo == "grpo":
        cfg = GRPOConfig(drop_zero_std_groups=True, max_grad_norm=None, **options)
        agent = GRPO(policy, optimizer, cfg, reference)
    elif algo == "reinforce":
        agent = Reinforce(policy, optimizer, ReinforceConfig(max_grad_norm=None, **options), reference)
    else:
        critic_opt = torch.optim.SGD(critic.parameters(), lr=1.0)
        cfg = PPOConfig(epochs=2, max_grad_norm=1e6, **options)
        agent = PPO(policy, optimizer, critic, critic_opt, cfg, reference)
    original = experience_module.global_totals
    if case == "grpo-local-norm":  # the bug the test must catch: each rank divides by its own counts
        experience_module.global_totals = lambda mask: {
            "total_tokens": float(mask.sum()),
            "total_seqs": float((mask.sum(dim=1) > 0).sum()),
        }
        import rlvr.agents.grpo as grpo_module

        grpo_module.global_totals = experience_module.global_totals
    try:
        with distributed.gathered(policy, reference, critic):
            metrics = agent.update(exp)
    finally:
        experience_module.global_totals = original
        import rlvr.agents.grpo as grpo_module

        grpo_module.global_totals = original
    weights = {k: v.detach().clone() for k, v in distributed.full_state_dict(model).items()}
    if critic is not None:
        weights.update({f"critic.{k}": v.detach().clone() for k, v in distributed.full_state_dict(critic).items()})
    return {"weights": weights, "metrics": metrics}


def worker(rank: int, world: int, port: int, cases: list[str], strategy: str, out_dir: str) -> None:
    """Join a gloo group of ``world`` ranks on ``port``, run every case, rank 0 saves the results."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=120))
    try:
        results = {case: one_update(case, rank, world, strategy) for case in cases}
        if rank == 0:
            torch.save(results, os.path.join(out_dir, f"{strategy}.pt"))
    finally:
        dist.destroy_process_group()
