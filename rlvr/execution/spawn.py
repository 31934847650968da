"""Start a sandboxed program process ahead of its sample; each one serves exactly one sample.

:class:`Interpreter` (in the zygote) makes the run's pipes, its scratch folder
(without root) and its control groups, and asks the worker's template
(:mod:`rlvr.execution.template`, a clean interpreter that never runs untrusted
code) to fork the run. There a monitor enters new mount, IPC, network, UTS and
PID namespaces (:func:`rlvr.execution.isolation.enter_run_namespaces`) and
forks the program's process, PID 1 of the new PID namespace. That process:

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
5. runs :mod:`rlvr.execution.runner`, which says "ready" and waits for its program.

Nothing of the verifier's process is in it: the template was started with
``python -I -S -B`` and an empty environment and holds no program, test or
answer. The monitor waits for the program's process and reports how it ended;
when the template dies, both die (``PR_SET_PDEATHSIG``), and when the
program's process ends, the kernel ends everything in its PID namespace.
"""

from __future__ import annotations

import marshal
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

from rlvr.execution import cgroups, isolation, wire

__all__ = ["Interpreter", "Template", "program_paths"]

# Makes this wing importable in a bare ``python -I -S`` without running the
# package's ``__init__``: the start of every interpreter this wing launches.
BOOT_PACKAGES = """
import sys, types
root = sys.argv[1]
for name, path in (("rlvr", root), ("rlvr.execution", root + "/execution")):
    module = types.ModuleType(name)
    module.__path__ = [path]
    sys.modules[name] = module
sys.modules["rlvr"].execution = sys.modules["rlvr.execution"]
"""
_BOOT = (
    BOOT_PACKAGES
    + """from rlvr.execution import template
serve, config = template.serve(int(sys.argv[2]))
del sys, types, root, name, path, module, template
serve(config)
"""
)


def program_paths() -> list[str]:
    """Library folders the program may import from besides the standard library (no ``.pth`` files run)."""
    if not PROGRAM_PATHS:
        paths = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
        PROGRAM_PATHS.extend(sorted(p for p in paths if os.path.isdir(p)))
    return PROGRAM_PATHS


PROGRAM_PATHS: list[str] = []  # set by the zygote from its worker's (a bare interpreter's would differ)


class Template:
    """This process's handle on a template (:mod:`rlvr.execution.template`), started now."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        root = str(Path(__file__).resolve().parent.parent)
        python = os.path.realpath(sys.executable)
        args = [python, "-I", "-S", "-B", "-X", "utf8", "-c", _BOOT, root, str(theirs.fileno())]
        quiet = subprocess.DEVNULL  # a run's stdin and stdout objects start as the template's: not a terminal
        self.process = subprocess.Popen(args, pass_fds=(theirs.fileno(),), env={}, stdin=quiet, stdout=quiet)
        theirs.close()
        self.sock = ours

    def fork(self, run: dict[str, Any], fds: tuple[int, ...]) -> tuple[int, int]:
        """Have the template fork the run's monitor with ``fds``; its pid and a pidfd of it.

        Raises:
            OSError, EOFError, ValueError: the template is gone or could not fork.
        """
        socket.send_fds(self.sock, [marshal.dumps(run)], list(fds))
        data, pidfds, _, _ = socket.recv_fds(self.sock, 64, 1)
        if not data:
            raise EOFError("the template closed its socket")
        pid = int(data)
        if pid <= 0 or not pidfds:
            for fd in pidfds:
                os.close(fd)
            raise OSError("the template could not fork the run")
        return pid, pidfds[0]

    def close(self) -> None:
        """Let the template exit (its runs go with it); kill it if it takes over 5 s."""
        self.sock.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


_template: list[Template] = []  # this process's template, started on first use and again if it died


def _fork(run: dict[str, Any], fds: tuple[int, ...]) -> tuple[int, int]:
    for attempt in (0, 1):
        if _template and _template[0].process.poll() is not None:
            drop_template()
        if not _template:
            _template.append(Template())
        try:
            return _template[0].fork(run, fds)
        except (OSError, EOFError, ValueError) as exc:
            drop_template()
            if attempt:
                raise OSError(f"the template failed: {exc}") from exc
    raise AssertionError("unreachable")


def drop_template() -> None:
    """Close this process's template, if it has one (its runs go with it)."""
    while _template:
        _template.pop().close()


class Interpreter:
    """One sandboxed program process, started now, waiting for its program.

    Args:
        limits: the run's :class:`rlvr.execution.sandbox.Limits`.

    Attributes:
        requests, answers: the judge's ends of the channel (write, read).
        stdout, stderr, status: read ends of the program's output and the monitor's report.
        monitor, monitor_fd: the monitor's pid and a pidfd of it (readable once it has exited).

    Raises:
        OSError: the run could not be started (nothing of it is left).
    """

    def __init__(self, limits: Any) -> None:
        state = isolation.isolation()
        self.limits = limits
        self.namespaces = state["namespaces"]
        self.scratch = None if self.namespaces else tempfile.mkdtemp(prefix="rlvr-sandbox-")
        self.group = None
        self.requests = self.answers = self.stdout = self.stderr = self.status = self.monitor_fd = -1
        self.ready = False
        self.pid = self.monitor = 0
        theirs: list[int] = []
        try:
            bases = cgroups.available() if state["user"] else {}
            if bases:
                self.group = cgroups.acquire(bases, limits.memory_mb << 20, limits.max_processes)
            for name, ours_is_read in (("requests", False), ("answers", True), ("stdout", True), ("stderr", True)):
                read, write = os.pipe()
                setattr(self, name, read if ours_is_read else write)
                theirs.append(write if ours_is_read else read)
            self.status, status_w = os.pipe()
            theirs.append(status_w)
            run = {
                "namespaces": self.namespaces,
                "user": state["user"],
                "scratch": self.scratch,
                "groups": list(self.group.folders) if self.group is not None else [],
                "memory_mb": limits.memory_mb,
                "cpu": limits.cpu,
                "max_file_mb": limits.max_file_mb,
                "max_files": limits.max_files,
                "max_open_files": limits.max_open_files,
                "max_processes": limits.max_processes,
                "config": "\n".join([str(limits.max_frame_bytes), *program_paths()]),
            }
            self.monitor, self.monitor_fd = _fork(run, tuple(theirs))
        except BaseException:
            self.close_fds()
            self.release()
            raise
        finally:
            for fd in theirs:
                os.close(fd)

    def wait_ready(self, timeout: float) -> str:
        """Wait until the runner says it is ready; "" then, else why it is not (a machinery failure)."""
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
            if self.pid:
                os.kill(self.pid, signal.SIGKILL)
            elif self.monitor_fd >= 0:
                signal.pidfd_send_signal(self.monitor_fd, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.group is not None:
            self.group.kill_all()

    def close(self, timeout: float = 10.0) -> None:
        """Wait for the monitor to exit, close every descriptor, remove the groups and scratch folder."""
        if self.monitor_fd >= 0:
            select.select([self.monitor_fd], [], [], timeout)
        self.close_fds()
        self.release()

    def close_fds(self) -> None:
        """Close this process's ends of the run's pipes and its pidfd of the monitor."""
        for name in ("requests", "answers", "stdout", "stderr", "status", "monitor_fd"):
            fd = getattr(self, name)
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
                setattr(self, name, -1)

    def release(self) -> None:
        """Once the run has ended: hand back its groups (emptied) and remove its scratch folder."""
        if self.group is not None:
            cgroups.release(self.group)
            self.group = None
        if self.scratch is not None:  # a tree too deep for shutil.rmtree's recursion still goes
            subprocess.run(["rm", "-rf", "--one-file-system", self.scratch], check=False, timeout=60)
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None
