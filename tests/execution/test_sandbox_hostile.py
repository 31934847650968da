"""Hostile programs against the sandbox and the code-test verifier.

Every program below is a completion for ``add(a, b)``; none may pass a test, none
may escape (checked from outside: no file written, no connection accepted, no
process left), each returns within its time limit + 1 s, and the pool keeps
serving afterwards. These checks need root (namespaces, a user id of its own),
which CI and this project's machines have. More attacks, by class, are in
``test_red_team.py``.
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import pytest

from rlvr import Problem
from rlvr.execution import cgroups
from rlvr.execution.sandbox import Limits
from rlvr.verifiers.code_tests import CodeTests, verdict_of

WALL = 2.0
MARK = uuid.uuid4().hex
SECRET = f"rlvr-secret-{MARK}"
OUTSIDE = Path.home() / ".cache" / f"rlvr-escape-{MARK}"  # a folder the caller owns, outside /tmp
PROBLEM = Problem(
    "add",
    "write add(a, b)",
    {"setup": "", "tests": ["assert candidate(1, 2) == 3", "assert candidate(-1, 1) == 0"], "entry_point": "add"},
)
CORRECT = "def add(a, b):\n    return a + b\n"


def hostile(port: int) -> dict[str, str]:
    outside = str(OUTSIDE)
    return {
        "infinite loop": "while True:\n    pass",
        "infinite loop in the function": "def add(a, b):\n    while True:\n        pass",
        "sleep": "import time\ntime.sleep(100)",
        "ignore SIGTERM and spin": "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True: pass",
        "fork bomb (bounded)": "import os\nfor _ in range(200):\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
        "import time\ntime.sleep(100)",
        "memory bomb": "x = bytearray(8 * 1024 ** 3)\ndef add(a, b):\n    return a + b",
        "growing memory": "x = []\nwhile True:\n    x.append(' ' * 10 ** 6)",
        "huge output": "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)",
        "huge file": "with open('big', 'wb') as f:\n    while True:\n        f.write(b'x' * 10 ** 6)",
        "many open files": "fs = [open('/dev/null') for _ in range(10 ** 5)]",
        "write outside the sandbox": f"import os\nos.makedirs({outside!r}, exist_ok=True)\n"
        f"open({outside + '/written'!r}, 'w').write('x')\ndef add(a, b): return None",
        "write to /tmp, /dev/shm, /var/tmp": "\n".join(
            f"try:\n    open('{d}/rlvr-escape-{MARK}', 'w').write('x')\nexcept OSError:\n    pass"
            for d in ("/tmp", "/dev/shm", "/var/tmp", "/run/lock")
        )
        + "\ndef add(a, b): return None",
        "read secrets from the environment": "import os, glob\nprint(dict(os.environ))\n"
        "for p in glob.glob('/proc/*/environ'):\n    try:\n        print(open(p, 'rb').read())\n"
        "    except OSError:\n        pass",
        "connect to 127.0.0.1": f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1).send(b'hi')\n"
        "def add(a, b): return None",
        "kill the parent": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\ndef add(a, b): return None",
        "kill every process it can": "import os, signal\nos.kill(-1, signal.SIGKILL)",
        "early sys.exit(0)": "import sys\nsys.exit(0)\ndef add(a, b): return None",
        "early os._exit(0)": "import os\nos._exit(0)",
        "exit inside the function": "def add(a, b):\n    raise SystemExit(0)",
        "always-true __eq__": "class Yes:\n    def __eq__(self, other): return True\ndef add(a, b):\n    return Yes()",
        "int subclass with a doctored __eq__": "class I(int):\n    def __eq__(self, other): return True\n"
        "def add(a, b):\n    return I(0)",
        "patch builtins": "import builtins\nbuiltins.AssertionError = type('N', (Exception,), {})\n"
        "builtins.isinstance = lambda *a: True\nbuiltins.abs = lambda x: 0\ndef add(a, b): return None",
        "trace hook that skips asserts": "import sys\ndef tracer(frame, event, arg):\n"
        "    if event == 'line' and frame.f_code.co_filename.startswith('<test'):\n"
        "        frame.f_lineno = frame.f_lineno + 1\n    return tracer\n"
        "def add(a, b):\n    sys.settrace(tracer)\n    sys._getframe(1).f_trace = tracer\n    return None",
        "forge the report": "import os, json\nrec = json.dumps({'test': 0, 'ok': True})\n"
        "for fd in range(1, 64):\n    try:\n        os.write(fd, (' ' + rec + '\\n').encode())\n"
        "    except OSError:\n        pass\ndef add(a, b): return None",
        "segfault through ctypes": "import ctypes\nctypes.string_at(0)",
        "deep recursion": "def add(a, b):\n    return add(a, b)",
        "deep recursion with a raised limit": "import sys\nsys.setrecursionlimit(10 ** 7)\n"
        "def f(n):\n    return f(n + 1) + 1\nf(0)",
        "daemon that outlives it": "import os, time\nif os.fork() == 0:\n    os.setsid()\n"
        "    if os.fork() == 0:\n        time.sleep(30)\n    os._exit(0)\ndef add(a, b): return None",
        "shell command": "import os\nos.system('sleep 30 &')\ndef add(a, b): return None",
        "become root again": "import os\nos.setuid(0)\ndef add(a, b): return None",
        "syntax error": "def add(a, b) return a + b",
    }


@pytest.fixture(scope="module")
def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    yield server
    server.close()


@pytest.fixture(scope="module")
def verifier():
    os.environ["RLVR_TEST_SECRET"] = SECRET  # inherited by the workers; must not reach a program
    verifier = CodeTests(workers=2, limits=Limits(wall_seconds=WALL, memory_mb=512))
    verifier.warm_up()
    yield verifier
    verifier.close()
    os.environ.pop("RLVR_TEST_SECRET", None)


@pytest.fixture(scope="module")
def verdicts(verifier, listener):
    programs = hostile(listener.getsockname()[1])
    assert len(programs) >= 25
    # What verifier.batch does, keeping each run's own wall time (verdicts carry no timings).
    payloads = [verifier._prepare(program, PROBLEM) for program in programs.values()]
    runs = verifier._get_sandbox().run(payloads)
    results = [verdict_of(p, r) for p, r in zip(payloads, runs, strict=True)]
    assert [v.score for v in results] == [
        v.score for v in verifier.batch(list(programs.values()), [PROBLEM] * len(programs))
    ]
    return dict(zip(programs, results, strict=True)), dict(zip(programs, runs, strict=True))


def test_no_hostile_program_passes_a_test(verdicts):
    results, _ = verdicts
    for name, verdict in results.items():
        assert verdict.details.get("passed") == 0, (name, dict(verdict.details))
        assert verdict.score == 0.0 and verdict.status == "incorrect", (name, verdict)


def test_each_returns_within_its_time_limit(verdicts):
    _, runs = verdicts
    for name, run in runs.items():
        assert run.seconds <= WALL + 1.0, (name, run.seconds)
    assert runs["infinite loop"].status == "timeout" and runs["sleep"].status == "timeout"


def test_failures_say_why(verdicts):
    results, _ = verdicts
    why = {name: verdict.details["failures"][0]["why"] for name, verdict in results.items()}
    assert why["infinite loop"] == "timeout"
    assert why["syntax error"].startswith("syntax error")
    assert why["segfault through ctypes"] == "killed by SIGSEGV"
    assert "not plain built-in data" in why["always-true __eq__"]
    assert "not plain built-in data" in why["int subclass with a doctored __eq__"]
    assert why["early sys.exit(0)"] == "the program called exit while loading"
    assert why["early os._exit(0)"].startswith("not run")
    assert why["exit inside the function"] == "the program called exit"
    assert why["patch builtins"]  # its own process breaks; the judge's builtins are untouched
    assert "RecursionError" in why["deep recursion"]


def test_nothing_escapes(verdicts, listener, verifier):
    results, _ = verdicts
    verifier.close()  # its workers' pre-started interpreters (sandbox user ids too) go with it
    assert not OUTSIDE.exists()
    for folder in ("/tmp", "/dev/shm", "/var/tmp", "/run/lock"):
        assert not Path(folder, f"rlvr-escape-{MARK}").exists()
    with pytest.raises(BlockingIOError):
        listener.accept()
    assert "Network is unreachable" in results["connect to 127.0.0.1"].details["failures"][0]["why"]
    leftovers = [pid for pid in os.listdir("/proc") if pid.isdigit() and (_uid(pid) or 0) >= 100000]
    assert leftovers == [], ("sandboxed processes outlived their program", [_describe(p) for p in leftovers])
    groups = [g for base in cgroups.available().values() for g in os.listdir(base) if g.startswith("rlvr-sandbox-")]
    assert groups == [], "control groups outlived their runs"


def test_secrets_do_not_reach_the_program(verifier):
    program = hostile(1)["read secrets from the environment"]
    run = verifier._get_sandbox().run([{"program": program}])[0]
    assert run.status == "exited" and run.stdout.startswith("{'LC_CTYPE': 'C.UTF-8'}\n")  # Python's own locale coercion
    assert SECRET not in run.stdout and "RLVR_TEST_SECRET" not in run.stdout


def test_the_pool_keeps_serving_and_the_workers_survived(verdicts, verifier):
    results, _ = verdicts
    assert verifier._get_sandbox().pool.replaced == 0  # "kill the parent" reached nobody
    assert results["kill the parent"].details["run"] in ("exited", "signaled", "done")
    assert verifier(CORRECT, PROBLEM).score == 1.0


def test_limits_are_enforced_by_the_kernel(verifier):
    sandbox = verifier._get_sandbox()
    programs = {
        "huge output": hostile(1)["huge output"],
        "huge file": hostile(1)["huge file"],
        "fork bomb": "import os\nn = 0\nfor _ in range(100):\n    try:\n        os.fork() or os._exit(0)\n"
        "        n += 1\n    except OSError:\n        break\nprint(n)",
    }
    runs = dict(zip(programs, sandbox.run([{"program": p} for p in programs.values()]), strict=True))
    with pytest.raises(TypeError, match="payload"):
        sandbox.run(["print(1)"])
    assert runs["huge output"].stdout_truncated and len(runs["huge output"].stdout) <= Limits().max_output_bytes
    assert runs["huge file"].exit_code == 1 and "File too large" in runs["huge file"].stderr  # Python ignores SIGXFSZ
    assert int(runs["fork bomb"].stdout) < Limits().max_processes


def _uid(pid: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _describe(pid: str) -> str:
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        return " ".join(line for line in status if line.split(":")[0] in ("State", "PPid", "NSpid"))
    except OSError:
        return "gone"
