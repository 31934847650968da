"""The template: a clean interpreter, one per worker, that forks each run's program process.

Starting a fresh interpreter for every sample costs more CPU than judging most
samples (about 20 ms here, most of it Python's own start-up and the page
faults of a new image). So each worker's zygote starts, once, a *template*: a
fresh ``python -I -S -B -X utf8`` with an empty environment that loads only
this module, :mod:`rlvr.execution.isolation`, :mod:`rlvr.execution.seccomp`
and the runner (:mod:`rlvr.execution.wire` and :mod:`rlvr.execution.runner`),
then freezes its objects out of the garbage collector's sight and waits.

The template never runs untrusted code and never sees a program, a test, an
expected value or an answer: the zygote sends it only a run's limits, its
scratch folder and control groups, and the run's pipes (``SCM_RIGHTS``). Per
run it forks a monitor, which does what the monitor of a fresh interpreter did
(:func:`_monitor`): new mount, IPC, network, UTS and PID namespaces, fresh
``tmpfs`` mounts, then it forks the program's process, PID 1 of the new PID
namespace. That process confines itself exactly as before (:func:`_program`:
own ``/proc``, control groups, session, descriptors, rlimits, a user id drawn
here at random for this run, ``no_new_privs``, seccomp) and then, instead of
executing a new interpreter, returns into the template's top level, which
calls the runner's ``serve``.

What the runs of one worker share, because they are copies of one template:
the string hash seed, the address layout, and the template's own memory
(the modules above, the limits of earlier runs of the worker). None of it is
secret or reachable across runs: each run still has its own process that
nothing else ran in, its own user id (drawn in its monitor, so no run learns
another's), its own namespaces, and cannot signal, trace or read any other
process. ``random`` is not loaded in the template, so each run seeds its own.
"""

from __future__ import annotations

import fcntl
import gc
import marshal
import os
import platform
import resource
import select
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlvr.execution import isolation, seccomp

__all__ = ["runner_source", "serve"]

_PR_SET_PDEATHSIG = 1
_KEYCTL, _KEYCTL_JOIN_SESSION_KEYRING = {"x86_64": 250, "aarch64": 219}, 1
_HERE = Path(__file__).resolve().parent
_MAX_REQUEST = 1 << 16


def runner_source() -> str:
    """The program's side: the wire format, then the runner."""
    return (_HERE / "wire.py").read_text() + "\n\n" + (_HERE / "runner.py").read_text()


def serve(sock_fd: int) -> tuple[Callable[[str], Any], str]:
    """The template's loop: one monitor forked per request on ``sock_fd``.

    Returns only in a run's program process, confined and ready: the runner's
    ``serve`` and its argument, for the top level to call (so that the program
    ends as a ``-c`` program would). The template itself exits when its zygote goes.
    """
    isolation.libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # go with the zygote
    runner: dict[str, Any] = {"__name__": "rlvr_runner"}
    exec(compile(runner_source(), "<rlvr runner>", "exec", dont_inherit=True, optimize=2), runner)
    sock = socket.socket(fileno=sock_fd)
    gc.collect()
    gc.freeze()  # forked runs then never walk (and so never copy) the template's objects
    children, parent = 0, os.getpid()
    while True:
        ready, _, _ = select.select([sock], [], [], 0.5 if children else None)
        children -= _reap()
        if not ready:
            continue
        data, fds, _, _ = socket.recv_fds(sock, _MAX_REQUEST, 8)
        if not data:
            os._exit(0)  # the zygote is gone; monitors and programs follow (PR_SET_PDEATHSIG)
        run = marshal.loads(data)
        try:
            pid = os.fork()
        except OSError:
            pid = -1
        if pid == 0:  # pragma: no cover - runs in the forked monitor, or returns in the program's process
            sock.detach()  # its descriptor is closed below; the object must not close a reused number
            _monitor(run, fds, parent)
            return runner["serve"], run["config"]
        for fd in fds:
            os.close(fd)
        reply = [os.pidfd_open(pid)] if pid > 0 else []
        children += pid > 0
        socket.send_fds(sock, [b"%d" % pid], reply)
        for fd in reply:
            os.close(fd)


def _reap() -> int:
    reaped = 0
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if not pid:
            return reaped
        reaped += 1


def keep_only(keep: set[int]) -> None:
    """Close every descriptor of this process but ``keep``."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _monitor(run: dict[str, Any], fds: list[int], parent: int) -> None:  # pragma: no cover - forked
    """The program's parent: new namespaces, then fork the program, wait, report how it ended.

    Returns only in the program's process; the monitor itself always exits here.
    """
    status_w = fds[-1]
    try:
        isolation.libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            raise OSError("the template died before the run started")
        keep_only(set(fds))
        if run["user"]:  # drawn here: neither the template nor any other run ever holds it
            run["uid"] = 0x10000000 + int.from_bytes(os.urandom(8), "little") % 0x60000000
        if run["namespaces"]:
            isolation.enter_run_namespaces(run.get("uid", 0), run["max_file_mb"] * 4, run["max_files"])
        child = os.fork()
        if child == 0:
            _program(run, fds)
            return
        os.write(status_w, b"%d\n" % child)  # the worker kills the run through its PID 1
        for fd in fds[:-1]:
            os.close(fd)
        _, wait_status = os.waitpid(child, 0)
        os.write(status_w, b'{"wait_status": %d}' % wait_status)
        os._exit(0)
    except BaseException as exc:  # a forked child must never return into the template's loop
        try:
            os.write(fds[3], f"rlvr sandbox monitor: {type(exc).__name__}: {exc}\n".encode())
        finally:
            os._exit(1)


def _program(run: dict[str, Any], fds: list[int]) -> None:  # pragma: no cover - forked
    """The program's process: confine, then return to start the runner (exit on any failure)."""
    try:
        request_r, answer_w, out_w, err_w, _ = fds
        if run["namespaces"]:
            isolation.mount_proc()
        for folder in run["groups"]:
            with open(os.path.join(folder, "cgroup.procs"), "w") as handle:
                handle.write("0")
        nice = _autogroup_nice()
        os.setsid()
        if nice:  # a new session is a new scheduling group: keep the worker's weight, neither more nor less
            _set_autogroup_nice(nice)
        null = os.open(os.devnull, os.O_RDONLY)
        # Lift every source above the targets first, so no dup2 overwrites a source still to be moved.
        sources = [fcntl.fcntl(fd, fcntl.F_DUPFD, 16) for fd in (null, out_w, err_w, request_r, answer_w)]
        for target, source in enumerate(sources):
            os.dup2(source, target)
        os.closerange(5, 1 << 16)
        os.chdir("/tmp" if run["namespaces"] else run["scratch"])
        _set_limits(run)
        libc = isolation.libc()
        uid = run.get("uid")
        if uid is not None:
            if run["scratch"] is not None:
                os.chown(run["scratch"], uid, uid)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            resource.setrlimit(resource.RLIMIT_NPROC, (run["max_processes"], run["max_processes"]))
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # after setuid, which clears it
        if not seccomp.install() and platform.machine() in _KEYCTL:
            # No filter to refuse the keyring calls: at least leave the worker's session keyring.
            libc.syscall(_KEYCTL[platform.machine()], _KEYCTL_JOIN_SESSION_KEYRING, None)
        sys.argv[:] = ["-c"]
    except BaseException as exc:
        try:
            os.write(2, f"rlvr sandbox: {type(exc).__name__}: {exc}\n".encode())
        finally:
            os._exit(71)


def _autogroup_nice() -> int:
    """The nice value of this process's autogroup (0 where the kernel has none)."""
    try:
        with open("/proc/self/autogroup") as handle:
            return int(handle.read().rsplit(None, 1)[-1])
    except (OSError, ValueError, IndexError):
        return 0


def _set_autogroup_nice(nice: int) -> None:
    try:
        with open("/proc/self/autogroup", "w") as handle:
            handle.write(str(nice))
    except OSError:
        pass  # without the privilege to raise it, the run keeps the default weight


def _set_limits(run: dict[str, Any]) -> None:
    """Set the run's rlimits.

    An address-space limit below what this process already maps cannot hold, so
    such a run does not start (as a fresh interpreter could not have started under it).
    """
    with open("/proc/self/statm") as handle:
        mapped = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    if run["memory_mb"] << 20 < mapped:
        raise OSError(f"memory_mb={run['memory_mb']} is below the interpreter's own {mapped >> 20} MB")
    for limit, value in (
        (resource.RLIMIT_AS, run["memory_mb"] << 20),
        (resource.RLIMIT_CPU, run["cpu"]),
        (resource.RLIMIT_FSIZE, run["max_file_mb"] << 20),
        (resource.RLIMIT_NOFILE, run["max_open_files"]),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(limit, (value, value))
