import copy

import pytest
import torch
from toymodels import char_tokenizer, tiny_llama
from transformers import LlamaForCausalLM

from rlvr.agents.critic import Critic
from rlvr.policy import Policy, add_lora, reference_logprobs
from rlvr.rollout import SamplingParams, TransformersEngine


@pytest.fixture(scope="module")
def setup():
    tok = char_tokenizer()
    model = tiny_llama(len(tok), seed=1)
    return tok, model


def manual_logprobs(model, ids, prompt_len, temperature=1.0):
    """Naive oracle: score each completion token with a forward pass over the unpadded prefix."""
    out = []
    for t in range(prompt_len, ids.shape[0]):
        logits = model(input_ids=ids[None, :t]).logits[0, -1] / temperature
        out.append(torch.log_softmax(logits.float(), -1)[ids[t]])
    return torch.stack(out)


def test_logprobs_match_a_naive_oracle_despite_left_padding(setup):
    tok, model = setup
    policy = Policy(model, temperature=0.7)
    short, long = torch.tensor([5, 6]), torch.tensor([3, 4, 5, 6])
    completion = torch.tensor([7, 8, 9])
    ids = torch.stack([torch.cat([torch.tensor([0, 0]), short, completion]), torch.cat([long, completion])])
    att = torch.tensor([[0, 0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1]])
    logp, entropy = policy(ids, att, prompt_len=4, with_entropy=True)
    with torch.no_grad():
        torch.testing.assert_close(
            logp[0], manual_logprobs(model, torch.cat([short, completion]), 2, 0.7), atol=1e-5, rtol=0
        )
        torch.testing.assert_close(
            logp[1], manual_logprobs(model, torch.cat([long, completion]), 4, 0.7), atol=1e-5, rtol=0
        )
    assert entropy.shape == (2, 3) and (entropy > 0).all() and (entropy <= torch.log(torch.tensor(14.0)) + 1e-5).all()


def test_right_padding_is_trimmed_without_changing_values(setup):
    tok, model = setup
    policy = Policy(model)
    ids = torch.randint(3, 14, (3, 8))
    att = torch.ones_like(ids)
    att[:, 5:] = 0  # every completion ends after 2 of its 5 columns
    att[0, 5] = 1  # ... except the first, which has 3
    logp, entropy = policy(ids, att, prompt_len=3, with_entropy=True)
    assert logp.shape == entropy.shape == (3, 5)
    full = torch.stack([manual_logprobs(model, ids[i, :6], 3) for i in range(3)])  # positions 3..5, no padding
    with torch.no_grad():
        torch.testing.assert_close(logp[0, :3], full[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(logp[1:, :2], full[1:, :2], atol=1e-5, rtol=0)
    wide_ids = torch.randint(3, 14, (2, 3 + 40))
    wide_att = torch.zeros_like(wide_ids)
    wide_att[:, :6] = 1  # completions of 3 tokens in 40 columns
    wide, _ = policy(wide_ids, wide_att, prompt_len=3)
    assert wide.shape == (2, 40) and (wide[:, 16:] == 0).all()  # computed up to the 16-column bucket only
    with torch.no_grad():
        torch.testing.assert_close(wide[0, :3], manual_logprobs(model, wide_ids[0, :6], 3), atol=1e-5, rtol=0)


def test_bf16_autocast_stays_close_to_float32(setup):
    tok, model = setup
    ids = torch.randint(3, 14, (4, 8))
    att = torch.ones_like(ids)
    exact = Policy(model).logprobs(ids, att, 3)
    mixed = Policy(model, autocast=torch.bfloat16).logprobs(ids, att, 3)
    assert (exact - mixed).abs().max() < 0.1


def test_micro_batching_changes_nothing(setup):
    tok, model = setup
    ids = torch.randint(3, 14, (7, 6))
    att = torch.ones_like(ids)
    full = Policy(model, micro_batch_size=100).logprobs(ids, att, 2)
    torch.testing.assert_close(Policy(model, micro_batch_size=2).logprobs(ids, att, 2), full, atol=1e-6, rtol=0)


def test_trainer_logprobs_agree_with_the_samplers(setup):
    tok, model = setup
    engine = TransformersEngine(model, tok, chat_template=False)
    rollouts = engine.generate(["abc", "j"], SamplingParams(n=4, max_new_tokens=6, temperature=0.8, seed=3))
    logp = Policy(model, temperature=0.8).logprobs(rollouts.input_ids, rollouts.attention_mask, rollouts.prompt_len)
    mask = rollouts.completion_mask.bool()
    gap = (logp - rollouts.sampler_logprobs)[mask].abs()
    assert gap.max() < 1e-4, gap.max()


def test_critic_reads_the_state_before_each_token(setup):
    tok, model = setup
    critic = Critic(copy.deepcopy(model))
    ids = torch.randint(3, 14, (3, 7))
    values = critic(ids, torch.ones_like(ids), prompt_len=3)
    assert values.shape == (3, 4) and torch.all(values == 0)  # the head starts at zero
    torch.nn.init.normal_(critic.head.weight)
    v_full = critic(ids, torch.ones_like(ids), 3)
    v_prefix = critic(ids[:, :5], torch.ones_like(ids[:, :5]), 3)  # V(s_t) must not see token t
    torch.testing.assert_close(v_full[:, :2], v_prefix, atol=1e-5, rtol=0)


def test_lora_reference_is_the_base_model_without_a_copy(setup):
    tok, _ = setup
    base = tiny_llama(len(tok), seed=2)
    expected = Policy(copy.deepcopy(base))
    policy = Policy(add_lora(base, r=4, alpha=8))
    trainable = [p for p in policy.parameters() if p.requires_grad]
    assert 0 < sum(p.numel() for p in trainable) < sum(p.numel() for p in policy.parameters()) / 5
    ids = torch.randint(3, 14, (2, 6))
    att = torch.ones_like(ids)
    opt = torch.optim.SGD(trainable, lr=1.0)
    for _ in range(3):
        logp, _ = policy(ids, att, 2)
        (-logp.sum()).backward()
        opt.step()
        opt.zero_grad()
    ref = reference_logprobs(policy, None, ids, att, 2)
    torch.testing.assert_close(ref, expected.logprobs(ids, att, 2), atol=1e-6, rtol=0)
    assert (policy.logprobs(ids, att, 2) - ref).abs().max() > 1e-3  # the adapters did change the policy


def test_reference_is_required_without_lora(setup):
    tok, model = setup
    with pytest.raises(ValueError, match="no reference policy"):
        reference_logprobs(Policy(model), None, torch.ones(1, 3, dtype=torch.long), torch.ones(1, 3), 1)
    with pytest.raises(ValueError, match="temperature"):
        Policy(model, temperature=0)


def test_dropout_is_off_in_the_policy_whatever_mode_the_model_is_in():
    """pi_old and the gradient pass must be the same function: no dropout, even after model.train()."""
    tok = char_tokenizer()
    config = tiny_llama(len(tok)).config
    config.attention_dropout = 0.5
    model = LlamaForCausalLM(config)
    policy = Policy(model)
    ids = torch.randint(3, 14, (4, 8))
    att = torch.ones_like(ids)
    model.train()
    first, _ = policy(ids, att, 3)
    second = policy.logprobs(ids, att, 3)
    assert torch.equal(first.detach(), second)
    assert model.training  # the caller's mode is left alone


def test_dropout_of_lora_adapters_is_off_too(setup):
    tok, _ = setup
    policy = Policy(add_lora(tiny_llama(len(tok), seed=2), r=4, alpha=8, dropout=0.5))
    trainable = [p for p in policy.parameters() if p.requires_grad]
    opt = torch.optim.SGD(trainable, lr=1.0)
    ids = torch.randint(3, 14, (2, 6))
    att = torch.ones_like(ids)
    (-policy(ids, att, 2)[0].sum()).backward()  # move the adapters off zero so their dropout would show
    opt.step()
    policy.model.train()
    assert torch.equal(policy(ids, att, 2)[0].detach(), policy(ids, att, 2)[0].detach())
