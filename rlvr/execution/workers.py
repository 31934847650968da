"""Killable worker processes: hard wall-time and memory bounds for untrusted work.

A signal-based timeout only works on the main thread, and a hung thread or pool
worker cannot be interrupted. :class:`WorkerPool` runs each task in a separate
process that it can kill: when a task overruns its time bound the worker is
killed (SIGKILL) and replaced, and the task reports a timeout; when a worker dies
(segfault, out of memory) the task reports a crash. Other tasks are unaffected,
and results come back in input order.

Tasks must be functions of importable modules (workers do not import the
parent's ``__main__``). Limits, stated plainly: this bounds time and address
space, nothing more. It is
not a sandbox for hostile code (see the code sandbox for that); it is what keeps
a pathological LaTeX expression from stalling a training run.

The same tasks can run across a Ray cluster instead (:class:`rlvr.execution.ray_pool.RayPool`,
the same interface, bounds and statuses); :func:`resolve_backend` reads which one
a verifier uses (its ``backend`` argument, else the ``RLVR_POOL_BACKEND``
environment variable, else ``"local"``).
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing as mp
import os
import pickle
import resource
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

__all__ = ["BACKENDS", "BACKEND_VARIABLE", "TaskResult", "WorkerPool", "resolve_backend"]

BACKENDS = ("local", "ray")
BACKEND_VARIABLE = "RLVR_POOL_BACKEND"


def resolve_backend(backend: str | None = None) -> str:
    """The pool backend to use: ``backend``, else ``$RLVR_POOL_BACKEND``, else ``"local"``.

    ``"local"`` is :class:`WorkerPool` (processes on this machine); ``"ray"`` is
    :class:`rlvr.execution.ray_pool.RayPool` (actors across a Ray cluster, ``pip install 'rlvr[ray]'``).

    Raises:
        ValueError: a name that is not one of :data:`BACKENDS`.
    """
    name = backend if backend is not None else (os.environ.get(BACKEND_VARIABLE) or "local")
    if name not in BACKENDS:
        source = "backend" if backend is not None else BACKEND_VARIABLE
        raise ValueError(f"{source} must be one of {BACKENDS}, got {name!r}")
    return name


@dataclass(frozen=True)
class TaskResult:
    """The outcome of one task run in a worker.

    Attributes:
        status: ``"ok"`` (``value`` holds the return value), ``"error"`` (the task
            raised; ``error`` holds the traceback's last line), ``"timeout"``,
            ``"crashed"``, or, from a :class:`rlvr.execution.ray_pool.RayPool` only,
            ``"unavailable"`` (the Ray worker or node that held the task was lost,
            also on its retries: nothing is known of the task).
        value: the task's return value, when ``status`` is ``"ok"``.
        error: what went wrong, when it is not.
        seconds: how long the task ran.
    """

    status: str
    value: Any = None
    error: str = ""
    seconds: float = 0.0


def _worker_main(
    conn: Connection,
    memory_limit_bytes: int | None,
    preload: Sequence[str],
    warmup: tuple[Callable[..., Any], tuple] | None,
) -> None:
    if memory_limit_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))
    for module in preload:  # imports happen before "ready", outside any task's time bound
        importlib.import_module(module)
    if warmup is not None:  # e.g. a first parse that builds a parser's tables
        warmup[0](*warmup[1])
    conn.send(("ready", None))
    while True:
        try:
            raw = conn.recv_bytes()
        except EOFError:
            return
        try:
            message = pickle.loads(raw)
        except Exception as exc:  # e.g. a function defined in the parent's __main__
            conn.send(
                ("error", f"cannot load the task in a worker ({exc}); tasks must be functions of importable modules")
            )
            continue
        if message is None:
            return
        fn, args = message
        try:
            conn.send(("ok", fn(*args)))
        except MemoryError:
            conn.send(("error", "MemoryError: the task exceeded the worker's memory limit"))
        except Exception as exc:  # reported to the parent, never swallowed
            last = traceback.format_exception_only(type(exc), exc)[-1].strip()
            conn.send(("error", last))


@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Start children without re-running the parent's ``__main__``.

    forkserver and spawn children normally import the parent's main script (or
    ``-m`` module) as ``__mp_main__``: slow (a training script imports torch), fatal
    for a script read from stdin, and dangerous for one without an
    ``if __name__ == "__main__"`` guard. Workers only run functions from importable
    modules, so they need none of it; hiding ``__file__`` and ``__spec__`` while a
    child starts leaves the main module out of its preparation data.
    """
    main = sys.modules["__main__"]
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__dict__["__spec__"] = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


class _Worker:
    def __init__(self, ctx: Any, memory_limit_bytes: int | None, preload: Sequence[str], warmup: Any = None) -> None:
        self.conn, child = ctx.Pipe()
        args = (child, memory_limit_bytes, tuple(preload), warmup)
        self.process = ctx.Process(target=_worker_main, args=args, daemon=True)
        with _main_module_hidden():
            self.process.start()
        child.close()
        self.ready = False

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()


class WorkerPool:
    """``workers`` processes that run picklable ``fn(*args)`` tasks with a time bound.

    Args:
        workers: number of processes (default: the CPU count).
        memory_limit_mb: address-space limit of each worker (None: unlimited).
        start_method: ``"forkserver"`` by default: forking a process that runs
            torch's thread pools can deadlock, and the fork server starts clean.
        preload: modules each worker imports before it takes tasks (also preloaded
            into the fork server when this pool starts it), so import time never
            counts against a task's time bound.
        warmup: ``(fn, args)`` each worker runs once before it takes tasks.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        workers: int | None = None,
        memory_limit_mb: int | None = 2048,
        start_method: str = "forkserver",
        preload: Sequence[str] = (),
        warmup: tuple[Callable[..., Any], tuple] | None = None,
    ) -> None:
        self.size = workers or os.cpu_count() or 1
        self.memory_limit_bytes = memory_limit_mb * 1024 * 1024 if memory_limit_mb else None
        self.ctx = mp.get_context(start_method)
        self.preload = tuple(preload)
        self.warmup = warmup
        if start_method == "forkserver" and self.preload:
            self.ctx.set_forkserver_preload(list(self.preload))  # no effect if the server already runs
        self.workers: list[_Worker] = []
        self.replaced = 0
        self._lock = threading.Lock()  # one map at a time: calls from several threads queue here

    def _ensure_started(self) -> None:
        while len(self.workers) < self.size:
            self.workers.append(_Worker(self.ctx, self.memory_limit_bytes, self.preload, self.warmup))

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Start every worker and return once all have imported and warmed up."""
        self._ensure_started()
        deadline = time.monotonic() + timeout
        while starting := [w for w in self.workers if not w.ready]:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"{len(starting)} worker process(es) not ready after {timeout:g}s")
            for conn in wait([w.conn for w in starting], timeout=remaining):
                worker = next(w for w in starting if w.conn is conn)
                try:
                    worker.ready = conn.recv()[0] == "ready"
                except (EOFError, OSError) as exc:
                    raise RuntimeError(
                        f"a worker process failed to start (exit code {worker.process.exitcode})"
                    ) from exc

    def _replace(self, worker: _Worker) -> _Worker:
        """Kill ``worker`` and start a fresh one in its place; it takes tasks once ready."""
        worker.kill()
        fresh = _Worker(self.ctx, self.memory_limit_bytes, self.preload, self.warmup)
        self.workers[self.workers.index(worker)] = fresh
        self.replaced += 1
        return fresh

    def run(self, fn: Callable[..., Any], args: tuple = (), timeout: float = 10.0) -> TaskResult:
        """Run ``fn(*args)`` in a worker, killing it after ``timeout`` seconds; see :meth:`map`."""
        return self.map(fn, [args], timeout=timeout)[0]

    def map(self, fn: Callable[..., Any], items: Sequence[tuple], timeout: float = 10.0) -> list[TaskResult]:
        """Run ``fn(*items[i])`` for every i across the workers; results in input order."""
        if not items:
            return []
        with self._lock:
            return self._map(fn, items, timeout)

    def _map(self, fn: Callable[..., Any], items: Sequence[tuple], timeout: float) -> list[TaskResult]:
        self._ensure_started()
        results: list[TaskResult | None] = [None] * len(items)
        pending = deque(range(len(items)))
        busy: dict[_Worker, tuple[int, float]] = {}
        start_failures = 0
        try:
            while pending or busy:
                for worker in [w for w in self.workers if w.ready and w not in busy]:
                    if not pending:
                        break
                    index = pending.popleft()
                    try:
                        worker.conn.send((fn, items[index]))
                    except (BrokenPipeError, OSError):  # died while idle: replace, retry the task later
                        self._replace(worker)
                        pending.appendleft(index)
                        continue
                    busy[worker] = (index, time.monotonic())
                starting = [w for w in self.workers if not w.ready]
                now = time.monotonic()
                deadlines = [start + timeout for _, start in busy.values()]
                wait_for = max(0.0, min(deadlines) - now) if deadlines else 60.0
                ready = wait([w.conn for w in busy] + [w.conn for w in starting], timeout=wait_for)
                for worker in starting:
                    if worker.conn in ready:
                        try:
                            worker.ready = worker.conn.recv()[0] == "ready"
                        except (EOFError, OSError) as exc:  # killed while starting: start another, within reason
                            start_failures += 1
                            if start_failures > 3 * self.size:
                                raise RuntimeError(
                                    f"worker processes keep failing to start (exit code {worker.process.exitcode})"
                                ) from exc
                            self._replace(worker)
                for worker in list(busy):
                    index, start = busy[worker]
                    elapsed = time.monotonic() - start
                    if worker.conn in ready:
                        try:
                            status, payload = worker.conn.recv()
                        except (EOFError, OSError):  # the worker died mid-task
                            worker.process.join(timeout=1)
                            results[index] = TaskResult(
                                "crashed", error=f"worker exited with code {worker.process.exitcode}", seconds=elapsed
                            )
                            self._replace(worker)
                        else:
                            results[index] = TaskResult(
                                status, payload if status == "ok" else None, "" if status == "ok" else payload, elapsed
                            )
                        del busy[worker]
                    elif elapsed >= timeout:
                        results[index] = TaskResult("timeout", error=f"exceeded {timeout:g}s", seconds=elapsed)
                        del busy[worker]
                        self._replace(worker)
        except BaseException:
            # Cancellation (Ctrl-C) or a bug here: never leave tasks running behind.
            for worker in busy:
                self._replace(worker)
            raise
        return results  # type: ignore[return-value]

    def close(self) -> None:
        """Ask every worker to exit, kill any still running after two seconds, and forget them."""
        for worker in self.workers:
            try:
                worker.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            worker.process.join(timeout=2)
            worker.kill()
        self.workers.clear()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
