"""Episodes in the rollout layout: the trainer's ids are the sampler's, and environment tokens carry no loss or KL."""

import copy
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from gametoy import GameRun, game_env
from toymodels import tiny_llama

import rlvr
from rlvr.agents import GRPO, PPO, Experience, GRPOConfig, PPOConfig, Reinforce, ReinforceConfig
from rlvr.agents.advantages import gae
from rlvr.agents.critic import Critic
from rlvr.agents.kl import shaped_token_rewards
from rlvr.episode_rollout import ObservationRenderer, episode_metrics, generate_episodes
from rlvr.episodes import EpisodeEnv, Response, message
from rlvr.policy import Policy
from rlvr.rollout import SamplingParams, derive_seed
from rlvr.sampler import sample_tokens

pytestmark = pytest.mark.filterwarnings("ignore:.*hit the length limit")


class Chatter(EpisodeEnv, rlvr.DatasetEnv):
    """Replies 'tell me more' to every turn; the last turn earns 1."""

    def __init__(self, **kwargs):
        problems = [rlvr.Problem(id=str(i), prompt=[message("user", f"story {i}")], reference="") for i in range(3)]
        super().__init__(problems, reward=lambda completion, problem: 0.0, **kwargs)

    def respond(self, action):
        last = self.turns == self.max_turns
        return Response(() if last else (message("user", "tell me more"),), 1.0 if last else 0.0, last)


def record_sampler(monkeypatch):
    """Wrap the sampler the episode engine calls; returns the list of (context rows, sampled rows) per call."""
    import rlvr.episode_rollout as module

    calls, real = [], module.sample_tokens

    def spy(model, ids, mask, *, n, **kwargs):
        tokens, logprobs = real(model, ids, mask, n=n, **kwargs)
        contexts = [row[m.bool()].tolist() for row, m in zip(ids, mask, strict=True)]
        calls.append(([c for c in contexts for _ in range(n)], tokens.tolist(), kwargs["eos_ids"]))
        return tokens, logprobs

    monkeypatch.setattr(module, "sample_tokens", spy)
    return calls


def check_token_in_token_out(episodes, calls, model, tokenizer, chat_template):
    """Every turn's context is a prefix of its row, its sampled tokens follow it, env tokens are the rendering."""
    rows = [ids[m.bool()].tolist() for ids, m in zip(episodes.input_ids, episodes.attention_mask, strict=True)]
    active = list(range(len(rows)))
    for turn, (contexts, sampled, eos_ids) in enumerate(calls):
        assert len(contexts) == len(active)
        for i, context, tokens in zip(active, contexts, sampled, strict=True):
            assert rows[i][: len(context)] == context, f"episode {i} turn {turn}: the context was re-tokenised"
            end = next((k + 1 for k, t in enumerate(tokens) if t in eos_ids), len(tokens))
            got = rows[i][len(context) : len(context) + end]
            assert got == tokens[: len(got)], f"episode {i} turn {turn}: the sampled tokens changed"
        active = [i for i in active if len(episodes.turn_texts[i]) > turn + 1]
    P = episodes.prompt_len
    assert not (episodes.completion_mask & episodes.observation_mask).any()
    policy = Policy(model, share_prompts=False)
    logp = policy.logprobs(episodes.input_ids, episodes.attention_mask, P)  # [N, T]
    m = episodes.completion_mask.bool()
    assert torch.allclose(logp[m], episodes.sampler_logprobs[m], atol=1e-4), "the trainer scores other tokens"
    assert (episodes.sampler_logprobs[~m] == 0).all()


def test_toy_episodes_keep_the_sampled_ids_and_render_each_observation_once(monkeypatch):
    run = GameRun(seed=1)
    calls = record_sampler(monkeypatch)
    envs = [Chatter(max_turns=3) for _ in range(6)]
    problems = rlvr.BatchedEnv(Chatter()).reset(2, seed=0)
    params = SamplingParams(n=3, max_new_tokens=4, seed=0)
    episodes = generate_episodes(run.model, run.tokenizer, envs, problems, params, chat_template=False)
    assert len(calls) == 3 and all(len(t) == 3 for t in episodes.turn_texts)
    check_token_in_token_out(episodes, calls, run.model, run.tokenizer, False)
    assert episodes.returns.tolist() == [1.0] * 6 and episodes.finish_reasons == ["stop"] * 6
    for i in range(6):  # each observation is "tell me more\n" (after a newline when the turn had no EOS)
        env_ids = episodes.completion_ids[i][episodes.observation_mask[i].bool()].tolist()
        assert run.tokenizer.decode(env_ids).replace("\n", "").count("tell me more") == 2


SMOLLM2 = Path.home() / ".cache" / "rlvr" / "models" / "smollm2-135m-instruct"


@pytest.mark.skipif(not (SMOLLM2 / "tokenizer.json").exists(), reason="the converted default model is not cached")
def test_chat_template_episodes_keep_the_sampled_ids(monkeypatch):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(SMOLLM2)
    model = tiny_llama(len(tok), seed=0)
    calls = record_sampler(monkeypatch)
    envs = [Chatter(max_turns=2) for _ in range(2)]
    problems = rlvr.BatchedEnv(Chatter()).reset(1, seed=0)
    episodes = generate_episodes(model, tok, envs, problems, SamplingParams(n=2, max_new_tokens=5, seed=0))
    check_token_in_token_out(episodes, calls, model, tok, True)
    renderer = ObservationRenderer(tok)
    assert renderer.tail == "<|im_end|>\n"
    for i in range(2):
        env_ids = episodes.completion_ids[i][episodes.observation_mask[i].bool()].tolist()
        closed = "" if tok.eos_token_id in calls[0][1][i] else "<|im_end|>"  # the first turn sampled its EOS or not
        expected = closed + "\n<|im_start|>user\ntell me more<|im_end|>\n<|im_start|>assistant\n"
        assert tok.decode(env_ids) == expected


def test_the_total_token_budget_cuts_episodes():
    run = GameRun(seed=0)
    envs = [Chatter(max_turns=5) for _ in range(4)]
    problems = rlvr.BatchedEnv(Chatter()).reset(2, seed=0)
    episodes = generate_episodes(
        run.model, run.tokenizer, envs, problems, SamplingParams(n=2, max_new_tokens=4, seed=0),
        chat_template=False, max_total_tokens=10,
    )  # fmt: skip
    lengths = (episodes.completion_mask | episodes.observation_mask).sum(dim=1)
    assert int(lengths.max()) <= 10 and episodes.finish_reasons == ["length"] * 4
    metrics = episode_metrics(episodes)
    assert metrics["episode/truncated_fraction"] == 1.0 and metrics["episode/return_mean"] == 0.0


def make_agent(name, run):
    opt = torch.optim.Adam(run.policy.parameters(), lr=1e-3)
    if name == "grpo":
        return GRPO(run.policy, opt, GRPOConfig(beta=0.5, micro_batch_size=64), reference=run.reference)
    if name == "reinforce":
        cfg = ReinforceConfig(beta=0.5, kl_placement="loss", kl_estimator="k2", micro_batch_size=64)
        return Reinforce(run.policy, opt, cfg, reference=run.reference)
    critic = Critic(copy.deepcopy(run.model))
    return PPO(
        run.policy, opt, critic, torch.optim.Adam(critic.parameters(), lr=1e-3),
        PPOConfig(beta=0.5, epochs=1, micro_batch_size=64), reference=run.reference,
    )  # fmt: skip


@pytest.mark.parametrize("name", ["grpo", "reinforce", "ppo"])
def test_no_environment_token_carries_loss_or_kl(name, monkeypatch):
    """The gradient of each agent's whole loss (policy term and KL) w.r.t. every token's log-prob is 0 on env tokens."""
    run = GameRun(seed=2)
    envs = [game_env() for _ in range(16)]
    problems = rlvr.BatchedEnv(game_env()).reset(4, seed=0)
    episodes = generate_episodes(
        run.model, run.tokenizer, envs, problems, SamplingParams(n=4, max_new_tokens=3, seed=0), chat_template=False
    )
    episodes.turn_rewards = [[float(i % 3 == 0)] + r[1:] for i, r in enumerate(episodes.turn_rewards)]  # some signal
    exp = Experience.from_rollouts(episodes, episodes.returns, episodes.scored)
    assert exp.attention_mask[:, exp.prompt_len :].sum() > exp.completion_mask.sum()  # env tokens are attended
    assert episodes.observation_mask.any()
    probes, real = [], Policy.forward

    def probed(self, *args, **kwargs):
        logp, entropy = real(self, *args, **kwargs)
        if not torch.is_grad_enabled():
            return logp, entropy
        probe = torch.zeros_like(logp, requires_grad=True)
        probes.append(probe)
        return logp + probe, entropy

    monkeypatch.setattr(Policy, "forward", probed)
    metrics = make_agent(name, run).update(exp)
    assert metrics["kl_ref"] >= 0.0 and len(probes) == 1
    grad = probes[0].grad  # [N, T]
    assert (grad[exp.completion_mask == 0] == 0).all()
    assert (grad[exp.completion_mask == 1] != 0).any()


def test_per_turn_rewards_sit_on_each_turns_last_policy_token():
    run = GameRun(seed=0)
    envs = [Chatter(max_turns=3) for _ in range(2)]
    problems = rlvr.BatchedEnv(Chatter()).reset(1, seed=0)
    episodes = generate_episodes(
        run.model, run.tokenizer, envs, problems, SamplingParams(n=2, max_new_tokens=3, seed=0), chat_template=False
    )
    episodes.turn_rewards = [[0.25, 0.5, 1.0]] * 2
    rewards = episodes.token_rewards()
    for i in range(2):
        cols = rewards[i].nonzero().squeeze(1).tolist()
        assert cols == episodes.turn_ends[i] and rewards[i, cols].tolist() == [0.25, 0.5, 1.0]
        assert all(episodes.completion_mask[i, c] == 1 for c in cols)
        assert all(episodes.completion_mask[i, c + 1] == 0 for c in cols[:-1])  # an observation follows
    assert episodes.returns.tolist() == [1.75, 1.75]


def test_ppo_credit_follows_policy_tokens_across_environment_tokens():
    mask = torch.tensor([[1, 1, 0, 0, 1, 0]], dtype=torch.float32)  # turn, observation, turn, padding
    token_rewards = shaped_token_rewards(torch.tensor([1.0]), torch.zeros_like(mask), mask, beta=0.0)
    advantages, _ = gae(token_rewards, torch.zeros_like(mask), mask, gamma=1.0, lam=1.0)
    assert token_rewards[0].tolist() == [0, 0, 0, 0, 1, 0]
    assert advantages[0].tolist() == [1, 1, 0, 0, 1, 0]


class TokenEngine:
    """A stand-in for ``VLLMEngine.sample_ids``: rlvr's sampler on one context at a time (vLLM: tests/vllm_engine)."""

    max_model_len = 64

    def __init__(self, model, pad_id):
        self.model, self.pad_id = model, pad_id
        self.calls = []  # per turn: (contexts, sampled tokens, stop ids), as record_sampler's
        self.requests = []  # per turn: (seed, max_tokens) of each request

    def sample_ids(self, contexts, params, seeds, *, max_tokens, stop_token_ids):
        out = []
        for context, seed, limit in zip(contexts, seeds, max_tokens, strict=True):
            torch.manual_seed(seed)
            ids = torch.tensor([context])
            tokens, logprobs = sample_tokens(
                self.model, ids, torch.ones_like(ids), n=1, max_new_tokens=limit, eos_ids=stop_token_ids,
                pad_id=self.pad_id, temperature=params.temperature,
            )  # fmt: skip
            out.append(SimpleNamespace(token_ids=tokens[0].tolist(), logprobs=logprobs[0].tolist()))
        self.calls.append(([list(c) for c in contexts], [s.token_ids for s in out], list(stop_token_ids)))
        self.requests.append(list(zip(seeds, max_tokens, strict=True)))
        return out


def test_an_engine_in_place_of_the_model_gets_token_ids_and_per_turn_seeds():
    run = GameRun(seed=1)
    engine = TokenEngine(run.model, run.tokenizer.pad_token_id)
    envs = [Chatter(max_turns=3) for _ in range(4)]
    problems = rlvr.BatchedEnv(Chatter()).reset(2, seed=0)
    params = SamplingParams(n=2, max_new_tokens=4, seed=5)
    episodes = generate_episodes(
        engine, run.tokenizer, envs, problems, params, chat_template=False, max_total_tokens=20
    )
    check_token_in_token_out(episodes, engine.calls, run.model, run.tokenizer, False)
    prompt_lens = episodes.prompt_mask.sum(1).tolist()
    active = list(range(4))
    for turn, (contexts, requests) in enumerate(zip([c[0] for c in engine.calls], engine.requests, strict=True)):
        for i, context, (seed, limit) in zip(active, contexts, requests, strict=True):
            assert seed == derive_seed(5, i, turn)
            assert limit == min(4, 20 - (len(context) - prompt_lens[i])), "a turn asks only for the tokens left"
        active = [i for i in active if len(episodes.turn_texts[i]) > turn + 1]
    assert len(engine.calls) == 2 and any(limit < 4 for _, limit in engine.requests[1]), "the budget caps turn 2"
    engine.max_model_len = 27  # prompts of 8 tokens plus 20
    with pytest.raises(ValueError, match="max_model_len=27"):
        generate_episodes(engine, run.tokenizer, envs, problems, params, chat_template=False, max_total_tokens=20)
