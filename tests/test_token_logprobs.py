import pytest
import torch

from rlvr import token_logprobs as module
from rlvr.token_logprobs import token_logprobs


def reference(logits, targets, temperature):
    """The whole-tensor computation in float64: log-softmax at the targets, and the entropy."""
    scaled = logits.double() / temperature
    log_p = scaled.log_softmax(-1)
    return log_p.gather(-1, targets[..., None]).squeeze(-1), -(log_p.exp() * log_p).sum(-1)


@pytest.fixture(params=[1, 3, 1000], ids=["chunk-of-1-row", "ragged-chunks", "one-chunk"])
def rows_per_chunk(request, monkeypatch):
    monkeypatch.setitem(module.CHUNK_ELEMENTS, "cpu", request.param * 20)
    return request.param


@pytest.mark.parametrize("temperature", [0.3, 1.0, 1.7])
def test_values_and_gradients_equal_log_softmax(temperature, rows_per_chunk):
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(3, 9, 20, generator=gen) * 4
    logits = base[:, 1:-1]  # [3, 7, 20], not contiguous, as a slice of the model's logits is
    targets = torch.randint(20, (3, 7), generator=gen)
    weights = torch.randn(3, 7, generator=gen)

    x = logits.clone().requires_grad_(True)
    logp, entropy = token_logprobs(x, targets, temperature, with_entropy=True)
    (logp * weights).sum().backward()

    y = logits.double().requires_grad_(True)
    ref_logp, ref_entropy = reference(y, targets, temperature)
    (ref_logp * weights.double()).sum().backward()

    assert logp.dtype == entropy.dtype == torch.float32
    torch.testing.assert_close(logp.double(), ref_logp.detach(), atol=1e-5, rtol=0)
    torch.testing.assert_close(entropy.double(), ref_entropy.detach(), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.grad.double(), y.grad, atol=1e-5, rtol=1e-4)  # float32 against float64
    assert not entropy.requires_grad


def test_hand_computed_case():
    # logits [0, ln 3] at temperature 1: p = [1/4, 3/4]; token 1: log 3/4; d/dl = [-1/4, 1/4]
    logits = torch.tensor([[[0.0, float(torch.log(torch.tensor(3.0)))]]], requires_grad=True)
    logp, entropy = token_logprobs(logits, torch.tensor([[1]]), 1.0, with_entropy=True)
    logp.sum().backward()
    assert logp.item() == pytest.approx(float(torch.log(torch.tensor(0.75))), abs=1e-6)
    assert entropy.item() == pytest.approx(
        -(0.25 * torch.log(torch.tensor(0.25)) + 0.75 * torch.log(torch.tensor(0.75))).item(), abs=1e-6
    )
    torch.testing.assert_close(logits.grad, torch.tensor([[[-0.25, 0.25]]]))


def test_float32_logits_are_left_as_they_were():
    logits = torch.randn(2, 3, 11, requires_grad=True)
    before = logits.detach().clone()
    logp, _ = token_logprobs(logits, torch.zeros(2, 3, dtype=torch.long), 0.5, with_entropy=True)
    logp.sum().backward()
    assert torch.equal(logits.detach(), before)


def test_bf16_logits_give_float32_values_and_a_bf16_gradient():
    gen = torch.Generator().manual_seed(1)
    logits = (torch.randn(2, 4, 64, generator=gen) * 3).bfloat16().requires_grad_(True)
    targets = torch.randint(64, (2, 4), generator=gen)
    logp, entropy = token_logprobs(logits, targets, 0.5)
    logp.sum().backward()
    ref_logp, _ = reference(logits.detach(), targets, 0.5)
    assert entropy is None and logp.dtype == torch.float32 and logits.grad.dtype == torch.bfloat16
    torch.testing.assert_close(logp.double(), ref_logp, atol=1e-5, rtol=0)  # exact arithmetic on the bf16 values


def test_no_grad_and_empty_inputs():
    with torch.no_grad():
        logp, entropy = token_logprobs(torch.randn(2, 3, 5), torch.zeros(2, 3, dtype=torch.long), 1.0, True)
    assert logp.shape == entropy.shape == (2, 3) and not logp.requires_grad
    logp, entropy = token_logprobs(torch.randn(0, 3, 5), torch.zeros(0, 3, dtype=torch.long), 1.0, True)
    assert logp.shape == entropy.shape == (0, 3)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="temperature must be > 0"):
        token_logprobs(torch.randn(1, 2, 3), torch.zeros(1, 2, dtype=torch.long), 0.0)
    with pytest.raises(ValueError, match="do not match targets"):
        token_logprobs(torch.randn(1, 2, 3), torch.zeros(1, 3, dtype=torch.long), 1.0)
