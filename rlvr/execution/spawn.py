"""Start a sandboxed interpreter ahead of its sample; each one serves exactly one sample.

:class:`Interpreter` forks a monitor, which (as root) enters new mount, IPC,
network, UTS and PID namespaces (:func:`rlvr.execution.isolation.enter_run_namespaces`)
and forks the program's process, PID 1 of the new PID namespace. That process:

1. mounts its own ``/proc``, joins the run's control groups
   (:mod:`rlvr.execution.cgroups`), starts a new session;
2. keeps only descriptors 0 (``/dev/null``), 1 and 2 (pipes the worker
   drains), 3 (requests from the judge) and 4 (answers to it);
3. works in ``/tmp``, a fresh ``tmpfs`` of its own (without root: a fresh
   temporary folder, removed afterwards);
4. gets rlimits (address space, CPU seconds, file size, open files, no core
   dumps; processes per user id), drops to a user id drawn at random for this
   run alone, with no groups, installs the seccomp filter
   (:mod:`rlvr.execution.seccomp`; where it has no table, joins a new session
   keyring instead);
5. executes a fresh interpreter (``python -I -S -B``, empty environment)
   running :mod:`rlvr.execution.runner`, which says "ready" and waits for its program.

Nothing of the verifier's process survives the ``exec``: not its memory (its
environment, its secrets), not its descriptors. The monitor waits for the
program's process and reports how it ended; when the worker dies, both die
(``PR_SET_PDEATHSIG``), and when the program's process ends, the kernel ends
everything in its PID namespace.
"""

from __future__ import annotations

import fcntl
import json
import marshal
import os
import platform
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

from rlvr.execution import cgroups, isolation, seccomp, wire

__all__ = ["Interpreter", "runner_source"]

_PR_SET_PDEATHSIG = 1
_KEYCTL, _KEYCTL_JOIN_SESSION_KEYRING = {"x86_64": 250, "aarch64": 219}, 1
_HERE = Path(__file__).resolve().parent


def runner_source() -> str:
    """The sandboxed interpreter's program: the wire format, then the runner."""
    return (_HERE / "wire.py").read_text() + "\n\n" + (_HERE / "runner.py").read_text()


# Compiled once per worker and sent down the request pipe ahead of everything else:
# compiling the runner in each fresh interpreter would cost more than starting it.
_RUNNER_CODE = marshal.dumps(compile(runner_source(), "<rlvr runner>", "exec", dont_inherit=True, optimize=2))
_LOADER = (
    "import os, marshal\n"
    "def _read(n):\n"
    "    data = b''\n"
    "    while len(data) < n:\n"
    "        chunk = os.read(3, n - len(data))\n"
    "        if not chunk:\n"
    "            raise SystemExit(70)\n"
    "        data += chunk\n"
    "    return data\n"
    "exec(marshal.loads(_read(int(_read(12)))))\n"
)


def program_paths() -> list[str]:
    """Library folders the program may import from besides the standard library (no ``.pth`` files run)."""
    if not PROGRAM_PATHS:
        paths = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
        PROGRAM_PATHS.extend(sorted(p for p in paths if os.path.isdir(p)))
    return PROGRAM_PATHS


PROGRAM_PATHS: list[str] = []  # set by the zygote from its worker's (a bare interpreter's would differ)


class Interpreter:
    """One sandboxed interpreter, started now, waiting for its program.

    Args:
        limits: the run's :class:`rlvr.execution.sandbox.Limits`.

    Attributes:
        requests, answers: the judge's ends of the channel (write, read).
        stdout, stderr, status: read ends of the program's output and the monitor's report.
    """

    def __init__(self, limits: Any) -> None:
        state = isolation.isolation()
        self.limits = limits
        self.namespaces = state["namespaces"]
        self.uid = 0x10000000 + secrets.randbelow(0x60000000) if state["user"] else None
        self.scratch = None if self.namespaces else tempfile.mkdtemp(prefix="rlvr-sandbox-")
        self.group = None
        bases = cgroups.available() if state["user"] else {}
        if bases:
            self.group = cgroups.acquire(bases, limits.memory_mb << 20, limits.max_processes)
        request_r, self.requests = os.pipe()
        self.answers, answer_w = os.pipe()
        self.stdout, out_w = os.pipe()
        self.stderr, err_w = os.pipe()
        self.status, status_w = os.pipe()
        theirs = (request_r, answer_w, out_w, err_w, status_w)
        self.monitor = os.fork()
        if self.monitor == 0:  # pragma: no cover - runs in the forked monitor
            _monitor(self, theirs)
        for fd in theirs:
            os.close(fd)
        wire.write_all(self.requests, b"%012d" % len(_RUNNER_CODE) + _RUNNER_CODE)
        self.ready = False
        self.pid = 0

    def wait_ready(self, timeout: float) -> str:
        """Wait until the interpreter says it is ready; "" then, else why it is not (a machinery failure)."""
        if self.ready:
            return ""
        deadline = time.monotonic() + timeout
        try:
            message = wire.receive(self.answers, 4096, deadline)
            self._read_pid(deadline)
        except (wire.WireError, EOFError, TimeoutError, OSError, ValueError) as exc:
            return f"the sandboxed interpreter did not start ({type(exc).__name__}): {self._tail(self.stderr)}"
        self.ready = message == {"ready": 1}
        return "" if self.ready else "the sandboxed interpreter sent a wrong greeting"

    def _read_pid(self, deadline: float) -> None:
        """Read the monitor's first line: the global PID of the run's PID 1."""
        line = b""
        while not line.endswith(b"\n") and len(line) < 32:
            line += wire.read_exactly(self.status, 1, deadline)
        self.pid = int(line)

    @staticmethod
    def _tail(fd: int) -> str:
        try:
            os.set_blocking(fd, False)
            return os.read(fd, 2000).decode("utf-8", "replace").strip()[-500:]
        except OSError:
            return ""

    def kill(self) -> None:
        """Kill the run: its PID 1 (the kernel ends the rest of its namespace), the monitor reaps it.

        Before the run's PID is known, the monitor itself is killed (its child follows by
        ``PR_SET_PDEATHSIG``). Anything left in the run's groups is killed too.
        """
        if not self.pid:
            try:
                self._read_pid(time.monotonic() + 1.0)
            except (EOFError, TimeoutError, OSError, ValueError):
                pass  # the monitor never forked the run, or is stuck: kill it instead
        try:
            os.kill(self.pid or self.monitor, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.group is not None:
            self.group.kill_all()

    def close(self) -> None:
        """Reap the monitor, close every descriptor, remove the groups and scratch folder."""
        os.waitpid(self.monitor, 0)
        self.close_fds()
        self.release()

    def close_fds(self) -> None:
        """Close this process's ends of the run's pipes."""
        for fd in (self.requests, self.answers, self.stdout, self.stderr, self.status):
            try:
                os.close(fd)
            except OSError:
                pass

    def release(self) -> None:
        """Once the run has ended: hand back its groups (emptied) and remove its scratch folder."""
        if self.group is not None:
            cgroups.release(self.group)
            self.group = None
        if self.scratch is not None:  # a tree too deep for shutil.rmtree's recursion still goes
            subprocess.run(["rm", "-rf", "--one-file-system", self.scratch], check=False, timeout=60)
            shutil.rmtree(self.scratch, ignore_errors=True)


def keep_only(keep: set[int]) -> None:
    """Close every descriptor of this process but ``keep``."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _monitor(run: Interpreter, fds: tuple[int, ...]) -> None:  # pragma: no cover - forked
    """The program's parent: new namespaces, then fork the program, wait, report how it ended."""
    status_w = fds[-1]
    try:
        libc = isolation.libc()
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        keep_only(set(fds))
        if run.namespaces:
            limits = run.limits
            isolation.enter_run_namespaces(run.uid or 0, limits.max_file_mb * 4, limits.max_files)
        child = os.fork()
        if child == 0:
            _program(run, fds)
        os.write(status_w, b"%d\n" % child)  # the worker kills the run through its PID 1
        for fd in fds[:-1]:
            os.close(fd)
        _, wait_status = os.waitpid(child, 0)
        os.write(status_w, json.dumps({"wait_status": wait_status}).encode())
        os._exit(0)
    except BaseException as exc:  # a forked child must never return into the worker's loop
        try:
            os.write(fds[3], f"rlvr sandbox monitor: {type(exc).__name__}: {exc}\n".encode())
        finally:
            os._exit(1)


def _program(run: Interpreter, fds: tuple[int, ...]) -> None:  # pragma: no cover - forked
    """The program's process: confine, then exec the fresh interpreter."""
    try:
        request_r, answer_w, out_w, err_w, _ = fds
        if run.namespaces:
            isolation.mount_proc()
        if run.group is not None:
            run.group.join()
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        # Lift every source above the targets first, so no dup2 overwrites a source still to be moved.
        sources = [fcntl.fcntl(fd, fcntl.F_DUPFD, 16) for fd in (null, out_w, err_w, request_r, answer_w)]
        for target, source in enumerate(sources):
            os.dup2(source, target)
        os.closerange(5, 1 << 16)
        os.chdir("/tmp" if run.namespaces else run.scratch)
        _set_limits(run)
        libc = isolation.libc()
        if run.uid is not None:
            if run.scratch is not None:
                os.chown(run.scratch, run.uid, run.uid)
            os.setgroups([])
            os.setgid(run.uid)
            os.setuid(run.uid)
            resource.setrlimit(resource.RLIMIT_NPROC, (run.limits.max_processes, run.limits.max_processes))
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # after setuid, which clears it
        if not seccomp.install() and platform.machine() in _KEYCTL:
            # No filter to refuse the keyring calls: at least leave the worker's session keyring.
            libc.syscall(_KEYCTL[platform.machine()], _KEYCTL_JOIN_SESSION_KEYRING, None)
        config = "\n".join([str(run.limits.max_frame_bytes), *program_paths()])
        python = os.path.realpath(sys.executable)
        os.execve(python, [python, "-I", "-S", "-B", "-X", "utf8", "-c", _LOADER, config], {})
    except BaseException as exc:
        try:
            os.write(2, f"rlvr sandbox: {type(exc).__name__}: {exc}\n".encode())
        finally:
            os._exit(71)


def _set_limits(run: Interpreter) -> None:
    limits = run.limits
    for limit, value in (
        (resource.RLIMIT_AS, limits.memory_mb << 20),
        (resource.RLIMIT_CPU, limits.cpu),
        (resource.RLIMIT_FSIZE, limits.max_file_mb << 20),
        (resource.RLIMIT_NOFILE, limits.max_open_files),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(limit, (value, value))
