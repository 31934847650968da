import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlvr.agents.advantages import (
    MovingAverageBaseline,
    batch_mean_advantages,
    batch_normalized_advantages,
    gae,
    gdpo_advantages,
    group_normalized_advantages,
    overlong_penalty,
    reinforce_plus_plus_advantages,
    returns_to_go,
    rloo_advantages,
    whiten,
)

T = torch.tensor


def close(a, b, tol=1e-6):
    torch.testing.assert_close(a, T(b, dtype=a.dtype) if not isinstance(b, torch.Tensor) else b, atol=tol, rtol=0)


def test_batch_mean_hand_computed():
    close(batch_mean_advantages(T([1.0, 0.0, 0.5, 0.5])), [0.5, -0.5, 0.0, 0.0])
    # the unscored completion neither shifts the baseline nor gets an advantage
    close(batch_mean_advantages(T([1.0, 0.0, 9.0]), T([True, True, False])), [0.5, -0.5, 0.0])


def test_moving_average_uses_the_baseline_before_the_update():
    b = MovingAverageBaseline(momentum=0.5)
    close(b(T([1.0, 0.0])), [0.5, -0.5])  # first batch: its own mean, b = 0.5
    close(b(T([1.0, 1.0])), [0.5, 0.5])  # baseline 0.5; then b = 0.5*0.5 + 0.5*1 = 0.75
    assert b.value == 0.75
    close(b(T([0.0, 0.0])), [-0.75, -0.75])
    restored = MovingAverageBaseline()
    restored.load_state_dict(b.state_dict())
    assert restored.value == b.value and restored.momentum == 0.5


def test_rloo_hand_computed():
    rewards, group = T([1.0, 0.0, 0.0, 1.0, 1.0, 0.0]), T([0, 0, 0, 1, 1, 1])
    # group 0: [1,0,0] -> 1-(0+0)/2=1, 0-(1+0)/2=-0.5, -0.5 ; group 1: [1,1,0] -> 1-0.5, 0.5, 0-1
    close(rloo_advantages(rewards, group), [1.0, -0.5, -0.5, 0.5, 0.5, -1.0])
    scored = T([True, True, False, True, False, False])
    close(rloo_advantages(rewards, group, scored), [1.0, -1.0, 0.0, 0.0, 0.0, 0.0])


def test_group_normalized_hand_computed_with_and_without_std():
    rewards, group = T([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]), T([0, 0, 0, 0, 1, 1, 1, 1])
    adv, zero_std = group_normalized_advantages(rewards, group, eps=0.0)
    std = math.sqrt(((0.75**2) + 3 * (0.25**2)) / 3)  # unbiased std of [1,0,0,0]
    close(adv, [0.75 / std, -0.25 / std, -0.25 / std, -0.25 / std, 0, 0, 0, 0], tol=1e-5)
    assert zero_std.tolist() == [False] * 4 + [True] * 4
    dr, _ = group_normalized_advantages(rewards, group, scale_by_std=False)
    close(dr, [0.75, -0.25, -0.25, -0.25, 0, 0, 0, 0])


def test_group_normalized_excludes_unscored():
    rewards, group = T([1.0, 0.0, 5.0]), T([0, 0, 0])
    adv, _ = group_normalized_advantages(rewards, group, T([True, True, False]), eps=0.0)
    s = math.sqrt(0.5)
    close(adv, [0.5 / s, -0.5 / s, 0.0], tol=1e-5)


def naive_gae(rewards, values, mask, gamma, lam):
    n, t_max = rewards.shape
    adv = torch.zeros_like(rewards)
    for i in range(n):
        length = int(mask[i].sum())
        for t in range(length):
            total = 0.0
            for k in range(t, length):
                v_next = values[i, k + 1] if k + 1 < length else 0.0
                delta = rewards[i, k] + gamma * v_next - values[i, k]
                total += (gamma * lam) ** (k - t) * delta
            adv[i, t] = total
    return adv


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 4),
    t=st.integers(1, 7),
    gamma=st.floats(0.5, 1.0),
    lam=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**31 - 1),
    data=st.data(),
)
def test_gae_matches_a_naive_loop(n, t, gamma, lam, seed, data):
    g = torch.Generator().manual_seed(seed)
    rewards = torch.randn(n, t, generator=g, dtype=torch.float64)
    values = torch.randn(n, t, generator=g, dtype=torch.float64)
    lengths = data.draw(st.lists(st.integers(0, t), min_size=n, max_size=n))
    mask = (torch.arange(t)[None, :] < T(lengths)[:, None]).to(torch.float64)
    adv, returns = gae(rewards, values, mask, gamma, lam)
    expected = naive_gae(rewards, values, mask, gamma, lam)
    torch.testing.assert_close(adv, expected, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(returns, (expected + values) * mask, atol=1e-9, rtol=1e-9)


def test_gae_hand_computed():
    # one sequence of 3 tokens, gamma=1, lam=0.5; V after the end = 0
    r, v, m = T([[0.0, 0.0, 1.0]]), T([[0.2, 0.4, 0.6]]), T([[1.0, 1.0, 1.0]])
    d = [0.0 + 0.4 - 0.2, 0.0 + 0.6 - 0.4, 1.0 - 0.6]  # 0.2, 0.2, 0.4
    a2 = d[2]
    a1 = d[1] + 0.5 * a2
    a0 = d[0] + 0.5 * a1
    adv, ret = gae(r, v, m, gamma=1.0, lam=0.5)
    close(adv, [[a0, a1, a2]])
    close(ret, [[a0 + 0.2, a1 + 0.4, a2 + 0.6]])


def test_whiten():
    x, m = T([1.0, 2.0, 3.0, 100.0]), T([1.0, 1.0, 1.0, 0.0])
    out = whiten(x, m, eps=0.0)
    close(out, [-1.0, 0.0, 1.0, 0.0])  # unbiased std of [1,2,3] is 1
    close(whiten(x, m, shift_mean=False, eps=0.0), [1.0, 2.0, 3.0, 0.0])


def test_returns_to_go_hand_computed():
    r, m = T([[1.0, 2.0, 3.0], [4.0, 5.0, 7.0]]), T([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    close(returns_to_go(r, m), [[6.0, 5.0, 3.0], [9.0, 5.0, 0.0]])  # the masked-out 7 counts nowhere


def test_batch_normalisation_over_tokens_and_over_sequences():
    adv, mask = T([1.0, 0.0, 2.0]), T([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])  # lengths 1, 3, 2
    # sequences: [1, 0, 2], mean 1, unbiased var (0 + 1 + 1) / 2 = 1
    close(batch_normalized_advantages(adv, mask, "sequence", eps=0.0), [[0, 0, 0], [-1, -1, -1], [1, 1, 0]])
    # tokens: [1, 0, 0, 0, 2, 2], mean 5/6, unbiased var = sum (x - 5/6)^2 / 5
    tokens = T([1.0, 0.0, 0.0, 0.0, 2.0, 2.0])
    z = (tokens - tokens.mean()) / tokens.std()
    close(batch_normalized_advantages(adv, mask, "token", eps=0.0), [[z[0], 0, 0], [z[1], z[2], z[3]], [z[4], z[5], 0]])
    per_token = torch.randn(3, 3, generator=torch.Generator().manual_seed(0))
    close(batch_normalized_advantages(per_token, mask, "token"), whiten(per_token, mask))  # the same as whiten
    with pytest.raises(ValueError, match="whitening level"):
        batch_normalized_advantages(adv, mask, "batch")


def test_reinforce_plus_plus_hand_computed():
    rewards, mask = T([1.0, 0.0]), T([[1.0, 1.0], [1.0, 0.0]])
    kl = T([[0.5, 0.25], [1.0, 9.0]])  # 9.0 is past the end of row 1: ignored
    # token rewards, beta 0.4: row 0 [-0.2, -0.1 + 1] = [-0.2, 0.9]; row 1 [-0.4]
    # reward-to-go: row 0 [0.7, 0.9]; row 1 [-0.4]; over the tokens mean 0.4, unbiased std 0.7
    adv = reinforce_plus_plus_advantages(rewards, mask, kl=kl, beta=0.4)
    close(adv, [[0.3 / 0.7, 0.5 / 0.7], [-0.8 / 0.7, 0.0]], tol=1e-4)
    # without KL the returns are the reward on every token: plain batch whitening
    close(reinforce_plus_plus_advantages(rewards, mask), batch_normalized_advantages(rewards, mask))


def test_reinforce_plus_plus_baseline_subtracts_the_group_mean_first():
    rewards, group, mask = T([1.0, 0.0, 0.5, 0.5, 100.0]), T([0, 0, 1, 1, 1]), torch.ones(5, 1)
    scored = T([True, True, True, True, False])  # the unscored 100 counts nowhere
    # centred [0.5, -0.5, 0, 0]; mean 0, unbiased var (0.25 + 0.25) / 3 = 1/6
    adv = reinforce_plus_plus_advantages(rewards, mask, group=group, scored=scored)
    s = math.sqrt(1 / 6)
    close(adv, [[0.5 / s], [-0.5 / s], [0.0], [0.0], [0.0]], tol=1e-4)
    # without the group baseline the batch mean (0.5) is the only baseline
    plain = reinforce_plus_plus_advantages(rewards, mask, scored=scored)
    close(plain, [[0.5 / s], [-0.5 / s], [0.0], [0.0], [0.0]], tol=1e-4)
    rewards2 = T([1.0, 0.0, 1.0, 1.0])  # group 1 all right: only the baseline variant gives it 0 before whitening
    with_group = reinforce_plus_plus_advantages(rewards2, torch.ones(4, 1), group=T([0, 0, 1, 1]))
    close(with_group[2:], [[0.0], [0.0]])
    assert (reinforce_plus_plus_advantages(rewards2, torch.ones(4, 1))[2:] > 0).all()


def test_gdpo_hand_computed_normalises_each_component_in_its_group():
    # group 0: component a favours row 0, b (10x narrower) row 1; group 1: a constant, b spread
    components = T([[1.0, 0.0], [0.0, 0.1], [1.0, 0.0], [1.0, 2.0]])
    group = T([0, 0, 1, 1])
    adv, zero_std = gdpo_advantages(components, group, eps=0.0)
    # per component: a -> [0.707, -0.707, 0, 0]; b -> [-0.707, 0.707, -0.707, 0.707]
    # sum [0, 0, -0.707, 0.707]; over the batch mean 0, unbiased var (0.5 + 0.5) / 3
    s = math.sqrt(1 / 3)
    close(adv, [0.0, 0.0, -math.sqrt(0.5) / s, math.sqrt(0.5) / s], tol=1e-5)
    assert not zero_std.any()
    # GRPO on the sum lets the wide component drown the narrow one in group 0
    combined, _ = group_normalized_advantages(components.sum(1), group, eps=0.0)
    assert combined[0] > 0.7 and combined[1] < -0.7
    # a row left unscored counts nowhere; a group constant in every component is zero-std
    adv2, zero2 = gdpo_advantages(T([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 5.0]]), group, T([True] * 3 + [False]))
    close(adv2, [0.0, 0.0, 0.0, 0.0])
    assert zero2.tolist() == [True, True, True, False]
    # weights scale each normalised component before the sum: weight 0 drops b, leaving a alone
    only_a, _ = gdpo_advantages(components, group, weights=T([2.0, 0.0]), eps=0.0)
    close(only_a, whiten(T([1.0, -1.0, 0.0, 0.0]), torch.ones(4)), tol=1e-5)
    with pytest.raises(ValueError, match=r"\[N, K\]"):
        gdpo_advantages(torch.zeros(4, 0), group)


def test_overlong_penalty_hand_computed():
    lengths = T([2, 3, 4, 5, 6])
    # budget 5, buffer 2: free up to 3 tokens, then -0.5 * (L - 3) / 2, capped at -0.5
    close(overlong_penalty(lengths, budget=5, buffer=2, penalty=0.5), [0.0, 0.0, -0.25, -0.5, -0.5])
    close(overlong_penalty(lengths, budget=5, buffer=5), [-0.4, -0.6, -0.8, -1.0, -1.0])  # the paper's factor 1
    for buffer, budget in [(0, 5), (6, 5)]:
        with pytest.raises(ValueError, match="overlong buffer"):
            overlong_penalty(lengths, budget=budget, buffer=buffer)
