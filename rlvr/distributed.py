"""Data-parallel and sharded training over ``torch.distributed``: the collectives the agents and the trainer use.

Every function here is the identity (or a no-op) when no process group is
initialised, so a single process runs exactly the code it always ran.

With W ranks, each rank holds a share of the global batch (whole groups: a
group never straddles ranks). What makes W ranks equal one process with the
same global batch:

* **Loss denominators are global.** The agents divide a micro-batch's summed
  loss by the minibatch's token or sequence count summed over ranks
  (:func:`global_sum`), so the ranks' gradients add up to the global batch's.
* **Gradients are summed, not averaged**, once per optimiser step
  (:func:`reduce_gradients`): ``torch.distributed.all_reduce`` over flattened
  buckets for replicated weights, FSDP2's own reduce-scatter (divide factor 1)
  for sharded ones. The ``DistributedDataParallel`` wrapper is not used: it
  needs the same number of forward and backward passes on every rank, one
  forward per backward, and communicates on every micro-batch; here ranks drop
  different rows (unscored, groups without signal), the policy's shared-prompt
  pass calls the model twice, and one reduction per optimiser step is all the
  update needs.
* **Batch statistics are global**: batch-mean baselines, whitening, and the
  metrics (:func:`reduce_sums`, :func:`gather_objects`).

Sharding (``distributed.strategy: fsdp``) uses FSDP2 (``fully_shard``) on each
decoder layer and on the model. The shards hold the weights, gradients and
optimiser state between steps; for a training step (rollouts and update) the
whole model is gathered once (:func:`gathered`), because ranks run different
numbers of forward passes (sampling stops when a rank's rows finish; ranks keep
different rows) and per-layer gathering would need them in lockstep. Gradients
accumulate unsharded over micro-batches and are reduce-scattered once per
optimiser step by one extra one-token pass with gradient sync on; after the step
the gathered copy is refreshed from the new shards (:func:`refresh_shards`).
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = [
    "gather_objects",
    "gathered",
    "global_max",
    "global_sum",
    "init_process_group",
    "is_distributed",
    "rank",
    "reduce_gradients",
    "reduce_metrics",
    "reduce_sums",
    "refresh_shards",
    "shard",
    "world_size",
]

BUCKET_ELEMENTS = 1 << 25
"""Gradients are all-reduced in flat buckets of at most this many elements (128 MiB of float32)."""


def world_size() -> int:
    """Ranks in the default process group; 1 when there is none."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank; 0 when there is no process group."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_distributed() -> bool:
    """Whether more than one rank takes part."""
    return world_size() > 1


def launched_world_size() -> int:
    """The world size ``torchrun`` announced in the environment (``WORLD_SIZE``), 1 when not launched by it."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_process_group(backend: str, timeout_minutes: float) -> bool:
    """Join the process group ``torchrun`` set up in the environment; True when this call created it.

    ``backend``: ``"auto"`` takes NCCL where CUDA is, else gloo. Nothing is done
    when a group exists already or the launch has one rank. A collective that
    waits longer than ``timeout_minutes`` (a rank died or hangs) raises on the
    ranks that wait.
    """
    if dist.is_initialized() or launched_world_size() <= 1:
        return False
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    # Imported after the group exists (transformers imports it when it loads a
    # model), torch._dynamo keeps a reference to the group: destroy_process_group
    # then leaves gloo's worker threads running, and one that frees a tensor
    # while the interpreter shuts down aborts the process after a finished run.
    importlib.import_module("torch._dynamo")

    dist.init_process_group(backend, timeout=timedelta(minutes=timeout_minutes))
    return True


def _device() -> torch.device:
    """Where collective buffers live: the current CUDA device under NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def global_sum(*values: float | Tensor) -> list[float]:
    """Each value summed over ranks (the values themselves in one process), in float64."""
    if not is_distributed():
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_device())
    dist.all_reduce(t)
    return t.tolist()


def global_max(*values: float | Tensor) -> list[float]:
    """Each value's maximum over ranks (the values themselves in one process)."""
    if not is_distributed():
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.tolist()


def reduce_sums(sums: Tensor) -> Tensor:
    """``sums`` (any shape) summed over ranks, same dtype and device; unchanged in one process.

    The ``reduce`` argument of the batch statistics in :mod:`rlvr.agents.advantages`.
    """
    if not is_distributed():
        return sums
    out = sums.detach().to(device=_device(), dtype=torch.float64).clone()
    dist.all_reduce(out)
    return out.to(device=sums.device, dtype=sums.dtype)


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` in one process."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank; ``obj`` itself in one process."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    """Wait for every rank (nothing to wait for in one process)."""
    if is_distributed():
        dist.barrier()


def reduce_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """One metrics dict from every rank's: ``time/...`` the slowest rank's, every other key the mean.

    The mean is over the ranks that report the key with a finite value; the
    agents already make their statistics global, so most keys are equal on
    every rank and keep their value.
    """
    if not is_distributed():
        return metrics
    out: dict[str, float] = {}
    every = gather_objects(metrics)
    for key in dict.fromkeys(k for m in every for k in m):
        values = [float(m[key]) for m in every if key in m and m[key] is not None and float(m[key]) == float(m[key])]
        if not values:
            out[key] = float("nan")
        elif key.startswith("time/"):
            out[key] = max(values)
        else:
            out[key] = sum(values) / len(values)
    return out


def _is_sharded(p: Tensor) -> bool:
    return type(p).__name__ == "DTensor"


def is_sharded(module: nn.Module | None) -> bool:
    """Whether ``module`` holds FSDP2-sharded parameters."""
    return module is not None and bool(_fsdp_modules(module))


def _fsdp_modules(module: nn.Module | None) -> list[nn.Module]:
    if module is None:
        return []
    from torch.distributed.fsdp import FSDPModule

    return [m for m in module.modules() if isinstance(m, FSDPModule)]


def reduce_gradients(module: nn.Module) -> None:
    """Sum ``module``'s gradients over ranks, once per optimiser step (a no-op in one process).

    Replicated parameters: one ``all_reduce`` per flat bucket; a parameter
    without a gradient on this rank (it kept no row) takes part as zeros, so
    every rank sends the same buckets. Sharded parameters (FSDP2): a one-token
    forward and backward of ``module`` with gradient sync on, whose zero loss adds
    nothing and whose backward reduce-scatters the gradients accumulated since
    the last step. ``module`` is called as ``module(input_ids, attention_mask,
    prompt_len)`` (a :class:`rlvr.policy.Policy` or a critic).
    """
    if not is_distributed():
        return
    fsdp = _fsdp_modules(module)
    if fsdp:
        for m in fsdp:
            m.set_requires_gradient_sync(True, recurse=False)
        try:
            device = next(module.parameters()).device
            ids = torch.zeros(1, 2, dtype=torch.long, device=device)
            out = module(ids, torch.ones_like(ids), 1)
            out = out[0] if isinstance(out, tuple) else out
            (out.float().sum() * 0.0).backward()
        finally:
            for m in fsdp:
                m.set_requires_gradient_sync(False, recurse=False)
    params = [p for p in module.parameters() if p.requires_grad and not _is_sharded(p)]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    buckets: list[list[Tensor]] = []
    for p in params:
        last = buckets[-1] if buckets else None
        if (
            last is None
            or last[0].dtype != p.grad.dtype
            or last[0].device != p.grad.device
            or sum(g.numel() for g in last) + p.grad.numel() > BUCKET_ELEMENTS
        ):
            buckets.append([p.grad])
        else:
            last.append(p.grad)
    for grads in buckets:
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        for g, part in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
            g.copy_(part.view_as(g))


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The transformer blocks of a ``transformers`` model: the longest ``ModuleList`` named ``layers`` or ``h``."""
    lists = [
        m
        for name, m in model.named_modules()
        if isinstance(m, nn.ModuleList) and name.split(".")[-1] in ("layers", "h")
    ]
    return list(max(lists, key=len)) if lists else []


def shard(module: nn.Module, model: nn.Module | None = None) -> nn.Module:
    """Shard ``module`` with FSDP2 over the default process group: each decoder layer of ``model``, then ``module``.

    ``model`` is the ``transformers`` model inside ``module`` (``module`` itself
    when None). Gradients are summed over ranks (divide factor 1: the losses are
    divided by global counts), not resharded after backward, and synced only by
    :func:`reduce_gradients`; the model stays gathered after a forward pass until
    :func:`gathered` ends. Returns ``module``, sharded in place.
    """
    from torch.distributed.fsdp import fully_shard

    for layer in decoder_layers(module if model is None else model):
        fully_shard(layer, reshard_after_forward=False)
    fully_shard(module, reshard_after_forward=False)
    for m in _fsdp_modules(module):
        m.set_requires_gradient_sync(False, recurse=False)
        m.set_reshard_after_backward(False, recurse=False)
        m.set_gradient_divide_factor(1.0)
        m.set_force_sum_reduction_for_comms(True)  # a plain SUM: gloo has no pre-multiplied sum
    return module


@contextlib.contextmanager
def gathered(*modules: nn.Module | None) -> Iterator[None]:
    """Hold the full weights of every FSDP2-sharded module in ``modules`` for the block, shards again after.

    Plain modules (and None) pass through, so it costs nothing without sharding.
    Every rank must enter and leave together (the gathering is a collective).
    """
    fsdp = [m for module in modules for m in _fsdp_modules(module)]
    for m in fsdp:
        m.unshard()
    try:
        yield
    finally:
        for m in fsdp:
            m.reshard()


def refresh_shards(module: nn.Module) -> None:
    """After an optimiser step on the shards, gather ``module``'s new weights again (a no-op without FSDP2)."""
    fsdp = _fsdp_modules(module)
    for m in fsdp:
        m.reshard()
    for m in fsdp:
        m.unshard()


def full_state_dict(module: nn.Module) -> dict[str, Tensor]:
    """``module``'s state dict with full (gathered) tensors on the CPU; a collective under FSDP2."""
    if not _fsdp_modules(module):
        return module.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def rank_seed(seed: int, *parts: int) -> int:
    """This rank's seed for ``parts`` (e.g. a step).

    On rank 0 it is what a single process uses (``seed`` itself without parts,
    else ``derive_seed(seed, *parts)``); rank r > 0 gets ``derive_seed(seed, *parts, r)``,
    so ranks draw distinct, reproducible streams.
    """
    from rlvr.rollout import derive_seed

    r = rank()
    if r == 0:
        return derive_seed(seed, *parts) if parts else seed
    return derive_seed(seed, *parts, r)


def shard_of(items: Sequence[Any]) -> list[Any]:
    """This rank's contiguous share of ``items`` (all of them in one process); shares differ by at most one."""
    n, w, r = len(items), world_size(), rank()
    return list(items[r * n // w : (r + 1) * n // w])
