"""The test harness that runs *inside* the sandboxed process (see :mod:`rlvr.execution.sandbox`).

It loads the program, then runs each test and reports it, one record per test,
on a channel of its own (not stdout): a pipe at an unpredictable descriptor,
every record prefixed with a per-run nonce. A test passes only if its own
record says so, so a program that exits early (``sys.exit(0)``, ``os._exit``,
killing itself) leaves its remaining tests failed, never passed.

What keeps a cheating program from passing:

* everything the harness uses is captured before the program runs, and the
  tests run with a pristine copy of the builtins, so patching ``builtins``
  (``isinstance``, ``abs``, ``AssertionError``...) changes nothing for them;
  ``assert`` itself compiles to an opcode that no name lookup can replace;
* every value the program's functions return to a test must be plain data of
  exact built-in types (``int``, ``float``, ``str``, ``list``, ``dict``...; no
  subclasses), checked before the test sees it, so an object whose ``__eq__``
  always returns True, or a ``str`` subclass with a doctored ``__eq__``, fails;
* helpers the tests rely on (the problem's prompt code, ``METADATA``) come from
  the trusted setup, run before the program in the tests' own namespace;
* trace and profile hooks are cleared after every call into the program, so it
  cannot rewrite the tests' frames as they run.

Limits, stated plainly: the program shares the harness's process. One that
digs through the interpreter (``gc``, frame objects, ``ctypes``) or patches a
module the tests import (``math.fabs``) can still forge a pass; the sandbox
bounds what such a program can do to the machine, not to its own score.
Functions that legitimately return other types (numpy scalars, custom classes)
fail the plain-data check: this harness is for tests over plain values, as in
HumanEval and MBPP.
"""

from __future__ import annotations

import ast
import builtins
import json
import os
import sys
import types
from typing import Any

__all__ = ["PLAIN_TYPES", "main", "plain_data_problem"]

PLAIN_TYPES = frozenset({int, float, complex, bool, str, bytes, type(None), list, tuple, dict, set, frozenset})
_MAX_NODES = 1_000_000
# Captured when the worker imports this module, before any program runs: a program
# that patches ``builtins`` cannot change what the harness's own code calls.
_type, _id, _len, _set, _str, _isinstance, _enumerate = type, id, len, set, str, isinstance, enumerate
_function, _bool, _int = types.FunctionType, bool, int
_AssertionError, _SystemExit, _BaseException = AssertionError, SystemExit, BaseException
_quote = json.encoder.encode_basestring_ascii  # C code: no lookups a program could patch


def _encode(record: dict[str, Any]) -> str:
    """A flat record as JSON, without ``json.dumps`` (whose Python code calls ``isinstance``)."""
    parts = []
    for key, value in record.items():
        kind = _type(value)
        text = ("true" if value else "false") if kind is _bool else _str(value) if kind is _int else _quote(_str(value))
        parts.append(_quote(key) + ": " + text)
    return "{" + ", ".join(parts) + "}"


class UntrustedValue(BaseException):
    """Raised when the program returns something that is not plain data.

    A BaseException, so a test's ``except Exception`` cannot swallow it.
    """


def plain_data_problem(value: Any) -> str:
    """Why ``value`` is not plain built-in data, or "" if it is (iterative, bounded)."""
    stack, seen, nodes = [value], _set(), 0
    while stack:
        item = stack.pop()
        kind = _type(item)
        if kind not in PLAIN_TYPES:
            return f"returned an object of type {kind.__module__}.{kind.__qualname__}, not plain built-in data"
        if kind in (list, tuple, set, frozenset, dict):
            if _id(item) in seen:
                continue
            seen.add(_id(item))
            nodes += _len(item)
            if nodes > _MAX_NODES:
                return f"returned a value with more than {_MAX_NODES} elements"
            stack.extend(item.keys() if kind is dict else item)
            if kind is dict:
                stack.extend(item.values())
    return ""


def main(payload: dict[str, Any], report_fd: int, nonce: str) -> None:
    """Run ``payload`` and exit the process (never returns)."""
    write, exit_now, encode = os.write, os._exit, str.encode
    settrace, setprofile = sys.settrace, sys.setprofile
    pristine = dict(builtins.__dict__)
    type_ = _type

    def report(record: dict[str, Any]) -> None:
        write(report_fd, encode(nonce + " " + _encode(record) + "\n"))

    def describe(exc: BaseException) -> str:
        try:
            name = type_(exc).__name__
            text = _str(exc)
        except BaseException:
            return "an exception that cannot be described"
        return f"{name}: {text}"[:300] if text else name

    program = payload["program"]
    tests = payload.get("tests")
    if tests is None:  # script mode: run the program, its exit status is the result
        try:
            exec(compile(program, "<program>", "exec", dont_inherit=True, optimize=0), {"__name__": "__main__"})
        except SystemExit as exc:
            _flush()
            exit_now(exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1))
        except BaseException:
            import traceback

            traceback.print_exc()
            _flush()
            exit_now(1)
        _flush()
        exit_now(0)

    test_ns: dict[str, Any] = {"__builtins__": pristine, "__name__": "tests"}
    try:
        exec(compile(payload.get("setup") or "", "<setup>", "exec", dont_inherit=True, optimize=0), test_ns)
        compiled_tests = [compile(t, f"<test {i}>", "exec", dont_inherit=True, optimize=0) for i, t in enumerate(tests)]
        needed = {n.id for t in tests for n in ast.walk(ast.parse(t)) if isinstance(n, ast.Name)}
    except BaseException as exc:
        report({"event": "setup", "ok": False, "why": "the tests' setup failed: " + describe(exc)})
        exit_now(0)

    program_ns: dict[str, Any] = {"__name__": "solution"}
    try:
        code = compile(program, "<program>", "exec", dont_inherit=True, optimize=0)
    except (SyntaxError, ValueError) as exc:
        report({"event": "load", "ok": False, "why": "syntax error: " + describe(exc)})
        exit_now(0)
    try:
        exec(code, program_ns)
    except SystemExit:
        report({"event": "load", "ok": False, "why": "the program called exit while loading"})
        exit_now(0)
    except BaseException as exc:
        report({"event": "load", "ok": False, "why": "the program raised while loading: " + describe(exc)})
        exit_now(0)
    settrace(None)
    setprofile(None)

    def guard(fn: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            value = fn(*args, **kwargs)
            settrace(None)
            setprofile(None)
            problem = plain_data_problem(value)
            if problem:
                raise UntrustedValue(problem)
            return value

        return call

    entry = payload.get("entry_point")
    if entry:
        target = program_ns.get(entry)
        if not _isinstance(target, _function):
            report({"event": "load", "ok": False, "why": f"the program defines no function {entry!r}"})
            exit_now(0)
        test_ns["candidate"] = guard(target)
        test_ns.setdefault(entry, test_ns["candidate"])
    for name in needed - test_ns.keys():
        if _isinstance(program_ns.get(name), _function):
            test_ns[name] = guard(program_ns[name])
    report({"event": "load", "ok": True})

    for index, test in _enumerate(compiled_tests):
        try:
            exec(test, test_ns)
        except _AssertionError as exc:
            why = "assertion failed" + (": " + describe(exc).partition(": ")[2] if exc.args else "")
            report({"test": index, "ok": False, "why": why[:300]})
        except UntrustedValue as exc:
            report({"test": index, "ok": False, "why": describe(exc).partition(": ")[2]})
        except _SystemExit:
            report({"test": index, "ok": False, "why": "the program called exit"})
        except _BaseException as exc:  # the program's exception fails this test; this process is the sandbox's
            report({"test": index, "ok": False, "why": "exception: " + describe(exc)})
        else:
            report({"test": index, "ok": True})
        settrace(None)
        setprofile(None)
    report({"event": "done"})
    _flush()
    exit_now(0)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # a program may have replaced or closed the stream
            pass
