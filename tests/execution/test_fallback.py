"""Without root: no namespaces, no user id of its own; a run still gets a fresh folder and it goes.

The run here is started from the test process itself (the zygote's own
functions), with the isolation flags a process without root would have.
Only harmless programs run here: without isolation they run as this user.
"""

from __future__ import annotations

import os
import time

from rlvr.execution import isolation, spawn, zygote
from rlvr.execution.sandbox import Limits


def _run(payload, monkeypatch):
    monkeypatch.setattr(isolation, "worker_isolation", {"namespaces": False, "user": False})
    spare = []
    reply, fds, run = zygote._start(payload, Limits(wall_seconds=10.0), spare)
    assert reply[0] == "ok", reply
    out, err, status = fds[:3]
    deadline = time.monotonic() + 10.0
    chunks = []
    while time.monotonic() < deadline:
        chunk = os.read(status, 4096)
        if not chunk:
            break
        chunks.append(chunk)
    stdout = os.read(out, 65536).decode()
    scratch = run.scratch
    run.close()
    for fd in fds:
        os.close(fd)
    for other in spare:
        other.kill()
        other.close()
    spawn.drop_template()
    return stdout, scratch, b"".join(chunks)


def test_a_tree_too_deep_for_rmtree_is_still_removed(monkeypatch):
    program = (
        "import os\nfor _ in range(3000):\n    os.mkdir('d')\n    os.chdir('d')\nprint('deep', os.environ.get('HOME'))"
    )
    stdout, scratch, status = _run({"program": program}, monkeypatch)
    assert stdout.startswith("deep None"), (stdout, status)  # an empty environment, even without root
    assert scratch and not os.path.exists(scratch)
