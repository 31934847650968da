"""Bookkeeping every agent must get right: unscored and dropped rows, the KL controller, pi_old, metrics, bad config."""

import copy
import warnings

import pytest
import torch
from toymodels import ToyRun
from transformers import LlamaForCausalLM

from rlvr.agents import GRPO, PPO, GRPOConfig, PPOConfig, Reinforce, ReinforceConfig
from rlvr.agents.critic import Critic
from rlvr.agents.experience import Experience
from rlvr.policy import Policy
from rlvr.rollout import TransformersEngine

METRICS = {
    "reward_mean",
    "reward_std",
    "kl_ref",
    "entropy",
    "clip_fraction",
    "approx_kl",
    "response_length",
    "grad_norm",
    "rows_kept",
    "ratio_first",
    "clip_fraction_first",
}


def experience(run: ToyRun, rewards: list[float], scored: list[bool] | None = None) -> Experience:
    exp = run.experience(0)
    exp.rewards = torch.tensor(rewards)
    exp.scored = torch.tensor(scored if scored is not None else [True] * len(rewards))
    return exp


def grads_after(agent_cls, config, rewards, scored=None, rows=None):
    """The policy's gradient at the (last) optimiser step of one update; ``rows`` picks rows of the batch first."""
    run = ToyRun(seed=1, groups=2, group_size=4)
    agent = make_agent(agent_cls, run, config)
    captured = {}

    def step_hook(optimizer, *args, **kwargs):
        captured["grad"] = torch.cat([p.grad.flatten() for p in run.policy.parameters() if p.grad is not None])

    agent.optimizer.register_step_pre_hook(step_hook)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = run.experience(0)
        if rows is not None:
            exp = exp.rows(rows)
        exp.rewards = torch.tensor(rewards)
        exp.scored = torch.tensor(scored if scored is not None else [True] * len(rewards))
        metrics = agent.update(exp)
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


def make_agent(cls, run: ToyRun, config, optimizer=torch.optim.SGD, lr: float = 0.0):
    opt = optimizer(run.policy.parameters(), lr=lr)
    if cls is PPO:
        critic = Critic(copy.deepcopy(run.model))
        return PPO(run.policy, opt, critic, optimizer(critic.parameters(), lr=lr), config, reference=run.reference)
    return cls(run.policy, opt, config, reference=run.reference)


def rows_through(module: torch.nn.Module, counter: dict, key: str) -> None:
    """Count the rows of every forward pass through ``module`` in ``counter[key]``."""
    counter[key] = 0

    def hook(mod, args, kwargs, out):
        counter[key] += (kwargs.get("input_ids") if "input_ids" in kwargs else args[0]).shape[0]

    module.register_forward_hook(hook, with_kwargs=True)


@pytest.mark.parametrize(
    "cls, config, scored, kept, passes",
    [
        # group 0 has all-equal rewards and is dropped; row 7 is unscored: rows 4, 5, 6 are kept
        (GRPO, GRPOConfig(beta=0.1, drop_zero_std_groups=True), [True] * 7 + [False], 3, {"policy": 1, "reference": 1}),
        (GRPO, GRPOConfig(beta=0.1, epochs=2), [True] * 6 + [False] * 2, 6, {"policy": 3, "reference": 1}),
        (Reinforce, ReinforceConfig(beta=0.1), [True] * 6 + [False] * 2, 6, {"policy": 2, "reference": 1}),
        (PPO, PPOConfig(beta=0.1), [True] * 6 + [False] * 2, 6, {"policy": 3, "reference": 1, "critic": 3}),
    ],
)
def test_dropped_rows_pay_no_forward_pass_but_count_in_rollout_metrics(cls, config, scored, kept, passes):
    run = ToyRun(seed=1, groups=2, group_size=4)
    agent = make_agent(cls, run, config)
    exp = experience(run, [1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 5.0], scored)
    seen: dict[str, int] = {}  # counted from here: sampling went through the policy's model too
    rows_through(run.policy.model, seen, "policy")
    rows_through(run.reference.model, seen, "reference")
    if cls is PPO:
        rows_through(agent.critic.trunk, seen, "critic")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metrics = agent.update(exp)
    assert seen == {k: n * kept for k, n in passes.items()}
    assert metrics["rows_kept"] == kept
    scored_t = torch.tensor(scored)
    assert metrics["reward_mean"] == pytest.approx(float(exp.rewards[scored_t].mean()))  # every scored row
    assert metrics["response_length"] == pytest.approx(float(exp.completion_mask.sum(1).float().mean()))  # every row
    assert metrics["scored_fraction"] == pytest.approx(sum(scored) / 8)


@pytest.mark.parametrize("aggregation", ["token_mean", "sequence_mean", "constant"])
@pytest.mark.parametrize("cls", [GRPO, Reinforce, PPO])
def test_an_unscored_row_counts_like_an_absent_row(cls, aggregation):
    config = {GRPO: GRPOConfig, Reinforce: ReinforceConfig, PPO: PPOConfig}[cls](
        beta=0.0, aggregation=aggregation, aggregation_constant=4.0, max_grad_norm=None
    )
    rewards, scored = [1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0], [True] * 7 + [False]
    g_unscored, _ = grads_after(cls, config, rewards, scored)
    g_absent, _ = grads_after(cls, config, rewards[:7], scored[:7], rows=torch.arange(7))
    torch.testing.assert_close(g_unscored, g_absent)


@pytest.mark.parametrize(
    "cls, case",
    [(GRPO, "nothing scored"), (Reinforce, "nothing scored"), (PPO, "nothing scored"), (GRPO, "every group dropped")],
)
def test_the_kl_controller_is_not_updated_when_nothing_was_measured(cls, case):
    config_cls = {GRPO: GRPOConfig, Reinforce: ReinforceConfig, PPO: PPOConfig}[cls]
    extra = {"drop_zero_std_groups": True} if case == "every group dropped" else {}
    run = ToyRun(seed=1, groups=2, group_size=4)
    agent = make_agent(cls, run, config_cls(beta=0.1, kl_target=0.01, **extra))
    scored = [False] * 8 if case == "nothing scored" else [True] * 8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metrics = agent.update(experience(run, [1.0] * 4 + [0.0] * 4, scored))
    assert metrics["rows_kept"] == 0 and "kl_ref" not in metrics
    assert agent.kl_ctl.beta == 0.1  # not halved for a KL that was never measured


@pytest.mark.parametrize("config_cls", [GRPOConfig, ReinforceConfig, PPOConfig])
def test_a_kl_target_without_a_starting_beta_is_refused(config_cls):
    with pytest.raises(ValueError, match=r"kl_target.*beta|beta.*kl_target"):
        config_cls(beta=0.0, kl_target=0.02)
    with pytest.raises(ValueError, match="kl_target"):
        config_cls(beta=0.1, kl_target=0.0)
    assert config_cls(beta=0.1, kl_target=0.02).kl_target == 0.02


@pytest.mark.parametrize(
    "estimator, placement, alternative",
    [
        ("k1", "loss", "kl_estimator='k2'"),  # zero expected gradient
        ("k2", "reward", "kl_estimator='k1'"),  # the gradient of no divergence
        ("k3", "reward", "kl_estimator='k1'"),  # grad KL(pi || pi_ref) - grad KL(pi_ref || pi)
    ],
)
@pytest.mark.parametrize("config_cls", [GRPOConfig, ReinforceConfig])
def test_biased_kl_choices_are_refused_with_the_unbiased_alternative(config_cls, estimator, placement, alternative):
    with pytest.raises(ValueError, match=alternative):
        config_cls(beta=0.1, kl_estimator=estimator, kl_placement=placement)
    config_cls(beta=0.0, kl_estimator=estimator, kl_placement=placement)  # KL off: the choice is moot


def test_the_accepted_kl_choices_and_the_defaults():
    for config_cls in [GRPOConfig, ReinforceConfig]:
        config_cls(beta=0.1, kl_estimator="k1", kl_placement="reward")  # grad KL(pi || pi_ref), REINFORCE form
        config_cls(beta=0.1, kl_estimator="k2", kl_placement="loss")  # grad KL(pi || pi_ref), on-policy
        config_cls(beta=0.1, kl_estimator="k3", kl_placement="loss")  # grad KL(pi_ref || pi), GRPO's choice
    assert (GRPOConfig().kl_estimator, GRPOConfig().kl_placement) == ("k3", "loss")
    assert (ReinforceConfig().kl_estimator, ReinforceConfig().kl_placement) == ("k1", "reward")
    assert PPOConfig().kl_estimator == "k1"
    for estimator in ["k2", "k3"]:  # PPO's KL is always per-token shaping in the reward
        with pytest.raises(ValueError, match="kl_estimator='k1'"):
            PPOConfig(beta=0.1, kl_estimator=estimator)
    with pytest.raises(ValueError, match="kl_estimator"):
        GRPOConfig(kl_estimator="k4")


def dropout_run() -> ToyRun:
    """A toy run whose model has attention dropout, wrapped by a Policy after the fact."""
    run = ToyRun(seed=0, groups=2, group_size=4)
    config = copy.deepcopy(run.model.config)
    config.attention_dropout = 0.5
    torch.manual_seed(0)
    run.model = LlamaForCausalLM(config).train()
    run.policy = Policy(run.model)
    run.reference = Policy(copy.deepcopy(run.model).eval().requires_grad_(False))
    run.engine = TransformersEngine(run.model, run.tokenizer, chat_template=False)
    return run


@pytest.mark.parametrize("cls", [GRPO, PPO])
@pytest.mark.parametrize("with_dropout", [False, True])
def test_the_first_minibatch_sees_ratio_one_and_later_ones_do_not(cls, with_dropout):
    run = dropout_run() if with_dropout else ToyRun(seed=0, groups=2, group_size=4)
    config_cls = GRPOConfig if cls is GRPO else PPOConfig
    agent = make_agent(cls, run, config_cls(beta=0.0, epochs=3, minibatch_size=4), torch.optim.Adam, lr=1e-2)
    run.model.train()  # whatever mode the trainer leaves the model in
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = run.experience(0)
        exp.rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0])
        metrics = agent.update(exp)
    # pi_old is the policy of the first gradient pass: the ratio is exactly 1 there, nothing is clipped
    assert metrics["ratio_first"] == 1.0 and metrics["clip_fraction_first"] == 0.0
    assert metrics["approx_kl"] > 0 and metrics["ratio_mean"] != 1.0  # later passes see pi != pi_old
