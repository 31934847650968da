"""Run untrusted Python in a separate, bounded, isolated process.

:func:`run_python` (called inside a :class:`rlvr.execution.workers.WorkerPool` worker, the
same killable-worker runner the math verifier uses) forks a monitor, which forks
the program's process. What the program's process gets:

* a fresh temporary working directory (also ``HOME`` and ``TMPDIR``), removed afterwards;
* resource limits: address space, CPU seconds, processes, file size, open files,
  no core dumps; a wall-clock timeout after which it is killed;
* stdout and stderr captured through pipes, each capped at ``max_output_bytes``
  (the rest is read and dropped, so a flood of output cannot block or exhaust memory);
* an environment with nothing of the caller's: ``PATH``, ``HOME``, ``TMPDIR``, ``LANG``;
* stdin from ``/dev/null`` and no other file descriptors of the caller's.

When the process runs as root (the usual container case; :func:`isolation` says
what holds), also:

* a new network namespace per worker with no interface up: every connection,
  loopback included, fails with "network unreachable";
* a new mount namespace per worker in which ``/tmp``, ``/var/tmp``, ``/dev/shm``
  and ``/run/lock`` are fresh root-owned ``tmpfs`` the program cannot write;
* the program runs as an unprivileged user id of its own (``100000 + worker
  pid``), so it can write nowhere but its temporary directory, cannot read files
  that are not world-readable, and cannot signal the caller's processes;
* a new PID namespace per program in which the program is PID 1: it sees no
  process outside (``getppid()`` is 0), and when it exits or is killed the kernel
  kills everything it started, so no orphan outlives it.

Without root the fallback is limits, a new session killed as a group, the
scrubbed environment and the temporary directory; the program can then write
wherever the caller can, reach the network, and a child that leaves the session
can outlive it. This is not a VM: a kernel exploit, a side channel, or reading
world-readable files (the project's source, system configuration) is not stopped.
"""

from __future__ import annotations

import json
import os
import resource
import secrets
import select
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from rlvr.execution.isolation import CLONE_NEWPID, isolate_worker, isolation, libc, worker_isolation

__all__ = ["Limits", "RunResult", "Sandbox", "isolate_worker", "isolation", "run_python"]

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Limits:
    """Bounds on one program run.

    Attributes:
        wall_seconds: wall-clock time before the program is killed.
        cpu_seconds: CPU time (RLIMIT_CPU); None means ``ceil(wall_seconds) + 1``.
        memory_mb: address space (RLIMIT_AS) of the program's process. The program
            starts as a fork of a small worker, so about 100 MB of it is taken already.
        max_processes: processes of the sandbox user (RLIMIT_NPROC; only enforced
            when the program runs under its own user id, i.e. as root).
        max_file_mb: largest file the program may write (RLIMIT_FSIZE).
        max_open_files: open file descriptors (RLIMIT_NOFILE).
        max_output_bytes: stdout and stderr are each cut at this size.
    """

    wall_seconds: float = 5.0
    cpu_seconds: int | None = None
    memory_mb: int = 1024
    max_processes: int = 16
    max_file_mb: int = 16
    max_open_files: int = 64
    max_output_bytes: int = 64 * 1024

    def __post_init__(self) -> None:
        if not self.wall_seconds > 0:
            raise ValueError(f"wall_seconds must be positive, got {self.wall_seconds}")
        for name in ("memory_mb", "max_processes", "max_file_mb", "max_open_files", "max_output_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")

    @property
    def cpu(self) -> int:
        """The CPU-time limit in seconds: ``cpu_seconds``, or ``int(wall_seconds) + 2`` when that is None."""
        return self.cpu_seconds if self.cpu_seconds is not None else int(self.wall_seconds) + 2


@dataclass(frozen=True)
class RunResult:
    """What happened to one program.

    ``status``: ``"exited"`` (``exit_code`` holds the code), ``"signaled"``
    (``signal`` names it: SIGKILL after the memory limit, SIGXCPU after the CPU
    limit, SIGSEGV, ...), ``"timeout"`` (killed at the wall-clock limit) or
    ``"error"`` (the sandbox itself failed: ``error`` says how; never the program's fault).
    ``report``: the records the in-sandbox harness wrote on its own channel.
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


def run_python(payload: dict[str, Any], limits: Limits = Limits()) -> RunResult:
    """Run ``payload["program"]`` (Python source) in a sandboxed process and wait.

    ``payload`` may also carry ``setup``, ``tests`` and ``entry_point``: the
    in-sandbox harness (:mod:`rlvr.execution.harness`) then runs each test against the program
    and reports it on a channel of its own (``RunResult.report``). Without
    ``tests`` the program just runs.
    """
    from rlvr.execution import harness  # imported before the fork, so the child pays nothing

    uid = 100000 + os.getpid() if os.geteuid() == 0 else None
    workdir = tempfile.mkdtemp(prefix="rlvr-sandbox-")
    pipes = {name: os.pipe() for name in ("stdout", "stderr", "report", "status")}
    nonce = secrets.token_hex(16)
    started = time.monotonic()
    try:
        if uid is not None:
            os.chown(workdir, uid, uid)
        monitor = os.fork()
        if monitor == 0:  # pragma: no cover - runs in the forked monitor
            _monitor(payload, limits, uid, workdir, pipes, nonce, harness)
        for _read, write in pipes.values():
            os.close(write)
        outputs, status = _collect(pipes, limits, started, monitor)
    finally:
        for read, _ in pipes.values():
            _close_quietly(read)
        shutil.rmtree(workdir, ignore_errors=True)
    return _result(outputs, status, nonce, limits, time.monotonic() - started)


def _monitor(payload, limits, uid, workdir, pipes, nonce, harness) -> None:  # pragma: no cover - forked
    """The program's parent: gives it a PID namespace, enforces the wall time, reports how it ended."""
    try:
        lib = libc()
        lib.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # the worker was killed: go too
        in_pid_namespace = worker_isolation.get("pid", False) and lib.unshare(CLONE_NEWPID) == 0
        child = os.fork()
        if child == 0:
            _program(payload, limits, uid, workdir, pipes, nonce, harness)
        for read, write in pipes.values():
            if write != pipes["status"][1]:
                os.close(write)
            os.close(read)
        deadline = time.monotonic() + limits.wall_seconds
        timed_out = False
        try:
            pidfd = os.pidfd_open(child)
        except (AttributeError, OSError):
            pidfd = None
        while True:
            pid, wait_status = os.waitpid(child, os.WNOHANG)
            if pid:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                _kill_group(child)
                pid, wait_status = os.waitpid(child, 0)
                break
            if pidfd is not None:
                select.select([pidfd], [], [], remaining)
            else:
                time.sleep(min(remaining, 0.002))
        if not in_pid_namespace:
            _kill_group(child)  # the fallback: whatever stayed in the program's session
        message = {"wait_status": wait_status, "timed_out": timed_out, "pid_namespace": in_pid_namespace}
        os.write(pipes["status"][1], json.dumps(message).encode())
        os._exit(0)
    except BaseException as exc:  # a forked child must never return into the worker's loop
        try:
            os.write(pipes["status"][1], json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
        finally:
            os._exit(1)


def _program(payload, limits, uid, workdir, pipes, nonce, harness) -> None:  # pragma: no cover - forked
    """The program's own process: drop everything, then hand over to the harness."""
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(pipes["stdout"][1], 1)
        os.dup2(pipes["stderr"][1], 2)
        # The harness's channel sits at an unpredictable descriptor number.
        report_fd = 3 + secrets.randbelow(limits.max_open_files - 8) if limits.max_open_files > 16 else 9
        os.dup2(pipes["report"][1], report_fd)
        os.closerange(3, report_fd)
        os.closerange(report_fd + 1, 65536)
        os.chdir(workdir)
        os.environ.clear()
        os.environ.update({"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"})
        tempfile.tempdir = workdir
        memory = limits.memory_mb * 1024 * 1024
        for limit, value in (
            (resource.RLIMIT_AS, memory),
            (resource.RLIMIT_CPU, limits.cpu),
            (resource.RLIMIT_FSIZE, limits.max_file_mb * 1024 * 1024),
            (resource.RLIMIT_NOFILE, limits.max_open_files),
            (resource.RLIMIT_CORE, 0),
        ):
            resource.setrlimit(limit, (value, value))
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_processes, limits.max_processes))
        libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # after setuid, which clears it
        harness.main(payload, report_fd, nonce)
        os._exit(0)
    except BaseException as exc:  # nothing of the program may unwind into the monitor's code
        try:
            os.write(2, f"rlvr sandbox: {type(exc).__name__}: {exc}\n".encode())
        finally:
            os._exit(70)


class Sandbox:
    """A pool of pre-started, pre-isolated workers that run programs in parallel.

    Each worker is a :class:`rlvr.execution.workers.WorkerPool` worker (the runner the math
    verifier uses too) that has entered its own network and mount namespaces
    (:func:`isolate_worker`) and forks one sandboxed process per program. Results
    come back in input order; a worker that dies or hangs past the backstop is
    replaced and its program reported as a sandbox ``"error"``, never as a result
    of the program.

    Args:
        workers: parallel programs (default: the CPU count).
        limits: default :class:`Limits` of every run.
    """

    def __init__(self, workers: int | None = None, limits: Limits = Limits()) -> None:
        from rlvr.execution.workers import WorkerPool

        self.limits = limits
        self.pool = WorkerPool(
            workers,
            memory_limit_mb=None,
            preload=("rlvr.execution.sandbox", "rlvr.execution.harness"),
            warmup=(isolate_worker, ()),
        )

    def warm_up(self) -> None:
        """Start and isolate the workers now and wait until they are ready."""
        self.pool.wait_ready()

    def run(self, payloads: list[dict[str, Any]], limits: Limits | None = None) -> list[RunResult]:
        """Run every payload (see :func:`run_python`); results in input order."""
        limits = limits or self.limits
        for payload in payloads:
            if not (isinstance(payload, dict) and isinstance(payload.get("program"), str)):
                raise TypeError(f"a payload is a dict with the program's source under 'program', got {payload!r:.80}")
        results = self.pool.map(run_python, [(p, limits) for p in payloads], timeout=limits.wall_seconds + 5.0)
        return [
            r.value if r.status == "ok" else RunResult("error", error=f"sandbox worker {r.status}: {r.error}")
            for r in results
        ]

    def close(self) -> None:
        """Stop the worker processes."""
        self.pool.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _kill_group(pid: int) -> None:
    for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            kill()
        except (ProcessLookupError, PermissionError):
            pass


def _collect(pipes, limits, started, monitor) -> tuple[dict[str, bytearray], dict[str, Any]]:
    """Drain stdout, stderr and the report (capped) until the monitor reports.

    A backstop one second past the wall time kills the monitor (and so the program).
    """
    caps = {"stdout": limits.max_output_bytes, "stderr": limits.max_output_bytes, "report": 1 << 20, "status": 4096}
    fds = {pipes[name][0]: name for name in caps}
    data = {name: bytearray() for name in caps}
    seen = dict.fromkeys(caps, 0)
    backstop = started + limits.wall_seconds + 1.0
    while fds:
        remaining = backstop - time.monotonic()
        if remaining <= 0:
            _kill_group(monitor)
            break
        ready, _, _ = select.select(list(fds), [], [], remaining)
        for fd in ready:
            chunk = os.read(fd, 65536)
            name = fds[fd]
            if not chunk:
                del fds[fd]
                continue
            seen[name] += len(chunk)
            room = caps[name] - len(data[name])
            if room > 0:
                data[name] += chunk[:room]
    os.waitpid(monitor, 0)
    try:
        status = json.loads(bytes(data["status"]) or b"{}")
    except ValueError:
        status = {}
    if not status:
        status = {"error": "the sandbox monitor did not report (killed at the backstop or crashed)"}
    status["truncated"] = {name: seen[name] > caps[name] for name in ("stdout", "stderr")}
    return data, status


def _result(outputs, status, nonce, limits, seconds) -> RunResult:
    common = {
        "stdout": outputs["stdout"].decode("utf-8", "replace"),
        "stderr": outputs["stderr"].decode("utf-8", "replace"),
        "stdout_truncated": status["truncated"]["stdout"],
        "stderr_truncated": status["truncated"]["stderr"],
        "report": tuple(_records(outputs["report"], nonce)),
        "seconds": seconds,
        "isolation": {**isolation(), "pid": bool(status.get("pid_namespace"))},
    }
    if "error" in status:
        return RunResult("error", error=status["error"], **common)
    wait_status = status["wait_status"]
    if status["timed_out"]:
        return RunResult("timeout", signal="SIGKILL", **common)
    if os.WIFSIGNALED(wait_status):
        return RunResult("signaled", signal=signal.Signals(os.WTERMSIG(wait_status)).name, **common)
    return RunResult("exited", exit_code=os.WEXITSTATUS(wait_status), **common)


def _records(raw: bytes, nonce: str) -> list[dict[str, Any]]:
    """Report lines that carry this run's nonce; anything else on the channel is ignored."""
    records = []
    prefix = nonce + " "
    for line in raw.decode("utf-8", "replace").splitlines():
        if line.startswith(prefix):
            try:
                record = json.loads(line[len(prefix) :])
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
    return records


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
