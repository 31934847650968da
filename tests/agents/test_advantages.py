import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlvr.agents.advantages import (
    MovingAverageBaseline,
    batch_mean_advantages,
    gae,
    group_normalized_advantages,
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
