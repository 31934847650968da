"""Checkpoints restore every RNG the run draws from, the CUDA generators included, and older layouts load."""

import random

import numpy as np
import torch
from toymodels import tiny_llama

from rlvr.checkpoint import load_checkpoint, save_checkpoint


def save_and_load(tmp_path):
    model = tiny_llama(seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    path = save_checkpoint(tmp_path, 1, model=model, optimizers={"policy": opt}, state={"x": 1})
    return path, model, opt


def test_cpu_rng_states_round_trip(tmp_path):
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    path, model, opt = save_and_load(tmp_path)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.rand(5), np.random.rand(5), random.random()  # move every generator on
    assert load_checkpoint(path, model=model, optimizers={"policy": opt})["x"] == 1
    torch.testing.assert_close(torch.rand(3), expected[0])
    np.testing.assert_array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]
    if not torch.cuda.is_available():
        assert "cuda" not in torch.load(path / "rng.pt", weights_only=False)


class FakeCudaRng:
    """Stands in for torch.cuda's per-device generator states: two devices, no GPU touched."""

    def __init__(self) -> None:
        self.states = [torch.tensor([1, 2, 3], dtype=torch.uint8), torch.tensor([4, 5, 6], dtype=torch.uint8)]

    def get_rng_state_all(self):
        return [s.clone() for s in self.states]

    def set_rng_state(self, state, device=0):
        self.states[device] = state.clone()


def test_cuda_rng_states_are_saved_and_restored_when_cuda_is_there(tmp_path, monkeypatch):
    fake = FakeCudaRng()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", fake.get_rng_state_all)
    monkeypatch.setattr(torch.cuda, "set_rng_state", fake.set_rng_state)
    path, model, opt = save_and_load(tmp_path)
    saved = torch.load(path / "rng.pt", weights_only=False)
    assert [s.tolist() for s in saved["cuda"]] == [[1, 2, 3], [4, 5, 6]]
    fake.states = [torch.zeros(3, dtype=torch.uint8), torch.zeros(3, dtype=torch.uint8)]  # the generators move on
    load_checkpoint(path, model=model, optimizers={"policy": opt})
    assert [s.tolist() for s in fake.states] == [[1, 2, 3], [4, 5, 6]]


def test_a_checkpoint_that_holds_a_scheduler_loads_without_it(tmp_path):
    """Checkpoints from before the schedule became a function of step and time carry a LambdaLR's state."""
    model = tiny_llama(seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5)
    model(torch.tensor([[1, 2, 3]])).logits.sum().backward()
    opt.step()
    path = save_checkpoint(tmp_path, 1, model=model, optimizers={"policy": opt, "scheduler": scheduler}, state={})
    fresh = torch.optim.AdamW(model.parameters(), lr=1e-3)
    load_checkpoint(path, model=model, optimizers={"policy": fresh})
    moments = [s["exp_avg"] for s in fresh.state.values()]
    assert moments and all(torch.equal(a, s["exp_avg"]) for a, s in zip(moments, opt.state.values(), strict=True))
