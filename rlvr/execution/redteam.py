"""Hostile programs for checking a code verifier, by what they try.

Each program defines the function under test (``@F@(@P@)``, filled in by
:func:`hostile_programs`) and returns a wrong value unless its attack worked:
the *forge* and *escape* programs always return a wrong value (they win only if
the verdict is forged or the run ends as something other than a zero), the
*read* programs return the right value (``@B@``) only if they read what they
must not (a secret, another run's leftovers), the *reach* programs only if they
reached a listener outside. A sound verifier scores every one of them 0, never
ERROR. The secret is a string only the verifier's side holds (its environment,
the tests' setup); a program gets half of it and a digest, to recognise it;
``@MARK@`` names the canaries the caller checks from outside.
"""

from __future__ import annotations

import hashlib

from rlvr.execution.redteam_outside import ESCAPE as _ESCAPE
from rlvr.execution.redteam_outside import REACH as _REACH

__all__ = ["CLASSES", "HOSTILE_COMPLETIONS", "hostile_programs"]

_FORGE = {
    "patch the harness through sys.modules": """
import sys
for module in list(sys.modules.values()):
    for name in ("report", "judge", "verdict_of", "_run_tests", "_answer", "send", "receive"):
        try:
            setattr(module, name, lambda *a, **k: {"test": 0, "ok": True})
        except Exception:
            pass
def @F@(@P@):
    return None
""",
    "rewrite the tests found through gc": """
import gc, types
for obj in gc.get_objects():
    try:
        if isinstance(obj, dict) and "tests" in obj:
            obj["tests"] = ["pass"] * len(obj["tests"])
        if isinstance(obj, list) and obj and all(isinstance(c, types.CodeType) for c in obj):
            obj[:] = [compile("pass", c.co_filename, "exec") for c in obj]
    except Exception:
        pass
def @F@(@P@):
    return None
""",
    "rewrite the caller's frames": """
import sys
class Yes(Exception):
    pass
def @F@(@P@):
    frame = sys._getframe(1)
    while frame is not None:
        for scope in (frame.f_globals, frame.f_locals):
            try:
                scope["AssertionError"] = Yes
                scope["candidate"] = lambda *a, **k: True
                builtins = scope.get("__builtins__")
                if isinstance(builtins, dict):
                    builtins["AssertionError"] = Yes
            except Exception:
                pass
        frame = frame.f_back
    return None
""",
    "re-arm tracing from an audit hook": """
import sys
def tracer(frame, event, arg):
    if event == "line" and frame.f_code.co_filename.startswith("<test"):
        try:
            frame.f_lineno = frame.f_lineno + 1
        except Exception:
            pass
    return tracer
sys.addaudithook(lambda event, args: sys.settrace(tracer))
sys.settrace(tracer)
def @F@(@P@):
    sys.settrace(tracer)
    return None
""",
    "take over every descriptor and write forged records": """
import json, os
records = [json.dumps({"test": i, "ok": True}) for i in range(8)] + [json.dumps({"event": "done"})]
lines = "".join(r + "\\n" for r in records).encode()
frames = b"".join(b"%08d" % len(r) + r.encode() for r in records + [json.dumps({"value": True})])
for fd in range(0, 1024):
    for data in (lines, frames):
        try:
            os.write(fd, data)
        except OSError:
            pass
def @F@(@P@):
    return None
""",
    "define builtins the tests use": """
def abs(x):
    return 0
def len(x):
    return 2
def round(*a, **k):
    return 0
def str(x):
    return "xx"
def @F@(@P@):
    return None
""",
    "define isinstance, type and the assertion class": """
def isinstance(*a):
    return True
def type(x):
    return int
class AssertionError(Exception):
    pass
def @F@(@P@):
    return None
""",
    "return an object that equals everything": """
class Yes(float):
    def __eq__(self, other):
        return True
    def __lt__(self, other):
        return True
    __hash__ = float.__hash__
def @F@(@P@):
    return Yes(0)
""",
}

_READ = {
    "read the verifier's environment from memory": """
import hashlib, os
HALF, REST, DIGEST = b"@SECRET_HALF@", @SECRET_REST@, "@SECRET_SHA@"
def found(data):
    at = data.find(HALF)
    while at >= 0:
        if hashlib.sha256(data[at : at + len(HALF) + REST]).hexdigest() == DIGEST:
            return True
        at = data.find(HALF, at + 1)
    return False
def leaked():
    if found(repr(dict(os.environ)).encode()):
        return True
    try:
        with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", 0) as mem:
            for line in maps:
                span, perms = line.split()[:2]
                if "r" not in perms:
                    continue
                start, end = (int(x, 16) for x in span.split("-"))
                try:
                    mem.seek(start)
                    if found(mem.read(min(end - start, 1 << 26))):
                        return True
                except (OSError, ValueError, OverflowError):
                    pass
    except OSError:
        pass
    return False
LEAKED = leaked()
def @F@(@P@):
    return (@B@) if LEAKED else None
""",
    "read host processes through /proc": """
import hashlib, os
HALF, REST, DIGEST = b"@SECRET_HALF@", @SECRET_REST@, "@SECRET_SHA@"
def found(data):
    at = data.find(HALF)
    while at >= 0:
        if hashlib.sha256(data[at : at + len(HALF) + REST]).hexdigest() == DIGEST:
            return True
        at = data.find(HALF, at + 1)
    return False
def leaked():
    for pid in os.listdir("/proc"):
        for name in ("environ", "cmdline"):
            try:
                with open(f"/proc/{pid}/{name}", "rb") as handle:
                    if found(handle.read()):
                        return True
            except OSError:
                pass
    return False
LEAKED = leaked()
def @F@(@P@):
    return (@B@) if LEAKED else None
""",
    "read the tests from memory": """
import gc
NEEDLE = "assert " + "candidate"  # built at run time, so the program's own constants do not match
def seen():
    for obj in gc.get_objects():
        try:
            items = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple)) else ()
            if any(isinstance(x, str) and x is not NEEDLE and NEEDLE in x for x in items):
                return True
        except Exception:
            pass
    return False
SEEN = seen()
def @F@(@P@):
    return (@B@) if SEEN else None
""",
    "leave files for the next sample": """
import os
for folder in (os.getcwd(), "/tmp", "/dev/shm", "/var/tmp", os.path.expanduser("~")):
    try:
        with open(os.path.join(folder, "rlvr-left-@MARK@"), "w") as handle:
            handle.write("x")
    except OSError:
        pass
def @F@(@P@):
    return None
""",
    "read files a previous sample left": """
import os
FOUND = any(
    os.path.exists(os.path.join(folder, "rlvr-left-@MARK@"))
    for folder in (os.getcwd(), "/tmp", "/dev/shm", "/var/tmp", os.path.expanduser("~"))
)
def @F@(@P@):
    return (@B@) if FOUND else None
""",
    "leave a key in the kernel keyrings": """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
for keyring in (-3, -4, -5):  # session, user, user session
    libc.add_key(b"user", b"rlvr-@MARK@", b"x", 1, keyring)
def @F@(@P@):
    return None
""",
    "find a key a previous sample left": """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
FOUND = any(libc.request_key(b"user", b"rlvr-@MARK@", None, k) > 0 for k in (-3, -4, -5))
def @F@(@P@):
    return (@B@) if FOUND else None
""",
    "leave System V shared memory for the next sample": """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.shmget(@MARKINT@, 4096, 0o1000 | 0o666)
libc.msgget(@MARKINT@, 0o1000 | 0o666)
libc.semget(@MARKINT@, 1, 0o1000 | 0o666)
def @F@(@P@):
    return None
""",
    "find System V shared memory a previous sample left": """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
FOUND = libc.shmget(@MARKINT@, 0, 0) >= 0 or libc.msgget(@MARKINT@, 0) >= 0
def @F@(@P@):
    return (@B@) if FOUND else None
""",
}

CLASSES = {"forge": _FORGE, "read": _READ, "reach": _REACH, "escape": _ESCAPE}

# Completions that attacked the trainer's own parsing (quadratic fence scans, ``ast`` blow-ups, sheer size).
HOSTILE_COMPLETIONS = {
    "many unclosed fences": "```python\n" * 200_000,
    "fences that never close a python block": "```python\nx\n" + "```bash\n" * 100_000,
    "nested brackets for a parser": "```python\ndef f(x):\n    return " + "(" * 500_000 + "\n```",
    "a completion of ten million characters": "x" * 10_000_000,
}


def hostile_programs(
    function: str = "add",
    params: str = "a, b",
    body: str = "a + b",
    *,
    secret: str = "rlvr-secret",
    mark: str = "0",
    outside: str = "/nonexistent",
    port: int = 9,
    unix_path: str = "/nonexistent.sock",
    abstract_name: str = "rlvr-abstract",
) -> dict[str, dict[str, str]]:
    """Every hostile program, by class (``forge``, ``read``, ``reach``, ``escape``), for one function.

    Args:
        function: the name of the function under test.
        params: its parameter list, as source.
        body: an expression over the parameters that computes the right value.
        secret: a string in the verifier's environment (never to be read).
        mark: a unique token naming the canaries (files, keys, IPC keys) to check from outside.
        outside: a folder outside the sandbox the caller can check.
        port: a TCP port on 127.0.0.1 the caller listens on.
        unix_path: a unix socket the caller listens on, on the host's file system.
        abstract_name: an abstract unix socket name the caller listens on.
    """
    half = len(secret) // 2  # a program holds only the first half and a digest: finding itself proves nothing
    marker_int = int.from_bytes(mark.encode()[:3].ljust(3, b"\0"), "big") or 1
    values = {
        "@F@": function,
        "@P@": params,
        "@B@": body,
        "@SECRET_HALF@": secret[:half],
        "@SECRET_REST@": str(len(secret.encode()) - len(secret[:half].encode())),
        "@SECRET_SHA@": hashlib.sha256(secret.encode()).hexdigest(),
        "@MARKINT@": str(0x10000000 + marker_int),
        "@MARK@": mark,
        "@OUTSIDE@": outside,
        "@PORT@": str(port),
        "@UNIX@": unix_path,
        "@ABSTRACT@": abstract_name,
    }
    filled: dict[str, dict[str, str]] = {}
    for kind, programs in CLASSES.items():
        filled[kind] = {}
        for name, template in programs.items():
            text = template.lstrip("\n")
            for token, value in values.items():
                text = text.replace(token, value)
            filled[kind][name] = text
    return filled
