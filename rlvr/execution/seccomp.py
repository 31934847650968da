"""A seccomp filter for the program's process: system calls no test program needs.

Installed last before the interpreter starts, after the switch to the run's
user id; it holds for the program and everything it starts (``no_new_privs``
is set too, so no set-user-ID program regains privileges). Refused with
``EPERM``:

* the kernel keyring (``keyctl``, ``add_key``, ``request_key``): keyrings are
  per user id and outlive a process, so they could carry data between runs;
* ``socket(AF_UNIX, ...)``: unix-domain sockets reach services through files
  on the host's file system (abstract ones are per network namespace, and the
  run has its own); ``socketpair`` stays allowed;
* new namespaces and mounts (``unshare``, ``setns``, ``clone`` with a namespace
  flag, ``mount``, the new mount API, ``pivot_root``, ``chroot``), ``ptrace``,
  ``process_vm_*``, ``bpf``, ``perf_event_open``, ``userfaultfd``,
  ``io_uring``: kernel attack surface a test program has no use for.

``clone3`` answers ``ENOSYS`` (its flags cannot be inspected), so the C library
falls back to ``clone``. Only x86-64 and AArch64 have a table; elsewhere
:func:`install` returns False and installs nothing.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct
from typing import Any

__all__ = ["install"]

_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_DENIED = {
    "x86_64": (101, 155, 161, 165, 166, 246, 248, 249, 250, 272, 298, 308, 310, 311, 321, 323, *range(425, 434), 442),
    "aarch64": (39, 40, 41, 51, 97, 117, 217, 218, 219, 241, 268, 270, 271, 280, 282, *range(425, 434), 442),
}
_SOCKET = {"x86_64": 41, "aarch64": 198}
_CLONE = {"x86_64": 56, "aarch64": 220}
_CLONE3 = 435
_AF_UNIX = 1
_NAMESPACE_FLAGS = 0x7E020080  # CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWTIME
_LD_ABS, _JEQ, _JSET, _JGE, _RET = 0x20, 0x15, 0x45, 0x35, 0x06
_ALLOW, _ERRNO = 0x7FFF0000, 0x00050000
_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2


def _program(machine: str) -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions; jumps are resolved to the two returns at the end."""
    code: list[tuple[int, Any]] = [(_LD_ABS, 4), (_JEQ, (_ARCH[machine], None, "deny")), (_LD_ABS, 0)]
    if machine == "x86_64":
        code.append((_JGE, (0x40000000, "deny", None)))  # the x32 ABI
    code += [(_JEQ, (nr, "deny", None)) for nr in _DENIED[machine]]
    code += [(_JEQ, (_CLONE3, "nosys", None)), (_JEQ, (_SOCKET[machine], "socket", None))]
    code += [(_JEQ, (_CLONE[machine], "clone", None)), (_RET, _ALLOW)]
    code += [("label", "socket"), (_LD_ABS, 16), (_JEQ, (_AF_UNIX, "deny", "allow"))]
    code += [("label", "clone"), (_LD_ABS, 16), (_JSET, (_NAMESPACE_FLAGS, "deny", "allow"))]
    code += [("label", "nosys"), (_RET, _ERRNO | errno.ENOSYS), ("label", "deny"), (_RET, _ERRNO | errno.EPERM)]
    code += [("label", "allow"), (_RET, _ALLOW)]  # BPF jumps only forward: every branch ends down here
    labels, position = {}, 0
    for op, arg in code:
        if op == "label":
            labels[arg] = position
        else:
            position += 1
    out: list[tuple[int, int, int, int]] = []
    for op, arg in code:
        if op == "label":
            continue
        here = len(out) + 1
        if op in (_JEQ, _JSET, _JGE):
            k, true, false = arg
            jt = labels[true] - here if true else 0
            jf = labels[false] - here if false else 0
            out.append((op, jt, jf, k))
        else:
            out.append((op, 0, 0, arg))
    return out


def install() -> bool:
    """Install the filter in this process (and what it starts). False where no table exists.

    Raises:
        OSError: the kernel refused the filter.
    """
    machine = platform.machine()
    if machine not in _ARCH:
        return False
    program = _program(machine)
    raw = b"".join(struct.pack("HBBI", *instruction) for instruction in program)
    buffer = ctypes.create_string_buffer(raw, len(raw))

    class _Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = _Program(len(program), ctypes.addressof(buffer))
    lib = ctypes.CDLL(None, use_errno=True)
    if lib.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    if lib.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP) failed")
    return True
