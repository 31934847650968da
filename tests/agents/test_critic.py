"""The critic's measurements: which token each row ends on, and explained variance by hand."""

import pytest
import torch

from rlvr.agents.critic import explained_variance, last_token_mask


def test_last_token_mask_marks_each_rows_last_token_past_holes_and_nothing_in_an_empty_row():
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0], [1, 0, 1, 0]], dtype=torch.bool)
    expected = torch.tensor([[0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0]], dtype=torch.float)
    assert torch.equal(last_token_mask(mask), expected)
    assert last_token_mask(torch.ones(0, 3)).shape == (0, 3)  # a rank that kept no rows
    assert last_token_mask(torch.ones(2, 0)).shape == (2, 0)  # no completion token at all


def test_explained_variance_by_hand():
    returns = torch.tensor([[2.0, 0.0, 1.0, 1.0, 50.0]])
    mask = torch.tensor([[1, 1, 1, 1, 0]])  # the last entry is left out, however wrong its value
    # residuals [0, 0, 1, 1]: unbiased variance 1/3; returns [2, 0, 1, 1]: 2/3; 1 - (1/3) / (2/3)
    assert explained_variance(torch.tensor([[2.0, 0.0, 0.0, 0.0, -9.0]]), returns, mask) == pytest.approx(0.5)
    assert explained_variance(returns.clone(), returns, mask) == pytest.approx(1.0)
    assert explained_variance(torch.full_like(returns, 7.0), returns, mask) == pytest.approx(0.0)  # a constant
    assert explained_variance(-returns, returns, mask) == pytest.approx(1 - 4.0)  # worse than a constant


def test_explained_variance_is_none_when_the_returns_do_not_vary():
    returns = torch.tensor([[1.0, 1.0, 3.0]])
    assert explained_variance(torch.zeros(1, 3), returns, torch.tensor([[1, 1, 0]])) is None
