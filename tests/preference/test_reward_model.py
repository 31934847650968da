"""Reward models on a tiny model.

The score is read at the last real token, Bradley-Terry training separates
held-out pairs, a save/load round trip scores identically, and a PPO critic can
start from the reward model.
"""

import numpy as np
import pytest
import torch
from toymodels import LETTERS, char_tokenizer, tiny_llama

from rlvr.agents import PPO
from rlvr.agents.critic import Critic
from rlvr.policy import Policy
from rlvr.preference.pairs import PreferencePair
from rlvr.preference.reward_model import (
    RewardModel,
    load_reward_model,
    pairwise_accuracy,
    save_reward_model,
    score,
    train_reward_model,
)
from rlvr.tokens import encode_texts


def letter_pairs(n: int, seed: int) -> list[PreferencePair]:
    """Chosen replies contain more 'j's than rejected ones: learnable by a tiny trunk."""
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n):
        prompt = "".join(rng.choice(list(LETTERS[:5]), size=3))
        plain = "".join(rng.choice(list(LETTERS[:8]), size=4))
        chosen = "".join("j" if rng.random() < 0.6 else c for c in plain)
        pairs.append(PreferencePair(prompt, chosen if chosen != plain else "jj" + plain[2:], plain))
    return pairs


def tiny_rm(seed: int = 0):
    tok = char_tokenizer()
    return RewardModel(tiny_llama(len(tok), seed=seed)), tok


def test_score_reads_the_last_real_token_whatever_the_padding():
    rm, tok = tiny_rm()
    alone = score(rm, tok, ["ab"], ["cd"], chat_template=False)
    padded = score(rm, tok, ["ab", "abc"], ["cd", "abcdefghij"], chat_template=False)
    assert padded[0].item() == pytest.approx(alone[0].item(), abs=1e-5)
    ids, mask = encode_texts(tok, ["ab"], ["cd"], chat_template=False)
    assert tok.decode(ids[0]) == "abcd<eos>" and mask.sum() == 5


def test_long_inputs_are_cut_from_the_left_so_the_end_is_still_read():
    rm, tok = tiny_rm()
    ids, mask = encode_texts(tok, ["a" * 40], ["bc"], chat_template=False, max_length=8)
    assert ids.shape[1] == 8 and tok.decode(ids[0]).endswith("bc<eos>")


def test_bradley_terry_training_separates_held_out_pairs():
    rm, tok = tiny_rm()
    train, test = letter_pairs(160, seed=0), letter_pairs(60, seed=1)
    before = pairwise_accuracy(rm, tok, test, chat_template=False)
    history = train_reward_model(rm, tok, train, epochs=3, lr=3e-3, batch_size=16, chat_template=False)
    after = pairwise_accuracy(rm, tok, test, chat_template=False)
    assert after["accuracy"] >= 0.9 and after["accuracy"] > before["accuracy"]
    assert np.mean([h["loss"] for h in history[-5:]]) < np.mean([h["loss"] for h in history[:5]])
    assert after["margin"] > 0


def test_save_and_load_give_the_same_scores(tmp_path):
    rm, tok = tiny_rm()
    rm.head.bias.data.fill_(0.25)
    folder = save_reward_model(rm, tok, tmp_path / "rm", {"pairs": 3})
    loaded, loaded_tok = load_reward_model(folder, device="cpu")
    prompts, replies = ["abc", "de"], ["jjj", "a"]
    expected = score(rm, tok, prompts, replies, chat_template=False)
    assert torch.allclose(score(loaded, loaded_tok, prompts, replies, chat_template=False), expected, atol=1e-6)
    with pytest.raises(FileNotFoundError, match="not a reward model folder"):
        load_reward_model(tmp_path)


def test_training_needs_pairs():
    rm, tok = tiny_rm()
    with pytest.raises(ValueError, match="no preference pairs"):
        train_reward_model(rm, tok, [])


def test_critic_from_reward_model_starts_at_the_rm_score_and_is_a_copy():
    rm, tok = tiny_rm()
    rm.head.bias.data.fill_(0.5)
    critic = Critic.from_reward_model(rm)
    ids, mask = encode_texts(tok, ["abc"], ["de"], chat_template=False)  # "abcde<eos>"
    prompt_len = 3
    values = critic.values(ids, mask, prompt_len)  # [1, 3]: states before "d", "e", "<eos>"
    rm_at_prefix = rm(ids[:, :5], mask[:, :5])  # the RM read at "abcde": the state before <eos>
    assert values[0, 2].item() == pytest.approx(rm_at_prefix.item(), abs=1e-5)
    critic.head.bias.data.fill_(-3.0)
    assert rm.head.bias.item() == 0.5, "the critic trains its own copy"


def test_critic_from_reward_model_on_the_normalised_reward_scale():
    rm, tok = tiny_rm()
    rm.head.bias.data.fill_(0.5)
    ids, mask = encode_texts(tok, ["abc"], ["de"], chat_template=False)
    raw = Critic.from_reward_model(rm).values(ids, mask, 3)  # [1, 3]
    scaled = Critic.from_reward_model(rm, mean=2.0, std=4.0).values(ids, mask, 3)  # [1, 3]
    torch.testing.assert_close(scaled, (raw - 2.0) / 4.0, atol=1e-5, rtol=1e-5)
    assert rm.head.bias.item() == 0.5 and rm.head.weight.abs().sum() > 0
    with pytest.raises(ValueError, match="std must be > 0"):
        Critic.from_reward_model(rm, std=0.0)


def test_critic_from_a_frozen_reward_model_is_trainable_and_a_frozen_critic_is_refused():
    rm, tok = tiny_rm()
    rm.requires_grad_(False)  # as the reward-model verifier leaves the model it scores with
    critic = Critic.from_reward_model(rm)
    assert all(p.requires_grad for p in critic.parameters())
    assert not any(p.requires_grad for p in rm.parameters()), "the RM stays frozen"
    ids, mask = encode_texts(tok, ["abc"], ["de"], chat_template=False)
    critic(ids, mask, 3).sum().backward()
    assert critic.head.weight.grad is not None

    frozen = Critic(tiny_llama(len(tok), seed=1)).requires_grad_(False)
    policy = Policy(tiny_llama(len(tok), seed=2))
    with pytest.raises(ValueError, match="no trainable parameter"):
        PPO(policy, torch.optim.SGD(policy.parameters(), lr=0.1), frozen, torch.optim.SGD([torch.zeros(1)], lr=0.1))
