"""Runs forked from one worker's template: each its own process, nothing shared that matters.

Every run of a worker is a copy of the same template interpreter
(:mod:`rlvr.execution.template`). These check, from inside the runs, what that
must not change: each run has its own process, its own user id (under root), its
own ``random`` state, an empty environment, and no writable memory shared with
the template or another run.
"""

from __future__ import annotations

import json
import os

import pytest

from rlvr.execution.sandbox import Limits, Sandbox

_PROBE = """
import json, os, random, sys
shared = [line for line in open("/proc/self/maps") if line.split()[1][1] == "w" and line.split()[1][3] == "s"]
print(json.dumps({
    "pid": os.getpid(), "uid": os.getuid(), "random": random.random(), "environ": dict(os.environ),
    "shared_writable": shared, "argv": sys.argv,
}))
"""


@pytest.fixture(scope="module")
def probes():
    with Sandbox(workers=1, limits=Limits(wall_seconds=10.0)) as sandbox:
        results = sandbox.run([{"program": _PROBE}] * 4)
    assert [r.status for r in results] == ["exited"] * 4, [(r.status, r.stderr) for r in results]
    return [json.loads(r.stdout) for r in results]


def test_each_run_draws_its_own_random_state(probes):
    assert len({p["random"] for p in probes}) == len(probes)


def test_each_run_gets_its_own_user_id_under_root(probes):
    if os.geteuid() != 0:
        pytest.skip("user ids of their own need root")
    uids = [p["uid"] for p in probes]
    assert len(set(uids)) == len(uids) and 0 not in uids and os.getuid() not in uids


def test_a_run_has_an_empty_environment_and_no_shared_writable_memory(probes):
    for probe in probes:
        assert set(probe["environ"]) <= {"LC_CTYPE"}, probe["environ"]  # set by Python itself for the C locale
        assert probe["shared_writable"] == []
        assert probe["argv"] == ["-c"]


def test_a_run_is_pid_1_of_its_own_namespace_under_root(probes):
    if os.geteuid() != 0:
        pytest.skip("namespaces need root")
    assert all(p["pid"] == 1 for p in probes)
