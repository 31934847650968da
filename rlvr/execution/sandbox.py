"""Run untrusted Python in a fresh, confined process; judge it from a process it cannot reach.

A :class:`Sandbox` is a :class:`rlvr.execution.workers.WorkerPool` whose workers
(once, at start-up, :func:`prepare_worker`) enter a mount namespace of their
own and start a *zygote* (:mod:`rlvr.execution.zygote`), a lean process that
does their forking. For each sample the zygote:

1. takes a run it started ahead of time (:class:`rlvr.execution.spawn.Interpreter`:
   a process forked from the worker's clean template interpreter, ``python -I -S``
   with an empty environment, :mod:`rlvr.execution.template`; new namespaces,
   own ``/proc``, own scratch ``tmpfs``, control groups, rlimits, a user id of
   its own, seccomp) and, once the judge runs, starts the next one, so
   start-up overlaps with judging;
2. forks the judge (:func:`rlvr.execution.harness.judge`), which sends the
   program and runs the tests, calling into the program's process over a pipe;

and the worker drains the program's stdout and stderr (each capped), collects
the judge's records, and kills the program's process at the wall-time limit.

Statuses (:class:`RunResult`): whatever happens once the program has been sent
is the program's (``done``, ``exited``, ``signaled``, ``timeout``, ``lost``);
``error`` only means the machinery failed before the program was sent (an
interpreter or a zygote that did not start), and :meth:`Sandbox.run` retries
such a sample once on fresh workers before reporting it.

With ``backend="ray"`` the workers are Ray actors' local pools on the cluster's
nodes (:class:`rlvr.execution.ray_pool.RayPool`), each preparing its worker and
running samples exactly as here. A Ray worker or node lost while it held a
sample is machinery, not the program: the sample runs once more on another
Ray worker, and is ``error`` if that is lost too.
"""

from __future__ import annotations

import json
import multiprocessing.util
import os
import select
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from rlvr.execution import cgroups, isolation

__all__ = ["Limits", "RunResult", "Sandbox", "prepare_worker", "run_sample", "signal_name"]

_GRACE = 0.3  # after the wall time: for the judge to write its last record
_DONE = b'{"event": "done"}'


@dataclass(frozen=True)
class Limits:
    """Bounds on one sample's run.

    Attributes:
        wall_seconds: wall-clock time from sending the program to the verdict.
        cpu_seconds: CPU time of the program's process (RLIMIT_CPU); None means ``int(wall_seconds) + 2``.
        memory_mb: memory of the whole run (memory control group, where the host has
            one) and address space of each of its processes (RLIMIT_AS); below what
            the interpreter itself maps (about 20 MB), no run can start.
        max_processes: processes of the run at once (pids control group and RLIMIT_NPROC of its user id).
        max_file_mb: largest file the program may write (RLIMIT_FSIZE); its scratch folder holds four times that.
        max_files: files and folders its scratch folder holds.
        max_open_files: open file descriptors (RLIMIT_NOFILE).
        max_output_bytes: stdout and stderr are each cut at this size.
        max_frame_bytes: the largest answer (return value, captured output) the judge accepts.
    """

    wall_seconds: float = 5.0
    cpu_seconds: int | None = None
    memory_mb: int = 1024
    max_processes: int = 16
    max_file_mb: int = 16
    max_files: int = 4096
    max_open_files: int = 64
    max_output_bytes: int = 64 * 1024
    max_frame_bytes: int = 4 << 20

    def __post_init__(self) -> None:
        if not self.wall_seconds > 0:
            raise ValueError(f"wall_seconds must be positive, got {self.wall_seconds}")
        for name in ("memory_mb", "max_processes", "max_file_mb", "max_files", "max_output_bytes", "max_frame_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_open_files < 16:
            raise ValueError(f"max_open_files must be at least 16, got {self.max_open_files}")

    @property
    def cpu(self) -> int:
        """The CPU-time limit in seconds: ``cpu_seconds``, or ``int(wall_seconds) + 2`` when that is None."""
        return self.cpu_seconds if self.cpu_seconds is not None else int(self.wall_seconds) + 2


@dataclass(frozen=True)
class RunResult:
    """What happened to one sample.

    ``status``: ``"done"`` (the judge ran every test; the program's process was
    then stopped), ``"exited"`` (``exit_code``), ``"signaled"`` (``signal``:
    SIGKILL after the memory limit, SIGXCPU after the CPU limit, SIGSEGV, ...),
    ``"timeout"`` (killed at the wall-clock limit), ``"lost"`` (the worker died
    while the program ran) or ``"error"`` (the machinery failed before the
    program was sent; ``error`` says how; never the program's doing).
    ``report``: the judge's records (see :mod:`rlvr.execution.harness`).
    """

    status: str
    exit_code: int | None = None
    signal: str = ""
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    report: tuple[dict[str, Any], ...] = ()
    seconds: float = 0.0
    error: str = ""
    isolation: dict[str, bool] = field(default_factory=dict)


def signal_name(number: int) -> str:
    """``SIGSEGV`` for 11; ``signal 40`` for a number the ``signal`` module has no name for."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


_zygote: list[Any] = []  # this worker's zygote (see rlvr.execution.zygote), started on first use


def _get_zygote() -> Any:
    from rlvr.execution.zygote import Zygote

    if not _zygote:
        _zygote.append(Zygote())
        multiprocessing.util.Finalize(None, _drop_zygote, exitpriority=10)  # the worker's exit waits for it
    return _zygote[0]


def prepare_worker(limits: Limits) -> dict[str, bool]:
    """A sandbox worker's warm-up: its own mount namespace, its zygote, a first interpreter for ``limits``."""
    state = isolation.prepare_worker()
    _get_zygote().prestart(limits)
    return state


def _drop_zygote() -> None:
    while _zygote:
        _zygote.pop().close()


def _ask(payload: dict[str, Any], limits: Limits) -> tuple[Any, list[int]]:
    """The zygote's reply to a run request; a zygote that died is replaced once."""
    for attempt in (0, 1):
        try:
            return _get_zygote().start(payload, limits)
        except (OSError, EOFError) as exc:
            _drop_zygote()
            if attempt:
                return ("error", f"the zygote failed: {exc}"), []
    raise AssertionError("unreachable")


def run_sample(payload: dict[str, Any], limits: Limits = Limits()) -> RunResult:
    """Run one sample in a sandbox worker (see the module docs); never raises for the program's doing.

    Args:
        payload: ``program`` (Python source), and ``tests`` (with ``setup``,
            ``entry_point``) or ``io`` cases; with neither, the program runs as a script.
        limits: the run's bounds.
    """
    reply, fds = _ask(payload, limits)
    started = time.monotonic()
    if reply[0] != "ok":
        return RunResult("error", error=reply[1], isolation=isolation.isolation())
    info = reply[1]
    out, err, status, *rest = fds
    results = rest.pop(0) if info["judged"] else None
    program, judge = rest[0], (rest[1] if len(rest) > 1 else None)
    try:
        return _collect(out, err, status, results, program, judge, limits, started, info)
    finally:
        for fd in fds:
            os.close(fd)


def _kill(pidfd: int | None) -> None:
    if pidfd is not None:
        try:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _collect(out, err, status, results, program, judge, limits, started, info) -> RunResult:
    """Drain the outputs until the verdict is in, the program ended, or the time is up; then end the run."""
    caps = {out: limits.max_output_bytes, err: limits.max_output_bytes, status: 4096}
    if results is not None:
        caps[results] = 1 << 20
    data = {fd: bytearray() for fd in caps}
    seen = dict.fromkeys(caps, 0)
    open_fds = set(caps)
    deadline = started + limits.wall_seconds
    timed_out, hard_stop = False, deadline + _GRACE
    while open_fds:
        judge_over = results is None or results not in open_fds
        if judge_over and (status not in open_fds or _DONE in data.get(results, b"")):
            break
        now = time.monotonic()
        if now >= hard_stop or (now >= deadline and not timed_out):
            timed_out = True
            _kill(program)
            if now >= hard_stop:
                break
        ready, _, _ = select.select(list(open_fds), [], [], max(0.0, (deadline if not timed_out else hard_stop) - now))
        for fd in ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                open_fds.discard(fd)
                continue
            seen[fd] += len(chunk)
            room = caps[fd] - len(data[fd])
            if room > 0:
                data[fd] += chunk[:room]
    _kill(program)
    _kill(judge)
    report = _records(bytes(data.get(results, b"")))
    common = {
        "stdout": data[out].decode("utf-8", "replace"),
        "stderr": data[err].decode("utf-8", "replace"),
        "stdout_truncated": seen[out] > caps[out],
        "stderr_truncated": seen[err] > caps[err],
        "report": report,
        "seconds": time.monotonic() - started,
        "isolation": {k: v for k, v in info.items() if k != "judged"},
    }
    wait_status = _wait_status(bytes(data[status]))
    if any(r.get("event") == "done" for r in report):
        return RunResult("done", **common)
    if timed_out:
        return RunResult("timeout", signal="SIGKILL", **common)
    if wait_status is None:
        return RunResult("signaled", signal="SIGKILL", **common)
    if os.WIFSIGNALED(wait_status):
        return RunResult("signaled", signal=signal_name(os.WTERMSIG(wait_status)), **common)
    return RunResult("exited", exit_code=os.WEXITSTATUS(wait_status), **common)


def _wait_status(raw: bytes) -> int | None:
    try:
        return int(json.loads(raw.rpartition(b"\n")[2])["wait_status"])
    except (ValueError, KeyError, TypeError):
        return None


def _records(raw: bytes) -> tuple[dict[str, Any], ...]:
    """The judge's JSON lines (a line cut at the cap is dropped)."""
    records = []
    for line in raw.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return tuple(records)


class Sandbox:
    """A pool of workers that judge samples in parallel, each in a fresh, confined process.

    Results come back in input order. A sample whose machinery failed before
    its program was sent (status ``error``) is retried once on fresh workers; a
    worker lost while a program ran makes that sample ``lost`` (the program's).

    Args:
        workers: parallel samples (default: the CPU count, or the Ray cluster's).
        limits: default :class:`Limits` of every run.
        backend: ``"local"`` (worker processes on this machine) or ``"ray"``
            (across a Ray cluster); None reads ``RLVR_POOL_BACKEND``
            (:func:`rlvr.execution.workers.resolve_backend`).
    """

    def __init__(self, workers: int | None = None, limits: Limits = Limits(), backend: str | None = None) -> None:
        from rlvr.execution.workers import resolve_backend

        self.limits = limits
        self.workers = workers
        self.backend = resolve_backend(backend)
        self.pool = self._new_pool()

    def _new_pool(self) -> Any:
        preload = ("rlvr.execution.sandbox", "rlvr.execution.zygote")
        warmup = (prepare_worker, (self.limits,))
        if self.backend == "ray":
            from rlvr.execution.ray_pool import RayPool

            return RayPool(
                self.workers, memory_limit_mb=None, preload=preload, warmup=warmup, finalizer=(cgroups.sweep, ())
            )
        from rlvr.execution.workers import WorkerPool

        return WorkerPool(self.workers, memory_limit_mb=None, preload=preload, warmup=warmup)

    def warm_up(self) -> None:
        """Start and prepare the workers now and wait until they are ready."""
        self.pool.wait_ready()

    def run(self, payloads: list[dict[str, Any]], limits: Limits | None = None) -> list[RunResult]:
        """Run every payload (see :func:`run_sample`); results in input order."""
        limits = limits or self.limits
        for payload in payloads:
            if not (isinstance(payload, dict) and isinstance(payload.get("program"), str)):
                raise TypeError(f"a payload is a dict with the program's source under 'program', got {payload!r:.80}")
        results, retried = self._map(payloads, limits)
        retry = [i for i, r in enumerate(results) if r.status == "error" and i not in retried]
        if retry:  # a machinery failure: once more, on fresh workers
            self.pool.close()
            self.pool = self._new_pool()
            for index, result in zip(retry, self._map([payloads[i] for i in retry], limits)[0], strict=True):
                results[index] = result
        return results

    def _map(self, payloads: list[dict[str, Any]], limits: Limits) -> tuple[list[RunResult], set[int]]:
        """The runs, and the indices the pool itself already retried (a lost Ray worker's samples)."""
        try:
            tasks = self.pool.map(run_sample, [(p, limits) for p in payloads], timeout=limits.wall_seconds + 30.0)
        except RuntimeError as exc:  # workers that cannot start
            return [RunResult("error", error=str(exc)) for _ in payloads], set()
        return [_from_task(task) for task in tasks], {i for i, t in enumerate(tasks) if t.status == "unavailable"}

    def close(self) -> None:
        """Stop the worker processes (their pre-started interpreters go with them)."""
        self.pool.close()
        cgroups.sweep()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _from_task(task: Any) -> RunResult:
    """A pool task's outcome as a run.

    A sandbox worker lost mid-run is the program's (``lost``); a task that could
    not run, or a Ray worker or node lost with it (``unavailable``), is not (``error``).
    """
    if task.status == "ok":
        return task.value
    if task.status in ("timeout", "crashed"):
        return RunResult("lost", error=f"the sandbox worker {task.status} while the program ran: {task.error}")
    if task.status == "unavailable":
        return RunResult("error", error=f"the Ray worker was lost: {task.error}")
    return RunResult("error", error=f"the sandbox worker failed: {task.error}")
