"""Namespaces and mounts for the code sandbox: once per worker, then fresh per run.

:func:`prepare_worker` runs once in each sandbox worker (the pool's ``warmup``):
the worker enters a mount namespace of its own in which folders only root may
enter (``/root`` when the interpreter lives in ``/root/.pyenv``) are covered
with an empty ``tmpfs`` and only the interpreter's library paths are
bind-mounted back. Every run then starts from that view:
:func:`enter_run_namespaces` (in the run's monitor process) unshares new mount,
IPC, network, UTS and PID namespaces and mounts fresh ``tmpfs`` over ``/tmp``
(the run's scratch folder, owned by the run's user id), ``/var/tmp``,
``/dev/shm`` and ``/run/lock``; :func:`mount_proc` (in the program's process,
PID 1 of the new PID namespace) mounts a ``/proc`` that shows only the run's
own processes. When the run's last process ends, the kernel drops all of it:
files, System V and POSIX IPC objects, sockets, the network stack.

Everything here needs root; without it :func:`isolation` reports False flags
and the sandbox falls back as its docs describe.
"""

from __future__ import annotations

import ctypes
import os
import stat
import sys
from typing import Any

__all__ = ["enter_run_namespaces", "isolation", "libc", "mount_proc", "prepare_worker"]

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 2, 4, 8
_MS_BIND, _MS_REC, _MS_PRIVATE = 1 << 12, 1 << 14, 1 << 18
_RUN_NAMESPACES = CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWPID
_SHARED_DIRS = ("/var/tmp", "/dev/shm", "/run/lock")  # world-writable on a Debian system, besides /tmp

worker_isolation: dict[str, bool] = {}  # what prepare_worker found in this process


def libc() -> Any:
    """The C library, with errno kept."""
    return ctypes.CDLL(None, use_errno=True)


def _errno_text(what: str) -> str:
    return f"{what} failed: {os.strerror(ctypes.get_errno())}"


def prepare_worker() -> dict[str, bool]:
    """Enter this worker's own mount namespace and probe what each run can get.

    Returns the flags :func:`isolation` reports: ``namespaces`` (each run gets
    fresh mount, IPC, network, UTS and PID namespaces), ``user`` (each run gets a
    user id of its own). All False without root.
    """
    state = {"namespaces": False, "user": os.geteuid() == 0}
    if os.geteuid() == 0:
        lib = libc()
        if lib.unshare(CLONE_NEWNS) == 0 and lib.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None) == 0:
            state["namespaces"] = _expose_interpreter(lib) and _probe_run_namespaces(lib)
    worker_isolation.clear()
    worker_isolation.update(state)
    return dict(state)


def isolation() -> dict[str, bool]:
    """What runs started from this process get (see :func:`prepare_worker`)."""
    return dict(worker_isolation) or {"namespaces": False, "user": False}


def _probe_run_namespaces(lib: Any) -> bool:
    probe = os.fork()
    if probe == 0:  # pragma: no cover - forked
        os._exit(0 if lib.unshare(_RUN_NAMESPACES) == 0 else 1)
    return os.waitpid(probe, 0)[1] == 0


def interpreter_paths() -> list[str]:
    """The folders a fresh interpreter of this Python needs (its prefix and library paths)."""
    paths = [*sys.path, sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))]
    needed = {os.path.realpath(p) for p in paths if p}
    return sorted(p for p in needed if os.path.isdir(p))


def _expose_interpreter(lib: Any) -> bool:
    """Cover folders only root may enter with an empty tmpfs; bind the interpreter's paths back.

    The interpreter often lives under such a folder (``/root/.pyenv``); a program
    under another user id could otherwise not even start it. Covering also hides
    the rest of the folder (the caller's secrets) from the worker's runs.
    """
    needed = interpreter_paths()
    cover: dict[str, list[str]] = {}
    for path in needed:
        current = "/"
        for part in path.strip("/").split("/"):
            current = os.path.join(current, part)
            if not os.stat(current).st_mode & stat.S_IXOTH:
                cover.setdefault(current, []).append(path)
                break
    for blocked, paths in cover.items():
        keep = [p for p in paths if not any(p != q and p.startswith(q + "/") for q in paths)]
        handles = {p: os.open(p, os.O_PATH) for p in keep}
        try:
            if lib.mount(b"tmpfs", blocked.encode(), b"tmpfs", 0, b"mode=0755,size=1m") != 0:
                return False
            for path, handle in handles.items():
                os.makedirs(path, exist_ok=True)
                source = f"/proc/self/fd/{handle}".encode()
                if lib.mount(source, path.encode(), None, _MS_BIND | _MS_REC, None) != 0:
                    return False
        finally:
            for handle in handles.values():
                os.close(handle)
    return True


def enter_run_namespaces(uid: int, scratch_mb: int, max_files: int) -> None:
    """In a run's monitor: new namespaces and fresh tmpfs mounts; the next child is PID 1.

    ``/tmp`` becomes the run's scratch folder (``scratch_mb`` megabytes and
    ``max_files`` inodes at most, owned by ``uid``); ``/dev/shm`` likewise
    (smaller); ``/var/tmp`` and ``/run/lock`` become empty root-owned folders.

    Raises:
        OSError: a namespace or mount could not be made (the run must not start).
    """
    lib = libc()
    if lib.unshare(_RUN_NAMESPACES) != 0:
        raise OSError(_errno_text("unshare"))
    lib.sethostname(b"sandbox", 7)
    flags = _MS_NOSUID | _MS_NODEV
    mounts = [
        ("/tmp", f"mode=0700,uid={uid},gid={uid},size={scratch_mb}m,nr_inodes={max_files}"),
        ("/dev/shm", f"mode=0700,uid={uid},gid={uid},size={max(1, scratch_mb // 4)}m,nr_inodes=256"),
        *((d, "mode=0755,size=1m,nr_inodes=16") for d in _SHARED_DIRS if d != "/dev/shm"),
    ]
    for folder, options in mounts:
        if os.path.isdir(folder) and lib.mount(b"tmpfs", folder.encode(), b"tmpfs", flags, options.encode()) != 0:
            raise OSError(_errno_text(f"mounting a tmpfs on {folder}"))


def mount_proc() -> None:
    """In the run's PID 1: a ``/proc`` of the new PID namespace (only the run's processes).

    Raises:
        OSError: the mount failed.
    """
    flags = _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
    if libc().mount(b"proc", b"/proc", b"proc", flags, None) != 0:
        raise OSError(_errno_text("mounting /proc"))
