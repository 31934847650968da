"""A lean process per worker that starts the sandboxed runs and forks the judges.

Forking costs in proportion to the forking process's memory, and a worker has
imported the library (tens of megabytes); each sample needs three forks (the
monitor, the program's process, the judge). So each worker starts, once, a
*zygote*: a fresh interpreter (``python -I -S``) that loads only this wing's
standard-library-only modules (without running the package's ``__init__``)
and does the forking for it. The zygote keeps two runs started ahead of
their samples (:class:`rlvr.execution.spawn.Interpreter`, forked by the
worker's template, :mod:`rlvr.execution.template`); per request it takes the
oldest, forks the judge (:func:`rlvr.execution.harness.judge`), hands the
worker the read ends of the run's pipes and process descriptors (``pidfd``)
of the program's process and the judge, over a unix socket pair
(``SCM_RIGHTS``), and then starts the next run. It reaps the judges, and hands back a run's control groups
when the run's monitor has exited (its pidfd turns readable).

Both ends are trusted (root, our code); messages between them are pickled. The
zygote dies with its worker (``PR_SET_PDEATHSIG``) and, when its socket
closes, kills its spare and its runs and removes its groups.
"""

from __future__ import annotations

import gc
import json
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rlvr.execution import cgroups, harness, isolation, spawn, template, wire

__all__ = ["Zygote", "serve"]

_START_TIMEOUT = 20.0  # seconds a pre-started interpreter may take to say it is ready
_MAX_MESSAGE = 64 << 20
_SPARES = 2  # runs kept started ahead of their samples
_BOOT = (
    spawn.BOOT_PACKAGES
    + """from rlvr.execution import zygote
zygote.serve(int(sys.argv[2]), sys.argv[3], sys.argv[4])
"""
)


class Zygote:
    """The worker's handle on its zygote (started here, in the worker's mount namespace)."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        root = str(Path(__file__).resolve().parent.parent)
        flags = json.dumps(isolation.isolation())
        paths = json.dumps(spawn.program_paths())
        python = os.path.realpath(sys.executable)
        args = [python, "-I", "-S", "-B", "-c", _BOOT, root, str(theirs.fileno()), flags, paths]
        self.process = subprocess.Popen(args, pass_fds=(theirs.fileno(),), env={}, close_fds=True)
        theirs.close()
        self.sock = ours

    def start(self, payload: dict[str, Any], limits: Any) -> tuple[Any, list[int]]:
        """Ask for a run of ``payload``; returns the zygote's reply and the descriptors that came with it.

        Raises:
            OSError, EOFError: the zygote is gone.
        """
        self.sock.sendall(pickle.dumps(("start", payload, limits)))
        data, fds, _, _ = socket.recv_fds(self.sock, _MAX_MESSAGE, 8)
        if not data:
            raise EOFError("the zygote closed its socket")
        return pickle.loads(data), fds

    def prestart(self, limits: Any) -> None:
        """Have an interpreter for ``limits`` started now, ahead of the first sample."""
        self.sock.sendall(pickle.dumps(("prestart", None, limits)))

    def close(self) -> None:
        """Let the zygote clean up (spare, runs, groups) and exit; kill it if it takes over 5 s."""
        self.sock.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# Modules tests commonly import: loaded once here, so a judge forked from the zygote has them.
_TEST_MODULES = (
    "math",
    "random",
    "re",
    "string",
    "itertools",
    "collections",
    "functools",
    "heapq",
    "copy",
    "fractions",
)


def serve(sock_fd: int, flags: str, paths: str) -> None:
    """The zygote's loop (runs in the zygote process; returns when the worker goes)."""
    isolation.libc().prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: go with the worker
    isolation.worker_isolation.update(json.loads(flags))
    spawn.PROGRAM_PATHS[:] = json.loads(paths)
    for name in _TEST_MODULES:
        __import__(name)
    gc.collect()
    gc.freeze()  # forked judges then never walk (and so never copy) the zygote's start-up objects
    sock = socket.socket(fileno=sock_fd)
    spare: list[spawn.Interpreter] = []
    runs: dict[int, spawn.Interpreter] = {}  # monitor pidfd -> run, handed back when the monitor has exited
    try:
        while True:
            ready, _, _ = select.select([sock, *runs], [], [])
            _reap_judges()
            for fd in ready:
                if fd in runs:
                    run = runs.pop(fd)
                    run.close_fds()
                    run.release()
            if sock not in ready:
                continue
            data = sock.recv(_MAX_MESSAGE)
            if not data:
                return
            kind, payload, limits = pickle.loads(data)
            if kind == "prestart":  # the worker's warm-up: a run ready for the first sample
                _prestart(limits, spare)
                continue
            reply, fds, run = _start(payload, limits, spare)
            socket.send_fds(sock, [pickle.dumps(reply)], fds)
            for fd in fds:
                os.close(fd)
            if run is not None:
                runs[run.monitor_fd] = run
            _prestart(limits, spare)  # after the reply: the sample's run is under way meanwhile
    finally:
        for run in [*spare, *runs.values()]:
            run.kill()
        for run in [*spare, *runs.values()]:
            run.close(timeout=2.0)
        spawn.drop_template()
        _reap_judges()
        cgroups.drop_free()


def _prestart(limits: Any, spare: list[spawn.Interpreter]) -> None:
    """Keep ``_SPARES`` runs started ahead (a start's latency varies: new namespaces, a new session)."""
    while len(spare) < _SPARES:
        try:
            spare.append(spawn.Interpreter(limits))
        except OSError:
            return  # the next sample starts one itself, and reports if that fails


def _reap_judges() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if not pid:
            return


def _take(limits: Any, spare: list[spawn.Interpreter]) -> tuple[spawn.Interpreter | None, str]:
    """A ready interpreter for ``limits`` (the spare if it fits), or None and why (two tries)."""
    why = ""
    for _ in range(2):
        interpreter = spare.pop(0) if spare else None
        if interpreter is not None and interpreter.limits != limits:
            interpreter.kill()
            interpreter.close()
            interpreter = None
        try:
            interpreter = interpreter or spawn.Interpreter(limits)
        except OSError as exc:
            why = f"could not start a sandboxed interpreter: {exc}"
            continue
        why = interpreter.wait_ready(_START_TIMEOUT)
        if not why:
            return interpreter, ""
        interpreter.kill()
        interpreter.close()
    return None, why


def _start(payload: dict[str, Any], limits: Any, spare: list[spawn.Interpreter]) -> tuple[Any, list[int], Any]:
    """Start one run: the reply for the worker, the descriptors to pass, and the run to track."""
    run, why = _take(limits, spare)
    if run is None:
        return ("error", why), [], None
    judge_pid, results = 0, -1
    try:
        if "tests" in payload or "io" in payload:
            judge_pid, results = _fork_judge(payload, run)
        else:
            wire.send_trusted(run.requests, {"mode": "script", "program": payload["program"]})
        pidfds = [os.pidfd_open(p) for p in (run.pid, judge_pid) if p]
    except OSError as exc:
        run.kill()
        run.close()
        return ("error", f"could not start the judge: {exc}"), [], None
    os.close(run.requests)
    os.close(run.answers)
    fds = [run.stdout, run.stderr, run.status, *([results] if results >= 0 else []), *pidfds]
    run.requests = run.answers = run.stdout = run.stderr = run.status = -1  # handed on: closed once sent
    reply = ("ok", {"judged": results >= 0, "cgroups": run.group is not None, **isolation.isolation()})
    return reply, fds, run


def _fork_judge(payload: dict[str, Any], run: spawn.Interpreter) -> tuple[int, int]:
    """Fork the judge; returns its pid and the read end of its results pipe."""
    results_r, results_w = os.pipe()
    deadline = time.monotonic() + run.limits.wall_seconds
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the forked judge
        code = 0
        try:
            isolation.libc().prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: no judge outlives its zygote
            template.keep_only({run.requests, run.answers, results_w})
            fds = (run.requests, run.answers, results_w)
            harness.judge(payload, fds, deadline, run.limits.max_frame_bytes)
        except BaseException as exc:
            code = 70
            try:
                os.write(results_w, (json.dumps({"event": "judge failed", "why": repr(exc)[:300]}) + "\n").encode())
            except BaseException:
                pass
        os._exit(code)
    os.close(results_w)
    return pid, results_r
