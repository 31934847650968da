"""Red-team programs by class: forge the verdict, read what they must not, reach outside, escape the zero.

Every program (from :mod:`rlvr.execution.redteam`) is a completion for
``add(a, b)`` that returns a wrong value unless its attack works. Each must be
INCORRECT with no test passed (never CORRECT, never ERROR), within its wall
limit + 1 s, and leave nothing outside the sandbox: no canary file, no
connection on the listeners, no System V or POSIX IPC object, no key. These
checks need root (namespaces, user ids of its own), which CI and this
project's machines have.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from pathlib import Path

import pytest

from rlvr import Problem, Status
from rlvr.execution import cgroups
from rlvr.execution.redteam import HOSTILE_COMPLETIONS, hostile_programs
from rlvr.execution.sandbox import Limits
from rlvr.verifiers.code_tests import CodeTests, verdict_of

WALL = 2.0
MARK = uuid.uuid4().hex[:12]
SECRET = f"rlvr-secret-{MARK}"
OUTSIDE = Path.home() / ".cache" / f"rlvr-escape-{MARK}"
UNIX_PATH = f"/run/rlvr-{MARK}.sock"
ABSTRACT = f"rlvr-abstract-{MARK}"
TESTS = [
    "assert candidate(1, 2) == 3",
    "assert candidate(-1, 1) == 0",
    "assert abs(candidate(0.5, 0.25) - 0.75) < 1e-9",
    "assert len(str(candidate(10, 5))) == 2",
    "assert isinstance(candidate(2, 2), int)",
]
# The setup holds the secret too: it lives in the judge's process, never in the program's.
PROBLEM = Problem("add", "write add(a, b)", {"setup": f"SECRET = {SECRET!r}", "tests": TESTS, "entry_point": "add"})
RIGHT = "def add(a, b):\n    return a + b\n"
WRITERS = (
    "leave files for the next sample",
    "leave a key in the kernel keyrings",
    "leave System V shared memory for the next sample",
)
READERS = (
    "read files a previous sample left",
    "find a key a previous sample left",
    "find System V shared memory a previous sample left",
)


@pytest.fixture(scope="module")
def listeners():
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(UNIX_PATH)
    os.chmod(UNIX_PATH, 0o777)
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind("\0" + ABSTRACT)
    for server in (tcp, unix, abstract):
        server.listen(8)
        server.setblocking(False)
    yield {"tcp": tcp, "unix": unix, "abstract": abstract}
    for server in (tcp, unix, abstract):
        server.close()
    os.unlink(UNIX_PATH)


@pytest.fixture(scope="module")
def programs(listeners):
    return hostile_programs(
        secret=SECRET,
        mark=MARK,
        outside=str(OUTSIDE),
        port=listeners["tcp"].getsockname()[1],
        unix_path=UNIX_PATH,
        abstract_name=ABSTRACT,
    )


@pytest.fixture(scope="module")
def verifier():
    os.environ["RLVR_TEST_SECRET"] = SECRET
    verifier = CodeTests(workers=2, limits=Limits(wall_seconds=WALL, memory_mb=512))
    verifier.warm_up()
    yield verifier
    verifier.close()
    os.environ.pop("RLVR_TEST_SECRET", None)


def _judge(verifier, programs: dict[str, str]):
    payloads = [verifier._prepare(p, PROBLEM) for p in programs.values()]
    runs = verifier._get_sandbox().run(payloads)
    verdicts = [verdict_of(p, r) for p, r in zip(payloads, runs, strict=True)]
    return dict(zip(programs, zip(verdicts, runs, strict=True), strict=True))


@pytest.fixture(scope="module")
def outcomes(verifier, programs):
    flat = {name: text for group in programs.values() for name, text in group.items()}
    first = {name: text for name, text in flat.items() if name not in READERS}
    results = _judge(verifier, first)
    # Each writer on both workers, then each reader on both: nothing may carry over.
    results.update(_judge(verifier, {f"{n} (again)": flat[n] for n in WRITERS}))
    results.update(_judge(verifier, {f"{n} ({i})": flat[n] for n in READERS for i in (1, 2)}))
    return results


def test_every_class_has_at_least_two_programs(programs):
    assert {kind: len(group) >= 2 for kind, group in programs.items()} == dict.fromkeys(programs, True)


def test_no_attack_scores_or_becomes_an_error(outcomes):
    for name, (verdict, run) in outcomes.items():
        assert verdict.status is Status.INCORRECT, (name, verdict, run.status, run.stderr[-300:])
        assert verdict.score == 0.0 and verdict.details["passed"] == 0, (name, dict(verdict.details))


def test_each_ends_within_its_wall_limit(outcomes):
    for name, (_, run) in outcomes.items():
        assert run.seconds <= WALL + 1.0, (name, run.seconds)


def test_failures_name_the_attack(outcomes):
    def why(name: str, test: int = 0) -> str:
        return next(f["why"] for f in outcomes[name][0].details["failures"] if f["test"] == test)

    assert "over the" in why("a frame header promising a gigabyte")
    assert "undecodable" in why("a frame nested too deep to decode")
    assert why("define builtins the tests use", 2).startswith("exception: TypeError: unsupported operand")
    assert "not plain built-in data" in why("return an object that equals everything")
    assert outcomes["die by a signal with no name"][1].status in ("done", "exited")


def test_nothing_is_left_outside(outcomes, listeners, verifier):
    verifier.close()
    for server in listeners.values():
        with pytest.raises(BlockingIOError):
            server.accept()
    canaries = [OUTSIDE, *(Path(d, f"rlvr-escape-{MARK}") for d in ("/tmp", "/run", "/dev/shm", "/var/tmp"))]
    canaries += [Path(d, f"rlvr-left-{MARK}") for d in ("/tmp", "/dev/shm", "/var/tmp", str(Path.home()))]
    canaries += [Path("/dev/shm", f"rlvr-{MARK}"), Path("/dev/mqueue", f"rlvr-{MARK}")]
    assert [str(c) for c in canaries if c.exists()] == []
    keys = {str(0x10000000 + int.from_bytes(MARK.encode()[:3], "big") + extra) for extra in (0, 1)}
    for table in ("shm", "msg", "sem"):
        rows = Path(f"/proc/sysvipc/{table}").read_text().splitlines()[1:]
        assert not [r for r in rows if r.split()[0] in keys], f"a System V {table} object outlived its run"
    key_users = [int(line.split(":")[0]) for line in Path("/proc/key-users").read_text().splitlines()]
    assert [u for u in key_users if u >= 0x10000000] == [], "a sandbox user id holds kernel keys"
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and _sandbox_processes():
        time.sleep(0.05)
    assert _sandbox_processes() == []
    assert [g for base in cgroups.available().values() for g in os.listdir(base) if g.startswith("rlvr-sandbox-")] == []


def test_the_honest_program_still_passes(verifier):
    verdict = verifier(RIGHT, PROBLEM)
    assert verdict.status is Status.CORRECT, verdict


@pytest.mark.parametrize("name", sorted(HOSTILE_COMPLETIONS))
def test_completions_that_attack_the_trainer_are_scored_alone_and_fast(name):
    verifier = CodeTests(workers=1, limits=Limits(wall_seconds=WALL))
    text = HOSTILE_COMPLETIONS[name]
    problem = Problem("add", "q", {**PROBLEM.reference, "prefix": "def add(a, b):\n"})
    start = time.perf_counter()
    prepared = verifier._prepare(text, problem)
    elapsed = time.perf_counter() - start
    assert elapsed < 3.0, (name, elapsed)  # linear: a tenth of that unloaded; the old regex took minutes
    if isinstance(prepared, dict):  # a program was read: it must fail in the sandbox, not in the trainer
        verdict = verifier.batch([text], [problem])[0]
        verifier.close()
    else:
        verdict = prepared
    assert verdict.status is Status.INCORRECT and verdict.score == 0.0, (name, verdict)


def _sandbox_processes() -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        try:
            status = Path(f"/proc/{pid}/status").read_text() if pid.isdigit() else ""
        except OSError:
            continue
        uid = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("Uid:")), 0)
        if uid >= 0x10000000:
            found.append(pid)
    return found
