"""DPO and SimPO on a tiny model.

The first loss is log 2 (policy = reference), and training raises the
implicit-reward accuracy on held-out pairs.
"""

import copy
import math

import numpy as np
import pytest
import torch
from toymodels import LETTERS, char_tokenizer, tiny_llama

from rlvr.policy import Policy
from rlvr.preference.dpo import DPO, DPOConfig, encode_pairs
from rlvr.preference.pairs import PreferencePair


def pairs(n: int, seed: int) -> list[PreferencePair]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        prompt = "".join(rng.choice(list(LETTERS[:6]), size=3))
        chosen = "".join(rng.choice(list("ij"), size=3))
        rejected = "".join(rng.choice(list(LETTERS[:6]), size=3))
        out.append(PreferencePair(prompt, chosen, rejected))
    return out


def make_agent(loss: str, lr: float = 3e-3, seed: int = 0) -> DPO:
    torch.manual_seed(seed)
    tok = char_tokenizer()
    model = tiny_llama(len(tok), seed=seed)
    reference = Policy(copy.deepcopy(model).eval().requires_grad_(False)) if loss == "dpo" else None
    policy = Policy(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    return DPO(policy, optimizer, tok, DPOConfig(loss=loss), reference, chat_template=False)


def test_encoding_puts_chosen_then_rejected_in_the_rollout_layout():
    tok = char_tokenizer()
    ids, mask, prompt_len, completion_mask = encode_pairs(tok, [PreferencePair("ab", "c", "dd")], chat_template=False)
    assert prompt_len == 2 and ids.shape == (2, 5)
    assert tok.decode(ids[0][mask[0].bool()]) == "abc<eos>" and tok.decode(ids[1]) == "abdd<eos>"
    assert completion_mask.tolist() == [[1, 1, 0], [1, 1, 1]]


@pytest.mark.parametrize("loss", ["dpo", "simpo"])
def test_training_raises_held_out_implicit_accuracy(loss):
    agent = make_agent(loss)
    train, test = pairs(64, seed=0), pairs(32, seed=1)
    before = agent.evaluate(test)
    first = agent.update(train[:16])
    if loss == "dpo":
        assert first["loss"] == pytest.approx(math.log(2), abs=1e-5), "policy = reference: every implicit reward is 0"
        assert before["rewards/accuracy"] == 0.0
    for _epoch in range(6):
        for start in range(0, len(train), 16):
            agent.update(train[start : start + 16])
    after = agent.evaluate(test)
    assert after["rewards/accuracy"] >= 0.9 > before["rewards/accuracy"]
    assert after["rewards/margin"] > before["rewards/margin"] and after["loss"] < before["loss"]


def test_dpo_needs_a_reference_unless_lora():
    tok = char_tokenizer()
    model = tiny_llama(len(tok))
    agent = DPO(
        Policy(model), torch.optim.AdamW(model.parameters()), tok, DPOConfig(loss="dpo"), None, chat_template=False
    )
    with pytest.raises(ValueError, match="no reference policy"):
        agent.update(pairs(2, seed=0))
    with pytest.raises(ValueError, match="at least one pair"):
        agent.update([])
