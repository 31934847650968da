import pytest
import torch

from rlvr import precision


@pytest.fixture
def cpu(monkeypatch):
    def set_features(**found):
        features = {"amx": False, "avx512_bf16": False, "avx512": False, "avx2": False, **found}
        monkeypatch.setattr(precision, "cpu_features", lambda: features)

    return set_features


def test_auto_takes_bf16_only_where_the_cpu_computes_it_natively(cpu):
    cpu(avx2=True)
    assert precision.pick_autocast("auto") is None
    cpu(avx2=True, avx512=True, avx512_bf16=True)
    assert precision.pick_autocast("auto") is torch.bfloat16
    cpu(amx=True)
    assert precision.pick_autocast("auto") is torch.bfloat16
    assert precision.pick_autocast("none") is None and precision.pick_autocast("bf16") is torch.bfloat16
    with pytest.raises(ValueError, match="autocast"):
        precision.pick_autocast("fp8")


def test_the_start_line_names_the_features_and_what_they_mean(cpu):
    cpu(avx2=True)
    line = precision.describe("auto", "cpu", None)
    assert line.startswith("CPU: avx2;") and "float32" in line and "no native bf16" in line
    assert "emulated" in precision.describe("bf16", "cpu", torch.bfloat16)
    cpu(amx=True, avx2=True)
    assert "native bf16" in precision.describe("auto", "cpu", torch.bfloat16)
    assert "model.autocast=none" in precision.describe("none", "cpu", None)


def test_the_features_are_read_from_torch():
    features = precision.cpu_features()
    assert set(features) == {"amx", "avx512_bf16", "avx512", "avx2"}
    assert all(isinstance(v, bool) for v in features.values())
