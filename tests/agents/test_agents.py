"""Bookkeeping every agent must get right: unscored and dropped rows, the KL controller, pi_old, metrics, bad config."""

import copy
import warnings

import pytest
import torch
from toymodels import ToyRun, target_fraction
from transformers import LlamaForCausalLM

import rlvr
from rlvr.agents import GRPO, PPO, GRPOConfig, PPOConfig, Reinforce, ReinforceConfig
from rlvr.agents.advantages import overlong_penalty
from rlvr.agents.critic import Critic
from rlvr.agents.experience import Experience, rollout_metrics
from rlvr.policy import Policy
from rlvr.rewards import WeightedSum, as_verifier
from rlvr.rollout import SamplingParams, TransformersEngine

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


def grads_after(agent_cls, config, rewards, scored=None, rows=None, truncated=None, max_new_tokens=4):
    """The policy's gradient at the (last) optimiser step of one update; ``rows`` picks rows of the batch first."""
    run = ToyRun(seed=1, groups=2, group_size=4, max_new_tokens=max_new_tokens)
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
        if truncated is not None:
            exp.truncated = torch.tensor(truncated)
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
        if kwargs.get("use_cache") and kwargs.get("past_key_values") is None:
            return  # a shared prompt's prefill (rlvr.prefix): the completion pass after it counts the rows
        counter[key] += (kwargs.get("input_ids") if "input_ids" in kwargs else args[0]).shape[0]

    module.register_forward_hook(hook, with_kwargs=True)


@pytest.mark.parametrize(
    "cls, config, scored, kept, passes",
    [
        # group 0 has all-equal rewards and is dropped; row 7 is unscored: rows 4, 5, 6 are kept
        (GRPO, GRPOConfig(beta=0.1, drop_zero_std_groups=True), [True] * 7 + [False], 3, {"policy": 1, "reference": 1}),
        (GRPO, GRPOConfig(beta=0.1, epochs=2), [True] * 6 + [False] * 2, 6, {"policy": 3, "reference": 1}),
        # pi_old read from the sampler: no no-grad pass before the steps
        (
            GRPO,
            GRPOConfig(beta=0.1, epochs=2, old_logprobs="sampler"),
            [True] * 6 + [False] * 2,
            6,
            {"policy": 2, "reference": 1},
        ),
        (
            GRPO,
            GRPOConfig(beta=0.0, minibatch_size=4, old_logprobs="sampler"),
            [True] * 8,
            8,
            {"policy": 1, "reference": 1},
        ),
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


# -- the loss and estimator variants: GSPO, CISPO, REINFORCE++, DAPO's overlong shaping, GDPO ---------------

CONFIGS = {GRPO: GRPOConfig, Reinforce: ReinforceConfig, PPO: PPOConfig}


@pytest.mark.parametrize(
    "make, key",
    [
        (lambda: GRPOConfig(policy_loss="ppo"), "policy_loss"),
        (lambda: GRPOConfig(policy_loss="gspo", aggregation="token_mean"), "aggregation='sequence_mean'"),
        (lambda: GRPOConfig(clip_eps=0.0), "clip_eps"),
        (lambda: GRPOConfig(clip_eps=1.5), "clip_eps"),
        (lambda: GRPOConfig(clip_eps_high=-0.1), "clip_eps_high"),
        (lambda: GRPOConfig(multi_reward="mean"), "multi_reward"),
        (lambda: GRPOConfig(multi_reward="gdpo", beta=0.1, kl_estimator="k1", kl_placement="reward"), "kl_placement"),
        (lambda: GRPOConfig(component_weights={"j": 2.0}), "component_weights"),  # only GDPO reads them
        (lambda: GRPOConfig(multi_reward="gdpo", component_weights={"j": "high"}), "component_weights"),
        (lambda: ReinforceConfig(baseline="reinforce++"), "baseline"),
        (lambda: ReinforceConfig(whiten_over="batch"), "whiten_over"),
        (lambda: ReinforceConfig(whiten_over="sequence"), "whiten_over"),  # batch_mean does not whiten
    ],
)
def test_bad_variant_options_are_refused_naming_the_key(make, key):
    with pytest.raises(ValueError, match=key):
        make()


@pytest.mark.parametrize("config_cls", [GRPOConfig, ReinforceConfig, PPOConfig])
def test_bad_overlong_options_are_refused_naming_the_key(config_cls):
    with pytest.raises(ValueError, match="token_budget"):
        config_cls(overlong_buffer=4)  # the penalty is placed before the budget: it must be known
    with pytest.raises(ValueError, match="token_budget"):
        config_cls(overlong_buffer=8, token_budget=4)
    with pytest.raises(ValueError, match="overlong_buffer"):
        config_cls(overlong_buffer=-1)
    with pytest.raises(ValueError, match="overlong_penalty"):
        config_cls(overlong_buffer=2, token_budget=4, overlong_penalty=-1.0)
    assert config_cls(overlong_buffer=4, token_budget=4, overlong_filter=True).overlong_filter


def test_the_clip_range_and_aggregation_follow_the_policy_loss_unless_set():
    assert (GRPOConfig().clip_range(), GRPOConfig().aggregation_mode()) == ((0.2, 0.2), "token_mean")
    gspo = GRPOConfig(policy_loss="gspo")
    assert (gspo.clip_range(), gspo.aggregation_mode()) == ((3e-4, 4e-4), "sequence_mean")
    cispo = GRPOConfig(policy_loss="cispo")
    assert (cispo.clip_range(), cispo.aggregation_mode()) == ((1.0, 0.2), "token_mean")
    assert GRPOConfig(clip_eps=0.1).clip_range() == (0.1, 0.1)
    assert GRPOConfig(policy_loss="gspo", clip_eps=1e-3).clip_range() == (1e-3, 1e-3)
    assert GRPOConfig(clip_eps=0.2, clip_eps_high=0.28).clip_range() == (0.2, 0.28)  # DAPO's clip-higher
    assert GRPOConfig(policy_loss="cispo", clip_eps_high=4.0).clip_range() == (1.0, 4.0)
    assert GRPOConfig(policy_loss="gspo", aggregation="sequence_mean").aggregation_mode() == "sequence_mean"
    assert GRPOConfig(aggregation="constant", aggregation_constant=4).aggregation_mode() == "constant"


@pytest.mark.parametrize("policy_loss", ["gspo", "cispo"])
def test_gspo_and_cispo_see_ratio_one_first_and_reuse_samples_after(policy_loss):
    run = ToyRun(seed=0, groups=2, group_size=4)
    config = GRPOConfig(beta=0.0, epochs=3, minibatch_size=4, policy_loss=policy_loss, clip_eps=0.2)
    agent = make_agent(GRPO, run, config, torch.optim.Adam, lr=1e-2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = run.experience(0)
        exp.rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0])
        metrics = agent.update(exp)
    assert metrics["ratio_first"] == 1.0 and metrics["clip_fraction_first"] == 0.0
    assert metrics["approx_kl"] > 0 and metrics["ratio_mean"] != 1.0


@pytest.mark.parametrize("cls", [GRPO, Reinforce, PPO])
def test_overlong_filter_leaves_truncated_rows_out_like_absent_rows(cls):
    rewards = [1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    truncated = [False, True, False, False, True, False, False, False]
    config = CONFIGS[cls](beta=0.0, max_grad_norm=None, overlong_filter=True)
    g_filtered, metrics = grads_after(cls, config, rewards, truncated=truncated)
    kept = [i for i, t in enumerate(truncated) if not t]
    plain = CONFIGS[cls](beta=0.0, max_grad_norm=None)
    g_absent, _ = grads_after(cls, plain, [rewards[i] for i in kept], rows=torch.tensor(kept))
    torch.testing.assert_close(g_filtered, g_absent)
    assert metrics["rows_kept"] == 6 and metrics["truncated_fraction"] == pytest.approx(2 / 8)


def penalised(rewards: list[float], budget: int, buffer: int, penalty: float) -> tuple[list[float], float]:
    """``rewards`` plus the overlong penalty of the batch ``grads_after`` samples, and the penalty's mean."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lengths = ToyRun(seed=1, groups=2, group_size=4, max_new_tokens=budget).experience(0).completion_mask.sum(1)
    pen = overlong_penalty(lengths, budget, buffer, penalty)
    assert pen.unique().numel() > 1, "the batch needs completions of several lengths"
    return [r + float(p) for r, p in zip(rewards, pen, strict=True)], float(pen.mean())


@pytest.mark.parametrize("cls", [GRPO, Reinforce, PPO])
def test_overlong_penalty_is_added_to_the_reward_before_the_baseline(cls):
    rewards = [1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    shaped, pen_mean = penalised(rewards, budget=16, buffer=12, penalty=0.5)
    config = CONFIGS[cls](beta=0.0, max_grad_norm=None, overlong_buffer=12, token_budget=16, overlong_penalty=0.5)
    g_option, metrics = grads_after(cls, config, rewards, max_new_tokens=16)
    g_by_hand, _ = grads_after(cls, CONFIGS[cls](beta=0.0, max_grad_norm=None), shaped, max_new_tokens=16)
    torch.testing.assert_close(g_option, g_by_hand)
    assert metrics["reward_mean"] == pytest.approx(sum(rewards) / 8)  # the verifier's reward is what is logged
    assert metrics["overlong_penalty_mean"] == pytest.approx(pen_mean)


def test_a_token_budget_below_the_rollouts_is_an_error_at_update():
    config = GRPOConfig(beta=0.0, overlong_buffer=1, token_budget=2)  # the rollouts sample up to 4 tokens
    with pytest.raises(ValueError, match="token_budget=2"):
        grads_after(GRPO, config, [1.0, 0.0] * 4)


@pytest.mark.parametrize("baseline", ["reinforce_plus_plus", "reinforce_plus_plus_baseline"])
@pytest.mark.parametrize("whiten_over", ["token", "sequence"])
def test_reinforce_plus_plus_unscored_rows_count_like_absent_rows(baseline, whiten_over):
    config = ReinforceConfig(beta=0.1, baseline=baseline, whiten_over=whiten_over, max_grad_norm=None)
    rewards, scored = [1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0], [True] * 7 + [False]
    g_unscored, metrics = grads_after(Reinforce, config, rewards, scored)
    g_absent, _ = grads_after(Reinforce, config, rewards[:7], scored[:7], rows=torch.arange(7))
    torch.testing.assert_close(g_unscored, g_absent)
    assert metrics["advantage_abs_mean"] > 0


def composite_run(**kwargs) -> ToyRun:
    """A toy run whose reward is composed of two leaves, ``j`` and ``a`` (the share of each letter)."""
    run = ToyRun(**kwargs)
    problems = [rlvr.Problem(id=p, prompt=p, reference="j") for p in ["abc", "cab", "bad", "ace", "fig", "hide"]]
    reward = WeightedSum({"j": as_verifier(target_fraction, "j"), "a": as_verifier(letter_a, "a")}, {"a": 0.1})
    run.env = rlvr.BatchedEnv(rlvr.DatasetEnv(problems, reward=reward))
    return run


def letter_a(completion: str, problem: rlvr.Problem) -> float:
    return completion[:4].count("a") / 4


def components_experience(run: ToyRun, step: int = 0) -> Experience:
    problems = run.env.reset(run.groups, seed=step)
    params = SamplingParams(n=run.group_size, max_new_tokens=run.max_new_tokens, seed=step)
    rollouts = run.engine.generate([p.prompt for p in problems], params)
    result = run.env.step(problems, rollouts.groups())
    return Experience.from_rollouts(rollouts, result.rewards, result.scored, infos=result.infos)


def test_the_experience_carries_each_reward_component_aligned_with_its_rows():
    run = composite_run(seed=0, groups=2, group_size=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = components_experience(run)
    assert exp.component_names == ("a", "j") and exp.reward_components.shape == (8, 2)
    torch.testing.assert_close(exp.rewards, exp.reward_components @ torch.tensor([0.1, 1.0]))  # recomposes
    picked = exp.rows(torch.tensor([5, 2]))
    torch.testing.assert_close(picked.reward_components, exp.reward_components[[5, 2]])
    exp.scored = torch.tensor([True] * 7 + [False])
    assert exp.with_unscored_as_zero().reward_components[7].abs().sum() == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metrics = rollout_metrics(exp)
    j = exp.reward_components[:7, 1]
    assert metrics["component/j/mean"] == pytest.approx(float(j.mean()))
    assert metrics["component/j/std"] == pytest.approx(float(j.std()))
    assert {"component/a/mean", "component/a/std"} <= set(metrics)
    with pytest.raises(ValueError, match="step infos"):
        Experience.from_rollouts(run.engine.generate(["a"], SamplingParams(n=2)), torch.zeros(2), infos=[{}])


def test_gdpo_needs_the_components_and_judges_signal_per_component():
    run = ToyRun(seed=1, groups=2, group_size=4)
    agent = make_agent(GRPO, run, GRPOConfig(beta=0.0, multi_reward="gdpo"))
    with pytest.raises(ValueError, match="infos=result.infos"):
        agent.update(experience(run, [1.0] * 8))
    run = composite_run(seed=1, groups=2, group_size=4)
    agent = make_agent(GRPO, run, GRPOConfig(beta=0.1, multi_reward="gdpo", drop_zero_std_groups=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = components_experience(run)
        # group 0: the combined reward is constant, its components are not; group 1: constant in both
        exp.reward_components = torch.tensor([[1.0, 0.0], [0.0, 0.1]] * 2 + [[0.0, 0.5]] * 4)
        exp.rewards = exp.reward_components @ torch.tensor([0.1, 1.0])
        metrics = agent.update(exp)
    assert metrics["zero_std_groups"] == 1 and metrics["rows_kept"] == 4
    assert metrics["advantage_abs_mean"] > 0  # GRPO on the combined reward would see no signal at all
    combined = make_agent(GRPO, run, GRPOConfig(beta=0.1, drop_zero_std_groups=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert combined.update(exp)["zero_std_groups"] == 2
    misnamed = make_agent(GRPO, run, GRPOConfig(beta=0.0, multi_reward="gdpo", component_weights={"b": 1.0}))
    with pytest.raises(ValueError, match=r"\['b'\], not components of this reward: a, j"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        misnamed.update(exp)


def test_micro_batches_keep_a_groups_rows_together():
    from rlvr.agents.experience import micro_batches, minibatches

    (mb,) = minibatches(16, None, torch.Generator().manual_seed(0))
    assert mb.tolist() != list(range(16))  # the minibatch itself is shuffled
    chunks = [c.tolist() for c in micro_batches(mb, 8)]
    assert chunks == [list(range(8)), list(range(8, 16))]  # a group of 8 shares one prompt pass
    halves = minibatches(16, 8, torch.Generator().manual_seed(1))
    assert sorted(sum((c.tolist() for h in halves for c in micro_batches(h, 3)), [])) == list(range(16))


def test_minibatches_of_whole_groups_partition_the_rows():
    from rlvr.agents.experience import minibatches

    group = torch.tensor([0] * 4 + [1] * 4 + [2] * 3 + [3] * 5)  # 16 rows, unequal groups
    for seed in range(5):
        chunks = minibatches(16, 8, torch.Generator().manual_seed(seed), group)
        assert len(chunks) == 2
        assert sorted(torch.cat(chunks).tolist()) == list(range(16))  # a partition
        for c in chunks:
            members = set(group[c].tolist())
            assert all(int((group[c] == g).sum()) == int((group == g).sum()) for g in members)  # whole groups
    orders = {tuple(minibatches(16, 8, torch.Generator().manual_seed(s), group)[0].tolist()) for s in range(8)}
    assert len(orders) > 1  # the groups are shuffled
    small = minibatches(16, 2, torch.Generator().manual_seed(0), group)  # below a group's size
    assert sorted(len(c) for c in small) == [3, 4, 4, 5]  # one group each, no empty minibatch
    (whole,) = minibatches(16, None, torch.Generator().manual_seed(0), group)
    assert sorted(whole.tolist()) == list(range(16))


def _update_grads(config: GRPOConfig, shift: float = 0.0) -> list[torch.Tensor]:
    """The policy gradient at every optimiser step of one GRPO update; ``shift`` is added to the sampler's log-probs."""
    run = ToyRun(seed=1, groups=2, group_size=4, max_new_tokens=4)
    agent = GRPO(run.policy, torch.optim.SGD(run.policy.parameters(), lr=0.5), config, generator=torch.Generator())
    agent.generator.manual_seed(0)
    grads: list[torch.Tensor] = []
    agent.optimizer.register_step_pre_hook(
        lambda *a, **k: grads.append(
            torch.cat([p.grad.flatten() for p in run.policy.parameters() if p.grad is not None])
        )
    )
    exp = experience(run, [1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0])
    exp.sampler_logprobs = exp.sampler_logprobs + shift * exp.completion_mask
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        agent.update(exp)
    return grads


def test_pi_old_from_the_sampler_matches_a_recomputed_pi_old_and_is_really_read():
    # two minibatches of one group each: the second step's ratio is against pi_old
    base = dict(beta=0.0, minibatch_size=4, max_grad_norm=None)
    recomputed = _update_grads(GRPOConfig(**base, old_logprobs="recompute"))
    sampled = _update_grads(GRPOConfig(**base, old_logprobs="sampler"))
    assert len(recomputed) == len(sampled) == 2
    assert not torch.allclose(recomputed[0], recomputed[1])  # the second minibatch is off-policy: a real check
    for r, s in zip(recomputed, sampled, strict=True):
        torch.testing.assert_close(s, r, atol=1e-5, rtol=1e-4)  # the transformers sampler is the policy
    shifted = _update_grads(GRPOConfig(**base, old_logprobs="sampler"), shift=1.0)  # ratio e^-1: clipped
    assert not torch.allclose(shifted[0], sampled[0], atol=1e-4)
    recomputed_shifted = _update_grads(GRPOConfig(**base, old_logprobs="recompute"), shift=1.0)
    torch.testing.assert_close(recomputed_shifted[1], recomputed[1])  # "recompute" never reads them


def test_pi_old_from_the_sampler_refuses_tis_and_a_batch_without_sampler_logprobs():
    with pytest.raises(ValueError, match="tis corrects pi_old / mu"):
        GRPOConfig(old_logprobs="sampler", tis="token")
    with pytest.raises(ValueError, match="old_logprobs must be"):
        GRPOConfig(old_logprobs="engine")
    with pytest.raises(ValueError, match="minibatch_size must be"):
        GRPOConfig(minibatch_size=0)
    run = ToyRun(seed=1, groups=2, group_size=4)
    agent = make_agent(GRPO, run, GRPOConfig(beta=0.0, minibatch_size=4, old_logprobs="sampler"))
    exp = experience(run, [1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0])
    exp.sampler_logprobs = None
    with pytest.raises(ValueError, match="needs the rollout engine's log-probs"):
        agent.update(exp)


def test_critic_warm_up_fits_the_critic_and_leaves_the_policy_and_beta_alone():
    run = ToyRun(seed=1, groups=2, group_size=4)
    agent = make_agent(PPO, run, PPOConfig(beta=0.1, kl_target=0.01, epochs=4), optimizer=torch.optim.Adam, lr=3e-3)
    exp = experience(run, [1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0])
    policy_before = [p.detach().clone() for p in run.policy.parameters()]
    critic_before = [p.detach().clone() for p in agent.critic.parameters()]
    seen: dict[str, int] = {}
    rows_through(run.policy.model, seen, "policy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = agent.warm_up_critic(exp)
        for _ in range(5):
            last = agent.warm_up_critic(exp)
    assert all(torch.equal(a, b) for a, b in zip(policy_before, run.policy.parameters(), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(critic_before, agent.critic.parameters(), strict=True))
    assert seen["policy"] == 6 * 8  # pi_old's no-grad pass only: no policy forward with gradients
    assert agent.kl_ctl.beta == 0.1  # the adaptive coefficient moves only with policy steps
    assert "grad_norm" not in last and "ratio_first" not in last and last["critic_grad_norm"] > 0
    # explained variance is measured against the values before each call: fitting the same batch raises it
    assert last["explained_variance"] > first["explained_variance"]
    assert last["explained_variance_last"] > first["explained_variance_last"]
    assert last["value_loss"] < first["value_loss"]


def test_explained_variance_is_left_out_when_every_return_is_equal():
    run = ToyRun(seed=1, groups=2, group_size=4)
    agent = make_agent(PPO, run, PPOConfig(beta=0.0, lam=1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flat = agent.update(experience(run, [1.0] * 8))  # beta 0, gamma = lam = 1: every token's return is 1
        varied = agent.update(experience(run, [1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0]))
    assert "explained_variance" not in flat and "explained_variance_last" not in flat
    assert varied["explained_variance"] == varied["explained_variance"]  # a number, not NaN
    assert varied["explained_variance"] < 1.0
