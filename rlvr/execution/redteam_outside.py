"""Hostile programs that reach outside the sandbox or try to escape the zero (see :mod:`rlvr.execution.redteam`).

Templates: ``@F@``, ``@P@``, ``@B@`` and the canary tokens are filled in by
:func:`rlvr.execution.redteam.hostile_programs`.
"""

REACH = {
    "connect to a unix socket on the host's file system": """
import socket
def reached():
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(1)
        s.connect("@UNIX@")
        s.send(b"escaped")
        return True
    except OSError:
        return False
REACHED = reached()
def @F@(@P@):
    return (@B@) if REACHED else None
""",
    "connect to an abstract unix socket": """
import socket
def reached():
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(1)
        s.connect("\\0@ABSTRACT@")
        s.send(b"escaped")
        return True
    except OSError:
        return False
REACHED = reached()
def @F@(@P@):
    return (@B@) if REACHED else None
""",
    "connect to a TCP port on loopback": """
import socket
def reached():
    try:
        socket.create_connection(("127.0.0.1", @PORT@), timeout=1).send(b"escaped")
        return True
    except OSError:
        return False
REACHED = reached()
def @F@(@P@):
    return (@B@) if REACHED else None
""",
    "System V and POSIX IPC objects that outlive the run": """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.shmget(@MARKINT@ + 1, 4096, 0o1000 | 0o666)
libc.msgget(@MARKINT@ + 1, 0o1000 | 0o666)
libc.semget(@MARKINT@ + 1, 1, 0o1000 | 0o666)
try:
    rt = ctypes.CDLL("librt.so.1", use_errno=True)
    rt.mq_open(b"/rlvr-@MARK@", os.O_CREAT | os.O_RDWR, 0o666, None)
except OSError:
    pass
try:
    open("/dev/shm/rlvr-@MARK@", "w").write("x")
except OSError:
    pass
def @F@(@P@):
    return None
""",
    "write outside its folder": """
import os
for path in ("@OUTSIDE@/written", "/tmp/rlvr-escape-@MARK@", "/run/rlvr-escape-@MARK@"):
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "w").write("x")
    except OSError:
        pass
def @F@(@P@):
    return None
""",
}

ESCAPE = {
    "a directory tree too deep to clean up": """
import os
for _ in range(100000):
    try:
        os.mkdir("d")
        os.chdir("d")
    except OSError:
        break
def @F@(@P@):
    return None
""",
    "a flood of files": """
import os
n = 0
while True:
    try:
        open(f"f{n}", "w").close()
        n += 1
    except OSError:
        break
def @F@(@P@):
    return None
""",
    "die by a signal with no name": """
import os, signal
for number in (signal.SIGRTMIN + 6, signal.SIGRTMAX):
    signal.signal(number, signal.SIG_DFL)
    os.kill(os.getpid(), number)
    os.kill(0, number)
def @F@(@P@):
    os.kill(os.getpid(), signal.SIGRTMIN + 6)
    return None
""",
    "a frame header promising a gigabyte": """
import os
os.write(4, b"99999999")
def @F@(@P@):
    os.write(4, b"99999999")
    return None
""",
    "a frame nested too deep to decode": """
import os
body = b"[" * 200000 + b"]" * 200000
def @F@(@P@):
    os.write(4, b"%08d" % len(body) + body)
    import time
    time.sleep(100)
""",
    "an integer too long to decode": """
def @F@(@P@):
    return 10 ** 100000
""",
    "close the channel and hang": """
import os, time
def @F@(@P@):
    os.close(3)
    os.close(4)
    time.sleep(100)
""",
    "kill every process it can": """
import os, signal
for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGSTOP):
    try:
        os.kill(-1, sig)
    except OSError:
        pass
def @F@(@P@):
    return None
""",
}
