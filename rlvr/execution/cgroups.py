"""Per-run control groups: memory and process count bounded for the whole run.

A run's processes together (the program and everything it starts) get one
memory limit and one process limit, which per-process rlimits cannot give.
This uses the cgroup v1 ``memory`` and ``pids`` hierarchies when they are
mounted writable under ``/sys/fs/cgroup`` (a run's groups are made below this
process's own group in each). A host without them (or with cgroup v2 only)
gets no group: the run is then bounded by rlimits alone, per process
(address space, CPU seconds, file size, open files, and processes per user id,
which is the run's own).
"""

from __future__ import annotations

import os
import time

__all__ = ["RunGroup", "acquire", "available", "release", "sweep"]

_ROOT = "/sys/fs/cgroup"
_free: list[RunGroup] = []  # this worker's emptied groups: making and removing a memory group costs more than a run
_made = [0]


def _own_path(controller: str) -> str | None:
    """This process's group folder in the v1 hierarchy of ``controller``, if writable."""
    try:
        with open("/proc/self/cgroup") as lines:
            for line in lines:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                if controller in controllers.split(","):
                    folder = os.path.join(_ROOT, controller) + path.rstrip("/")
                    return folder if os.access(folder, os.W_OK) else None
    except OSError:
        return None
    return None


def available() -> dict[str, str]:
    """The writable v1 group folders of this process: ``{"memory": path, "pids": path}`` (either may be absent)."""
    found = {c: _own_path(c) for c in ("memory", "pids")}
    return {c: p for c, p in found.items() if p}


class RunGroup:
    """One run's groups; make them, put the run's first process in, reuse or remove them afterwards.

    Args:
        name: a folder name unique to this worker's groups.
        bases: what :func:`available` returned.
    """

    def __init__(self, name: str, bases: dict[str, str]) -> None:
        self.folders: list[str] = []
        self.limits: tuple[int, int] | None = None
        for base in bases.values():
            folder = os.path.join(base, name)
            os.mkdir(folder)
            self.folders.append(folder)

    def configure(self, memory_bytes: int, max_processes: int) -> None:
        """Bound memory (and memory + swap, where the kernel counts it) and processes of the whole run."""
        if self.limits == (memory_bytes, max_processes):
            return
        settings = {
            "memory.limit_in_bytes": memory_bytes,
            "memory.memsw.limit_in_bytes": memory_bytes,
            "pids.max": max_processes,
        }
        for folder in self.folders:
            for filename, value in settings.items():
                path = os.path.join(folder, filename)
                if os.path.exists(path):
                    with open(path, "w") as handle:
                        handle.write(str(value))
        self.limits = (memory_bytes, max_processes)

    def is_empty(self) -> bool:
        """Whether no process is left in any of the groups."""
        for folder in self.folders:
            try:
                with open(os.path.join(folder, "cgroup.procs")) as handle:
                    if handle.read().strip():
                        return False
            except OSError:
                return False
        return True

    def join(self) -> None:
        """Move the calling process into every group (its children follow)."""
        for folder in self.folders:
            with open(os.path.join(folder, "cgroup.procs"), "w") as handle:
                handle.write("0")

    def kill_all(self) -> None:
        """SIGKILL whatever is still in the groups (a backstop; the PID namespace ends them first)."""
        for folder in self.folders:
            try:
                with open(os.path.join(folder, "cgroup.procs")) as handle:
                    pids = [int(p) for p in handle.read().split()]
            except OSError:
                continue
            for pid in pids:
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass

    def remove(self, seconds: float = 1.0) -> bool:
        """Remove the groups, waiting up to ``seconds`` for their last processes to go; True if all went."""
        deadline = time.monotonic() + seconds
        pending = list(self.folders)
        while pending:
            try:
                os.rmdir(pending[-1])
                pending.pop()
            except FileNotFoundError:
                pending.pop()
            except OSError:
                if time.monotonic() > deadline:
                    break
                self.kill_all()
                time.sleep(0.002)
        self.folders = pending
        return not pending


def sweep() -> int:
    """Remove run groups whose worker process is gone (left by a worker that was killed); returns how many."""
    removed = 0
    for base in available().values():
        for name in os.listdir(base):
            parts = name.split("-")
            if len(parts) != 4 or parts[:2] != ["rlvr", "sandbox"] or not parts[2].isdigit():
                continue
            if os.path.exists(f"/proc/{parts[2]}"):
                continue  # its worker still runs (or the pid was reused: removed on a later sweep)
            group = RunGroup.__new__(RunGroup)
            group.folders = [os.path.join(base, name)]
            removed += group.remove(seconds=0.1)
    return removed


def acquire(bases: dict[str, str], memory_bytes: int, max_processes: int) -> RunGroup:
    """An empty group for a run (one this worker emptied before, or a new one), configured.

    Raises:
        OSError: a group could not be made or configured.
    """
    if _free:
        group = _free.pop()
    else:
        _made[0] += 1
        group = RunGroup(f"rlvr-sandbox-{os.getpid()}-{_made[0]}", bases)
    group.configure(memory_bytes, max_processes)
    return group


def release(group: RunGroup) -> None:
    """Hand back a run's group once its processes are gone (removed if some stay)."""
    deadline = time.monotonic() + 1.0
    while not group.is_empty() and time.monotonic() < deadline:
        group.kill_all()
        time.sleep(0.002)
    if group.is_empty():
        _free.append(group)
    else:
        group.remove()


def drop_free() -> None:
    """Remove every group this worker kept for reuse (when it exits)."""
    while _free:
        _free.pop().remove()
