"""Per-worker isolation for the code sandbox: network, mount and PID namespaces.

:func:`isolate_worker` runs once in each sandbox worker (the pool's ``warmup``);
:mod:`rlvr.execution.sandbox` forks programs from that worker, which inherit what it set up.
Everything here needs root; without it every flag stays False and the sandbox
falls back as its docs describe.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

__all__ = ["isolate_worker", "isolation"]

_CLONE_NEWNS, _CLONE_NEWNET, CLONE_NEWPID = 0x00020000, 0x40000000, 0x20000000
_MS_BIND, _MS_REC, _MS_PRIVATE = 1 << 12, 1 << 14, 1 << 18
_WRITABLE_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")  # world-writable on a Debian system


worker_isolation: dict[str, bool] = {}  # what isolate_worker achieved in this process (per worker, not shared)


def libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def isolate_worker() -> dict[str, bool]:
    """Move this (worker) process into its own network and mount namespaces.

    Run once per worker, before it takes programs (the pool's ``warmup``): the
    namespaces are then inherited by every program it forks, so their cost (a few
    milliseconds) is paid once, not per program. Returns what holds; without root
    everything is False and programs get the fallback described in the module docs.
    """
    state = {"network": False, "filesystem": False, "user": os.geteuid() == 0, "pid": False}
    if os.geteuid() == 0:
        lib = libc()
        state["network"] = lib.unshare(_CLONE_NEWNET) == 0
        if lib.unshare(_CLONE_NEWNS) == 0 and lib.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None) == 0:
            mounted = [
                lib.mount(b"tmpfs", d.encode(), b"tmpfs", 0, b"mode=0755,size=256m") == 0
                for d in _WRITABLE_DIRS
                if os.path.isdir(d)
            ]
            state["filesystem"] = all(mounted) and _expose_interpreter(lib)
        probe = os.fork()  # can this process give its programs a PID namespace of their own?
        if probe == 0:
            os._exit(0 if lib.unshare(CLONE_NEWPID) == 0 else 1)
        state["pid"] = os.waitpid(probe, 0)[1] == 0
    worker_isolation.clear()
    worker_isolation.update(state)
    return dict(state)


def _expose_interpreter(libc: Any) -> bool:
    """Keep Python's own library readable by the sandbox user.

    The interpreter often lives under a folder only root may enter (``/root/.pyenv``);
    a program under another user id could then import nothing new. In this
    worker's mount namespace such a folder is covered with an empty ``tmpfs``
    (which also hides the rest of it, secrets included) and only the library
    paths are bind-mounted back.
    """
    import stat
    import sys

    needed = {os.path.realpath(p) for p in [*sys.path, sys.prefix, sys.base_prefix, sys.exec_prefix] if p}
    needed = {p for p in needed if os.path.isdir(p)}
    cover: dict[str, list[str]] = {}
    for path in sorted(needed):
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
            if libc.mount(b"tmpfs", blocked.encode(), b"tmpfs", 0, b"mode=0755,size=1m") != 0:
                return False
            for path, handle in handles.items():
                os.makedirs(path, exist_ok=True)
                source = f"/proc/self/fd/{handle}".encode()
                if libc.mount(source, path.encode(), None, _MS_BIND | _MS_REC, None) != 0:
                    return False
        finally:
            for handle in handles.values():
                os.close(handle)
    return True


def isolation() -> dict[str, bool]:
    """What :func:`run_python` in this process guarantees (see :func:`isolate_worker`)."""
    return dict(worker_isolation) or {"network": False, "filesystem": False, "user": False, "pid": False}
