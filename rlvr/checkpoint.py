"""Checkpoints that resume a run exactly: weights, optimiser, RNG states, step, elapsed time, data position.

A checkpoint is a folder ``checkpoints/step-000050/``:

    model.safetensors / adapter files   the policy (save_pretrained: LoRA saves only adapters)
    critic.safetensors                  PPO's critic, when there is one
    optimizer.pt                        optimiser state(s) (torch.save)
    state.json                          step, agent state (KL coefficient, baseline), env RNG, timing
    rng.pt                              torch / numpy / python RNG states, and every CUDA device's

It is written to ``step-000050.partial`` and renamed when complete, so a run
killed while saving leaves the previous checkpoint intact and loses at most the
step in progress.

With several data-parallel ranks every rank calls :func:`save_checkpoint` and rank
0 alone writes. The weights are full tensors whatever the strategy (FSDP2 shards
are gathered first), so a checkpoint loads at any world size and in ``rlvr eval``.
Sharded optimisers are saved as full state dicts keyed by parameter name
(``torch.distributed.checkpoint.state_dict``) and load back into a sharded run
at any world size. ``rng.pt`` and ``state.json`` also hold every rank's RNG and
problem-stream states (``ranks``, ``env_ranks``).
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from rlvr import distributed

__all__ = ["latest_checkpoint", "load_checkpoint", "save_checkpoint"]


def save_checkpoint(
    run_dir: Path,
    step: int,
    *,
    model: torch.nn.Module,
    optimizers: dict[str, Any],
    state: dict[str, Any],
    critic: torch.nn.Module | None = None,
    tokenizer: Any = None,
    keep: int = 2,
    owners: dict[str, torch.nn.Module | None] | None = None,
) -> Path:
    """Write the checkpoint of ``step`` to ``run_dir/checkpoints/step-NNNNNN/``.

    The folder is written as ``step-NNNNNN.partial`` and renamed when complete;
    then all but the newest ``keep`` checkpoints are deleted.

    Args:
        run_dir: the run's folder.
        step: the training step the checkpoint is taken after.
        model: the policy, saved with ``save_pretrained`` (LoRA saves only adapters).
        optimizers: optimisers by name; their state dicts go to ``optimizer.pt``.
        state: JSON-able run state (agent state, env RNG, timing) stored with the step in ``state.json``.
        critic: PPO's critic, when there is one.
        tokenizer: saved alongside the model so the checkpoint loads on its own.
        keep: how many checkpoints to keep.
        owners: the module whose parameters each optimiser holds, by the same name
            (``{"policy": model, "critic": critic}``); needed for FSDP2-sharded ones.

    Returns:
        The checkpoint's folder.
    """
    sharded = distributed.is_sharded(model)
    weights = distributed.full_state_dict(model) if sharded else None  # collectives: every rank takes part
    critic_weights = distributed.full_state_dict(critic) if critic is not None else None
    optimizer_states = {k: _optimizer_state(v, (owners or {}).get(k)) for k, v in optimizers.items()}
    rng = _rng_states()
    if distributed.is_distributed():
        rng["ranks"] = distributed.gather_objects(rng)
    root = run_dir / "checkpoints"
    final = root / f"step-{step:06d}"
    if distributed.rank() > 0:
        distributed.barrier()  # rank 0 writes
        return final
    tmp = root / f"step-{step:06d}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, safe_serialization=True, **({"state_dict": weights} if sharded else {}))
    if tokenizer is not None:  # so `rlvr eval --model <checkpoint>` works on its own
        tokenizer.save_pretrained(tmp)
    if critic is not None:
        save_file({k: v.contiguous() for k, v in critic_weights.items()}, tmp / "critic.safetensors")
    torch.save(optimizer_states, tmp / "optimizer.pt")
    torch.save(rng, tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, **state}, indent=2, default=_jsonable))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in sorted(p for p in root.glob("step-??????") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    distributed.barrier()
    return final


def _optimizer_state(optimizer: Any, owner: torch.nn.Module | None) -> dict[str, Any]:
    """An optimiser's (or scheduler's) state dict; full and keyed by parameter name when its owner is sharded."""
    if owner is None or not distributed.is_sharded(owner):
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(owner, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint (one with a ``state.json``) of ``run_dir``, or None."""
    found = sorted(p for p in (run_dir / "checkpoints").glob("step-??????") if (p / "state.json").exists())
    return found[-1] if found else None


def load_checkpoint(
    path: Path,
    *,
    model: torch.nn.Module,
    optimizers: dict[str, Any],
    critic: torch.nn.Module | None = None,
    owners: dict[str, torch.nn.Module | None] | None = None,
) -> dict[str, Any]:
    """Restore weights, optimisers, RNG states in place; return ``state.json``.

    ``owners``: as in :func:`save_checkpoint`; FSDP2-sharded modules and their
    optimisers take the full saved tensors and keep their own shards.
    """
    if not (path / "state.json").exists():
        raise FileNotFoundError(f"{path} is not a complete checkpoint (no state.json)")
    weights = path / "model.safetensors"
    if weights.exists() and distributed.is_sharded(model):
        _set_full_state(model, load_file(weights))
    elif weights.exists():
        missing, unexpected = model.load_state_dict(load_file(weights), strict=False)
        # Tied embeddings are saved once; anything else missing means a different model.
        real_missing = [k for k in missing if "lm_head" not in k]
        if real_missing or unexpected:
            raise ValueError(
                f"checkpoint {path} does not match the model: missing {real_missing[:3]}, unexpected {unexpected[:3]}"
            )
    else:
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, load_file(path / "adapter_model.safetensors"))
    if critic is not None and distributed.is_sharded(critic):
        _set_full_state(critic, load_file(path / "critic.safetensors"))
    elif critic is not None:
        critic.load_state_dict(load_file(path / "critic.safetensors"))
    saved = torch.load(path / "optimizer.pt", weights_only=False)
    for key, obj in optimizers.items():
        owner = (owners or {}).get(key)
        if owner is not None and distributed.is_sharded(owner):
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

            set_optimizer_state_dict(owner, obj, saved[key], options=StateDictOptions(full_state_dict=True))
        else:
            obj.load_state_dict(saved[key])
    states = torch.load(path / "rng.pt", weights_only=False)
    ranks = states.get("ranks")
    _restore_rng_states(ranks[distributed.rank()] if ranks and len(ranks) == distributed.world_size() else states)
    return json.loads((path / "state.json").read_text())


def _set_full_state(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load full tensors into an FSDP2-sharded ``module`` (each rank keeps its shard)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    set_model_state_dict(module, state, options=StateDictOptions(full_state_dict=True, strict=False))


def _rng_states() -> dict[str, Any]:
    """Every RNG a run draws from: torch's CPU generator, numpy's, python's, and each CUDA device's."""
    states = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():  # sampling and dropout on a GPU draw from the device's own generator
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _restore_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`_rng_states` saved; CUDA states only where CUDA is, device by device."""
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        # Resuming on fewer devices restores those there are; the others' states have nowhere to go.
        for device, state in enumerate(states["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(state, device)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.integer | np.floating):
        return value.item()
    raise TypeError(f"cannot save {type(value).__name__} in state.json")
