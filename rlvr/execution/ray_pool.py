"""The worker pool across a Ray cluster: the same tasks, time bounds and statuses on every CPU node.

:class:`RayPool` has :class:`rlvr.execution.workers.WorkerPool`'s interface
(``map``, ``run``, ``wait_ready``, ``close``) and runs each task in a local
worker pool on some node of the cluster: one Ray actor per slot (one logical
CPU each, spread over the nodes), each driving a ``WorkerPool`` of one
killable worker process. A task's time bound, memory limit, preloaded modules,
warm-up and statuses (``ok``, ``error``, ``timeout``, ``crashed``) are
therefore the local pool's, enforced on the node by the same code; for the
code sandbox the worker enters its own mount namespace and starts its zygote
exactly as in a local pool, and every program still runs in its own confined
interpreter, judged from a trusted process of its own.

What Ray adds is a way to lose the machinery itself, and a status for it:

* a Ray actor (the process that drives a node's pool) or its node lost while it
  held tasks, or an actor silent for longer than a task's bound plus
  ``grace_seconds``: it is killed and replaced, and each of its tasks runs again
  on another actor, up to ``retries`` times; a task still without a result then
  comes back with status ``"unavailable"``, which says nothing of the task;
* actors that cannot start within ``start_timeout`` seconds (a cluster without
  free CPUs, nodes without rlvr): replaced a bounded number of times; tasks
  left with no actor to run on come back ``"unavailable"``.

Limits, stated plainly: tasks must be functions of modules importable on every
node (rlvr and the verifier's dependencies installed there, the same versions
as on the driver); each slot holds one logical CPU for the pool's lifetime;
results travel through Ray's object store (fine for verdicts, not for
megabytes per task); a task that a lost actor had already started runs again
from scratch, so tasks must be safe to repeat (every verifier check is).
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rlvr.execution.workers import TaskResult

__all__ = ["RayPool"]

_DEPTH = 2  # calls queued per actor: one runs while the next waits, hiding the round trip


class _Slot:
    """The actor: a local pool of one worker on its node (wrapped by ``ray.remote`` in :func:`_actor_class`)."""

    def __init__(self, memory_limit_mb: int | None, preload: Sequence[str], warmup: Any) -> None:
        from rlvr.execution.workers import WorkerPool

        self.pool = WorkerPool(1, memory_limit_mb, preload=preload, warmup=warmup)

    def ready(self, timeout: float) -> int:
        """Start the worker, wait until it has imported and warmed up; the actor's pid."""
        self.pool.wait_ready(timeout)
        return os.getpid()

    def run(self, fn: Callable[..., Any], args: tuple, timeout: float) -> TaskResult:
        """One task, bounded by the local pool exactly as in :meth:`WorkerPool.map`."""
        return self.pool.map(fn, [args], timeout=timeout)[0]

    def close(self, finalizer: tuple[Callable[..., Any], tuple] | None) -> None:
        """Stop the worker, then run ``finalizer`` on this node (e.g. sweep the sandbox's control groups)."""
        self.pool.close()
        if finalizer is not None:
            finalizer[0](*finalizer[1])


_ACTOR: list[Any] = []


def _actor_class() -> Any:
    import ray

    if not _ACTOR:
        _ACTOR.append(ray.remote(num_cpus=1, max_restarts=0, max_concurrency=1)(_Slot))
    return _ACTOR[0]


@dataclass(eq=False)
class _Member:
    """The driver's view of one actor: starting (``ready_ref``) or ready, and its calls in flight."""

    actor: Any
    ready_ref: Any
    since: float
    pid: int | None = None
    calls: dict[Any, int] = field(default_factory=dict)  # object ref -> task index, in dispatch order


class RayPool:
    """``workers`` Ray actors that run picklable ``fn(*args)`` tasks with the local pool's bounds.

    Args:
        workers: actors (slots), each holding one logical CPU; default: the
            cluster's CPU count when the pool starts.
        memory_limit_mb, preload, warmup: of each actor's local worker (see
            :class:`rlvr.execution.workers.WorkerPool`).
        retries: how many more times a task held by a lost actor runs, each time
            on another actor, before it comes back ``"unavailable"``.
        grace_seconds: how much longer than a task's bound an actor with work may
            stay silent before it counts as lost (covers replacing its worker).
        start_timeout: seconds an actor may take to start and warm up.
        address: the cluster to connect to when Ray is not initialised in this
            process (None: Ray's own rules: ``RAY_ADDRESS``, a cluster started
            on this machine with ``ray start``, else a new local one). An
            initialised connection is used as it is.
        finalizer: ``(fn, args)`` each actor runs on its node after its worker
            stops, when the pool closes.

    Use as a context manager, or call :meth:`close`. Retried tasks are counted in ``retried``.
    """

    def __init__(
        self,
        workers: int | None = None,
        memory_limit_mb: int | None = 2048,
        preload: Sequence[str] = (),
        warmup: tuple[Callable[..., Any], tuple] | None = None,
        retries: int = 1,
        grace_seconds: float = 60.0,
        start_timeout: float = 120.0,
        address: str | None = None,
        finalizer: tuple[Callable[..., Any], tuple] | None = None,
    ) -> None:
        if retries < 0 or grace_seconds <= 0 or start_timeout <= 0:
            raise ValueError("retries must be >= 0, grace_seconds and start_timeout positive")
        try:
            import ray
        except ImportError as exc:
            raise ImportError("the Ray backend needs Ray: pip install 'rlvr[ray]'") from exc
        if not ray.is_initialized():
            ray.init(address=address, configure_logging=False, log_to_driver=False)
        self.size = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        self.memory_limit_mb = memory_limit_mb
        self.preload, self.warmup, self.finalizer = tuple(preload), warmup, finalizer
        self.retries, self.grace_seconds, self.start_timeout = retries, grace_seconds, start_timeout
        self.members: list[_Member] = []
        self.replaced = 0
        self.retried = 0
        self._lock = threading.Lock()  # one map at a time: calls from several threads queue here

    def _start(self) -> _Member:
        actor = (
            _actor_class().options(scheduling_strategy="SPREAD").remote(self.memory_limit_mb, self.preload, self.warmup)
        )
        return _Member(actor, actor.ready.remote(self.start_timeout), time.monotonic())

    def _ensure_started(self) -> None:
        while len(self.members) < self.size:
            self.members.append(self._start())

    def _settle_start(self, member: _Member, ref: Any) -> bool:
        """Whether the actor behind a finished ``ready`` call started."""
        import ray

        member.ready_ref = None
        member.since = time.monotonic()
        try:
            member.pid = ray.get(ref)
        except ray.exceptions.RayError:
            return False
        return True

    def wait_ready(self, timeout: float | None = None) -> None:
        """Start every actor and return once all have started and warmed up their worker.

        Raises:
            RuntimeError: an actor failed to start, or not all were ready within the timeout.
        """
        import ray

        self._ensure_started()
        deadline = time.monotonic() + (timeout or self.start_timeout)
        while starting := {m.ready_ref: m for m in self.members if m.ready_ref is not None}:
            done, _ = ray.wait(list(starting), num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
            if not done:
                raise RuntimeError(f"{len(starting)} Ray worker(s) not ready after {timeout or self.start_timeout:g}s")
            if not self._settle_start(starting[done[0]], done[0]):
                raise RuntimeError("a Ray worker failed to start; is rlvr installed on every node?")

    def _drop(self, member: _Member) -> _Member:
        """Kill ``member`` and start a fresh actor in its place."""
        import ray

        try:
            ray.kill(member.actor, no_restart=True)
        except ray.exceptions.RayError:
            pass
        fresh = self._start()
        self.members[self.members.index(member)] = fresh
        self.replaced += 1
        return fresh

    def run(self, fn: Callable[..., Any], args: tuple = (), timeout: float = 10.0) -> TaskResult:
        """Run ``fn(*args)`` on some node, bounded by ``timeout`` seconds; see :meth:`map`."""
        return self.map(fn, [args], timeout=timeout)[0]

    def map(self, fn: Callable[..., Any], items: Sequence[tuple], timeout: float = 10.0) -> list[TaskResult]:
        """Run ``fn(*items[i])`` for every i across the cluster; results in input order."""
        if not items:
            return []
        with self._lock:
            self._ensure_started()
            try:
                return self._map(fn, items, timeout)
            except BaseException:
                for member in [m for m in self.members if m.calls]:  # never leave tasks running behind
                    member.calls.clear()
                    self._drop(member)
                raise

    def _map(self, fn: Callable[..., Any], items: Sequence[tuple], timeout: float) -> list[TaskResult]:
        import ray

        results: list[TaskResult | None] = [None] * len(items)
        attempts = [0] * len(items)
        pending = deque(range(len(items)))
        start_budget = 2 * self.size  # failed starts tolerated in one map before tasks are given up

        def lost(member: _Member, why: str) -> None:
            for index in member.calls.values():
                attempts[index] += 1
                if attempts[index] > self.retries:
                    error = f"the Ray worker running it was lost ({why}), {attempts[index]} time(s)"
                    results[index] = TaskResult("unavailable", error=error)
                else:
                    self.retried += 1
                    pending.appendleft(index)
            member.calls.clear()
            self._drop(member)

        while pending or any(m.calls for m in self.members):
            now = time.monotonic()
            for member in self.members:
                while member.ready_ref is None and pending and len(member.calls) < _DEPTH:
                    if not member.calls:
                        member.since = now
                    index = pending.popleft()
                    member.calls[member.actor.run.remote(fn, items[index], timeout)] = index
            if pending and start_budget < 0 and all(m.ready_ref is not None for m in self.members):
                for index in pending:  # nothing can run them
                    results[index] = TaskResult("unavailable", error="no Ray worker could start")
                pending.clear()
                continue
            owner = {ref: m for m in self.members for ref in m.calls}
            owner.update({m.ready_ref: m for m in self.members if m.ready_ref is not None})
            deadlines = [
                m.since + (self.start_timeout if m.ready_ref is not None else timeout + self.grace_seconds)
                for m in self.members
                if m.ready_ref is not None or m.calls
            ]
            wait_for = max(0.0, min(deadlines) - now) if deadlines else 0.0
            done, _ = ray.wait(list(owner), num_returns=1, timeout=wait_for)
            if done:
                done, _ = ray.wait(list(owner), num_returns=len(owner), timeout=0)
            for ref in done:
                member = owner[ref]
                if member not in self.members or (ref is not member.ready_ref and ref not in member.calls):
                    continue  # its actor was already dropped in this round
                if ref is member.ready_ref:
                    if not self._settle_start(member, ref):
                        start_budget -= 1
                        self._drop(member)
                    continue
                index = member.calls.pop(ref)
                try:
                    results[index] = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:  # the call itself failed, e.g. a task it cannot load
                    results[index] = TaskResult("error", error=str(exc).strip().splitlines()[-1])
                except ray.exceptions.RayError as exc:  # the actor or its node is gone
                    member.calls[ref] = index
                    lost(member, type(exc).__name__)
                    continue
                member.since = time.monotonic()
            now = time.monotonic()
            for member in list(self.members):
                if member.ready_ref is not None and now - member.since > self.start_timeout:
                    start_budget -= 1
                    self._drop(member)
                elif member.calls and now - member.since > timeout + self.grace_seconds:
                    lost(member, f"silent for over {timeout + self.grace_seconds:g}s")
        return results  # type: ignore[return-value]

    def close(self) -> None:
        """Stop every actor's worker (running the finalizer on its node), kill the actors, and forget them."""
        import ray

        if not ray.is_initialized():  # the cluster is gone, and its actors with it
            self.members.clear()
            return
        closing = [m.actor.close.remote(self.finalizer) for m in self.members]
        if closing:
            ray.wait(closing, num_returns=len(closing), timeout=10.0)
        for member in self.members:
            try:
                ray.kill(member.actor, no_restart=True)
            except ray.exceptions.RayError:
                pass
        self.members.clear()

    def __enter__(self) -> RayPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
