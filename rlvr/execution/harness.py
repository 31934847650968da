"""The judge: runs the tests in a trusted process and asks the program's process for calls.

:func:`judge` runs in a process forked for one sample by a sandbox worker's
zygote (see :mod:`rlvr.execution.zygote`); the program runs in another process
(forked from a clean template interpreter, :mod:`rlvr.execution.template`)
under a user id of its own, in namespaces of its own, that can neither see nor
signal nor trace this one. The two talk through two pipes
carrying :mod:`rlvr.execution.wire` frames: this side sends the program's
source once, then call requests (``candidate(2, 3)`` becomes
``{"call": "add", "args": [2, 3]}``); the other side sends plain data back.

Every verdict is made here: the tests' asserts run in this process, on values
decoded by a strict, size-bounded parser that can only build built-in data (and
instances of the tests' own helper classes, from their trusted definitions), so
an object with a doctored ``__eq__`` cannot exist on this side. The program
never sees the tests, the expected values or this process's memory; what it
controls is what its functions return, which is what is being judged.

What the program's side may do, and what it means here:

* return a value: decoded (or refused: "returned an object of type ...");
* raise: re-raised here as the same built-in exception type (a few common
  ones; any other becomes :class:`ProgramRaised`), so a test's own ``except``
  clauses behave as usual;
* exit, crash, hang, send garbage: the test in progress fails and no further
  test runs; the sandbox says why (``timeout``, ``killed by SIGSEGV``, ...).

Results go to the worker as JSON lines (this side is trusted): ``{"test": i,
"ok": bool, "why": str}`` per test and ``{"event": ...}`` records.
Limits, stated plainly: arguments and return values are copied, so a test that
checks a mutation of its argument by the program cannot pass; tests may call
only the program's functions (by ``candidate``, the entry point's name, or the
names the tests use that neither the setup nor the built-ins define).
"""

from __future__ import annotations

import ast
import builtins
import json
import os
from typing import Any

from rlvr.execution import wire

__all__ = ["ProgramRaised", "judge", "program_names", "same_output"]

# Exceptions a program's call may raise here under their own type (so ``except
# ValueError`` in a test works); any other type arrives as ProgramRaised.
_MIRRORED = {
    cls.__name__: cls
    for cls in (
        ArithmeticError,
        AttributeError,
        IndexError,
        KeyError,
        LookupError,
        NameError,
        NotImplementedError,
        OverflowError,
        RecursionError,
        RuntimeError,
        TypeError,
        UnboundLocalError,
        ValueError,
        ZeroDivisionError,
    )
}


class ProgramRaised(Exception):
    """The program's call raised an exception of a type not mirrored here."""


class _Stop(BaseException):
    """The program can answer no more calls (gone, timed out, exited, garbled); ``why`` says which."""

    def __init__(self, why: str, record: bool = True) -> None:
        super().__init__(why)
        self.why, self.record = why, record


class _Refused(BaseException):
    """A test fails for a reason of the program's (a refused value); later tests still run."""


def program_names(tests: list[str], defined: set[str], entry_point: str | None) -> list[str]:
    """The names the tests may call on the program's side.

    Names the tests read that neither the setup (``defined``), the built-ins nor
    the tests themselves bind; plus the entry point. A program that defines
    ``len`` or ``abs`` therefore never replaces the tests' own.
    """
    loaded, bound = set(), set()
    for test in tests:
        for node in ast.walk(ast.parse(test)):
            if isinstance(node, ast.Name):
                (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
            elif isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
                bound.add(node.name)
            elif isinstance(node, ast.alias):
                bound.add((node.asname or node.name).split(".")[0])
            elif isinstance(node, ast.arg):
                bound.add(node.arg)
    names = loaded - bound - defined - set(builtins.__dict__) - {"candidate"}
    return sorted(names | ({entry_point} if entry_point else set()))


def same_output(produced: str, expected: str) -> bool:
    """Whether two outputs match line by line, ignoring trailing spaces and blank lines at either end."""

    def lines(text: str) -> list[str]:
        return [line.rstrip() for line in text.strip().splitlines()]

    return lines(produced) == lines(expected)


class _Channel:
    def __init__(self, requests: int, answers: int, deadline: float, max_frame: int) -> None:
        self.requests, self.answers, self.deadline, self.max_frame = requests, answers, deadline, max_frame

    def send(self, message: dict[str, Any]) -> None:
        try:
            wire.send_trusted(self.requests, message)
        except OSError:
            raise _Stop("", record=False) from None

    def receive(self) -> dict[str, Any]:
        try:
            message = wire.receive(self.answers, self.max_frame, self.deadline)
        except wire.ChannelClosed:
            raise _Stop("", record=False) from None
        except wire.ChannelTimeout:
            raise _Stop("timeout") from None
        except wire.WireError as exc:
            raise _Stop(f"the program's process sent an undecodable answer: {exc}") from None
        if type(message) is not dict:
            raise _Stop("the program's process sent a malformed answer")
        return message


def _answer(message: dict[str, Any], classes: dict[str, type]) -> Any:
    """The value a call answer stands for, or the exception it means here."""
    if "value" in message:
        try:
            return wire.from_wire(message["value"], classes)
        except (wire.WireError, RecursionError) as exc:
            raise _Refused(f"returned {exc}") from None
    if "raised" in message:
        name, text = str(message.get("raised"))[:80], str(message.get("message", ""))[:300]
        cls = _MIRRORED.get(name)
        if cls is not None:
            raise cls(text.partition(": ")[2] if text.startswith(name + ":") else "")
        raise ProgramRaised(text or name)
    if "exit" in message:
        raise _Stop("the program called exit")
    if "bad" in message:
        raise _Refused("returned " + str(message["bad"])[:300])
    if "missing" in message:
        raise NameError(f"the program defines no function {str(message['missing'])[:80]!r}")
    raise _Stop("the program's process sent a malformed answer")


def _proxy(name: str, channel: _Channel, classes: dict[str, type]) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            request = {"call": name, "args": wire.to_wire(list(args), classes), "kwargs": wire.to_wire(kwargs, classes)}
        except wire.WireError as exc:
            raise TypeError(f"the test passes {exc} to the program, which cannot cross to its process") from None
        channel.send(request)
        return _answer(channel.receive(), classes)

    call.__name__ = call.__qualname__ = name
    return call


def _describe(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:
        text = ""
    if isinstance(exc, ProgramRaised):
        return text
    name = type(exc).__name__
    return (f"{name}: {text}" if text else name)[:300]


def _run_tests(tests, test_ns, report) -> None:
    for index, test in enumerate(tests):
        try:
            exec(test, test_ns)
        except AssertionError as exc:
            report(
                {
                    "test": index,
                    "ok": False,
                    "why": ("assertion failed: " + str(exc))[:300] if exc.args else "assertion failed",
                }
            )
        except _Refused as exc:
            report({"test": index, "ok": False, "why": str(exc)[:300]})
        except _Stop as exc:
            if exc.record:
                report({"test": index, "ok": False, "why": exc.why})
            report({"event": "stopped"})
            return
        except Exception as exc:
            report({"test": index, "ok": False, "why": "exception: " + _describe(exc)})
        else:
            report({"test": index, "ok": True})
    report({"event": "done"})


def _run_cases(cases, channel: _Channel, report) -> None:
    for index, case in enumerate(cases):
        try:
            channel.send({"run": case["input"]})
            answer = channel.receive()
        except _Stop as exc:
            if exc.record:
                report({"test": index, "ok": False, "why": exc.why})
            report({"event": "stopped"})
            return
        output, raised = answer.get("output"), answer.get("raised")
        if type(output) is not str or type(raised) is not str:
            report({"test": index, "ok": False, "why": "the program's process sent a malformed answer"})
        elif same_output(output, case["output"]):
            report({"test": index, "ok": True})
        else:
            report({"test": index, "ok": False, "why": "exception: " + raised if raised else "wrong output"})
    report({"event": "done"})


def judge(payload: dict[str, Any], fds: tuple[int, int, int], deadline: float, max_frame: int) -> None:
    """Judge one sample; returns when done (the caller exits the process).

    Args:
        payload: ``program`` plus either ``tests`` (with ``setup``,
            ``entry_point``) or ``io`` (a list of ``{"input", "output"}`` cases).
        fds: the request pipe (write), the answer pipe (read), the results pipe (write).
        deadline: ``time.monotonic()`` after which a pending call counts as a timeout.
        max_frame: the largest answer accepted, in bytes.
    """
    requests, answers, results = fds

    def report(record: dict[str, Any]) -> None:
        os.write(results, (json.dumps(record) + "\n").encode())

    channel = _Channel(requests, answers, deadline, max_frame)
    io_cases = payload.get("io")
    test_ns: dict[str, Any] = {"__builtins__": dict(builtins.__dict__), "__name__": "tests"}
    try:
        setup = payload.get("setup") or ""
        exec(compile(setup, "<setup>", "exec", dont_inherit=True), test_ns)
        tests = [] if io_cases else list(payload["tests"])
        compiled = [compile(t, f"<test {i}>", "exec", dont_inherit=True) for i, t in enumerate(tests)]
        names = program_names(tests, set(test_ns), payload.get("entry_point"))
        has_classes = any(isinstance(n, ast.ClassDef) for n in ast.parse(setup).body)
    except Exception as exc:
        report({"event": "setup", "ok": False, "why": "the tests' setup failed: " + _describe(exc)})
        return
    classes = {k: v for k, v in test_ns.items() if isinstance(v, type) and v.__module__ == "tests"}
    job = {"mode": "io" if io_cases else "functions", "program": payload["program"], "names": names}
    if has_classes:  # the program's process needs the helper classes to receive their instances
        job["setup"] = setup
    try:
        channel.send(job)
        loaded = channel.receive()
    except _Stop as exc:
        report({"event": "load", "ok": False, "why": exc.why} if exc.record else {"event": "stopped"})
        return
    if loaded.get("loaded") is not True:
        report({"event": "load", "ok": False, "why": str(loaded.get("why") or "the program did not load")[:300]})
        return
    functions = loaded.get("functions")
    functions = (
        set(functions) & set(names) if type(functions) is list and all(type(f) is str for f in functions) else set()
    )
    entry = payload.get("entry_point")
    if entry and entry not in functions:
        report({"event": "load", "ok": False, "why": f"the program defines no function {entry!r}"})
        return
    report({"event": "load", "ok": True})
    if io_cases:
        _run_cases(io_cases, channel, report)
        return
    for name in names:
        test_ns[name] = _proxy(name, channel, classes)
    if entry:
        test_ns["candidate"] = test_ns[entry]
    _run_tests(compiled, test_ns, report)
