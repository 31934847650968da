"""Mixed precision: bf16 autocast where the hardware computes bf16 natively, float32 elsewhere.

Emulated bf16 (a CPU without AMX or AVX512-BF16) is slower than float32, so
``"auto"`` turns autocast on only where it pays. :func:`describe` says which
case a machine is in, for the start of a run.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["autocast", "cpu_features", "describe", "pick_autocast"]


def cpu_features() -> dict[str, bool]:
    """The CPU's vector features that decide training speed, as torch sees them."""
    cpu = torch.cpu
    probe = {
        "amx": "_is_amx_tile_supported",
        "avx512_bf16": "_is_avx512_bf16_supported",
        "avx512": "_is_avx512_supported",
        "avx2": "_is_avx2_supported",
    }
    return {name: bool(getattr(cpu, fn, lambda: False)()) for name, fn in probe.items()}


def pick_autocast(setting: str, device: torch.device | str = "cpu") -> torch.dtype | None:
    """The autocast dtype for ``setting``: ``"bf16"``, ``"none"`` or ``"auto"``.

    ``"auto"`` picks bf16 on a CUDA GPU or on a CPU with AMX or AVX512-BF16, and
    ``None`` (full float32) elsewhere.

    Raises:
        ValueError: an unknown setting.
    """
    if setting == "none":
        return None
    if setting == "bf16":
        return torch.bfloat16
    if setting != "auto":
        raise ValueError(f"autocast must be 'auto', 'bf16' or 'none', got {setting!r}")
    if torch.device(device).type == "cuda":
        return torch.bfloat16
    features = cpu_features()
    return torch.bfloat16 if features["amx"] or features["avx512_bf16"] else None


def autocast(module: nn.Module, dtype: torch.dtype | None) -> Any:
    """Mixed precision on ``module``'s device; master weights stay in their own dtype."""
    device = next(module.parameters()).device.type
    return torch.autocast(device_type=device, dtype=dtype or torch.float32, enabled=dtype is not None)


def describe(setting: str, device: torch.device | str, chosen: torch.dtype | None) -> str:
    """One line for the start of a run: the hardware found and what it means for speed."""
    if torch.device(device).type == "cuda":
        name = torch.cuda.get_device_name(torch.device(device))
        return f"device: {name}; autocast {'bf16' if chosen is not None else 'off (float32)'}"
    features = cpu_features()
    found = ", ".join(k for k, v in features.items() if v) or "no AVX2"
    threads = torch.get_num_threads()
    if chosen is not None and not (features["amx"] or features["avx512_bf16"]):
        why = "bf16 asked for but emulated on this CPU: expect it slower than float32"
    elif chosen is not None:
        why = "bf16 autocast on (native bf16)"
    elif setting == "none":
        why = "autocast off (model.autocast=none)"
    else:
        why = "autocast off: no native bf16 (AMX or AVX512-BF16), so every step runs in float32 (about 3x the step time of a CPU with AMX)"
    return f"CPU: {found}; {threads} threads; {why}"
