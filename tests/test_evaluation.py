import math

import pytest

from rlvr.evaluation import pass_at_k


@pytest.mark.parametrize(
    "n, c, k, expected",
    [
        (4, 0, 1, 0.0),
        (4, 4, 1, 1.0),
        (4, 1, 1, 0.25),
        (4, 1, 2, 1 - math.comb(3, 2) / math.comb(4, 2)),  # 0.5
        (8, 2, 4, 1 - math.comb(6, 4) / math.comb(8, 4)),
        (5, 3, 3, 1.0),  # fewer than k wrong samples: some draw of k always holds a right one
    ],
)
def test_pass_at_k_hand_computed(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_needs_enough_samples():
    with pytest.raises(ValueError, match="at least 4"):
        pass_at_k(2, 1, 4)
