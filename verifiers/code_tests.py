"""The code-test verifier: run a completion's program against the problem's tests in the sandbox.

A problem's ``reference`` is a test suite, a mapping with

* ``tests``: a list of test snippets, each run on its own (``assert f(2) == 4``);
* ``setup`` (optional): trusted code run before the program in the tests' own
  namespace (helpers, imports, constants the tests use);
* ``entry_point`` (optional): the function the tests call as ``candidate``
  (HumanEval style); without it, tests call the program's functions by name (MBPP style);
* ``prefix`` (optional): code the program is built on, e.g. HumanEval's
  signature and docstring. A completion that defines the entry point itself is
  run after the prefix (its definition wins); one that does not is taken as the
  continuation of the prefix (a function body).

:func:`suite_from_check` turns HumanEval's ``def check(candidate): ...`` into
such a suite, one test per ``assert``.
"""

from __future__ import annotations

import ast
import re
import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from rlvr.types import Problem, Verdict

__all__ = ["CodeTests", "extract_program", "suite_from_check"]

_FENCE = re.compile(r"^```[ \t]*([\w+-]*)[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
_PYTHON_TAGS = {"", "python", "py", "python3"}
EXTRACT_RULES = ("auto", "last_block", "whole")


def extract_program(completion: str, rule: str = "auto") -> str | None:
    """The program in ``completion``.

    ``"last_block"``: the last fenced code block tagged python/py or untagged
    (None if there is none); ``"whole"``: the whole text; ``"auto"``: the last
    block if there is one, else the whole text.
    """
    if rule not in EXTRACT_RULES:
        raise ValueError(f"rule must be one of {EXTRACT_RULES}, got {rule!r}")
    if rule == "whole":
        return completion
    blocks = [body for tag, body in _FENCE.findall(completion) if tag.lower() in _PYTHON_TAGS]
    if blocks:
        return blocks[-1]
    return completion if rule == "auto" else None


def suite_from_check(test_code: str, entry_point: str, prefix: str = "") -> dict[str, Any]:
    """A test suite from HumanEval-style ``test_code`` defining ``check(candidate)``.

    Each ``assert`` in ``check``'s body (with the statements before it since the
    previous one, e.g. an assignment it uses) becomes one test; code outside
    ``check`` and the prefix's helpers (everything in it but the entry point's
    definition, e.g. ``poly`` for ``find_zero``) become trusted setup, so a program
    that redefines a helper cannot change what the tests compute.
    """
    module = ast.parse(test_code)
    checks = [n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "check"]
    if len(checks) != 1:
        raise ValueError("the test code must define exactly one function check(candidate)")
    setup_nodes = [n for n in module.body if n is not checks[0]]
    if prefix:
        setup_nodes = [
            n
            for n in ast.parse(prefix).body
            if not (isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == entry_point)
        ] + setup_nodes
    tests, pending = [], []
    for statement in checks[0].body:
        pending.append(statement)
        if any(isinstance(n, ast.Assert) for n in ast.walk(statement)):
            tests.append("\n".join(ast.unparse(s) for s in pending))
            pending = []
    if pending and tests:
        tests[-1] += "\n" + "\n".join(ast.unparse(s) for s in pending)
    if not tests:
        raise ValueError("check(candidate) contains no assert")
    setup = "\n".join(ast.unparse(n) for n in setup_nodes)
    return {"setup": setup, "tests": tests, "entry_point": entry_point, "prefix": prefix}


def _defines(code: str, name: str) -> bool:
    try:
        module = ast.parse(code)
    except SyntaxError:
        return False
    return any(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == name for n in module.body)


class CodeTests:
    """Score = the fraction of the problem's tests the program passes (or all-or-nothing).

    Args:
        mode: ``"fraction"`` (passed / total) or ``"all"`` (1 only if every test passes).
        extract: how the program is read from the completion (:func:`extract_program`).
        limits: :class:`rlvr.execution.sandbox.Limits` of one program run (wall time, memory...).
        workers: programs run in parallel.
        max_program_chars: longer programs score 0 without running.

    Verdicts: a program that fails any test is INCORRECT with ``details`` listing
    each failure and why (``assertion failed``, ``exception: ...``, ``timeout``,
    ``killed by SIGKILL``, ``syntax error: ...``). A test passes only when the
    in-sandbox harness reports it passed (see :mod:`rlvr.execution.harness`): exiting early
    or killing the process never passes a test. A reference that is not a test
    suite is UNSCORABLE; the sandbox itself failing is ERROR, never a score.
    """

    name = "code-tests"

    def __init__(
        self,
        mode: str = "fraction",
        extract: str = "auto",
        limits: Any = None,
        workers: int | None = None,
        max_program_chars: int = 100_000,
    ) -> None:
        from rlvr.execution.sandbox import Limits

        if mode not in ("fraction", "all"):
            raise ValueError(f"mode must be 'fraction' or 'all', got {mode!r}")
        if extract not in EXTRACT_RULES:
            raise ValueError(f"extract must be one of {EXTRACT_RULES}, got {extract!r}")
        if isinstance(limits, Mapping):
            limits = Limits(**limits)
        self.mode, self.extract, self.limits = mode, extract, limits or Limits()
        self.workers, self.max_program_chars = workers, int(max_program_chars)
        self._sandbox: Any = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_sandbox", "_lock")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._sandbox, self._lock = None, threading.Lock()

    def _get_sandbox(self) -> Any:
        with self._lock:
            if self._sandbox is None:
                from rlvr.execution.sandbox import Sandbox

                self._sandbox = Sandbox(self.workers, self.limits)
                weakref.finalize(self, self._sandbox.close)
            return self._sandbox

    def warm_up(self) -> None:
        """Start and isolate the workers now, so the first batch does not wait for them."""
        self._get_sandbox().warm_up()

    def close(self) -> None:
        """Stop the sandbox's workers; a later verification starts new ones."""
        with self._lock:
            if self._sandbox is not None:
                self._sandbox.close()
                self._sandbox = None

    def _prepare(self, completion: str, problem: Problem) -> Verdict | dict[str, Any]:
        suite = problem.reference
        if not (
            isinstance(suite, Mapping)
            and isinstance(suite.get("tests"), Sequence)
            and suite["tests"]
            and all(isinstance(t, str) for t in suite["tests"])
        ):
            return Verdict.unscorable("the reference is not a test suite (a mapping with a non-empty list 'tests')")
        program = extract_program(completion, self.extract)
        if program is None or not program.strip():
            return Verdict.incorrect("no program found in the completion", passed=0, total=len(suite["tests"]))
        if len(program) > self.max_program_chars:
            return Verdict.incorrect(f"program longer than {self.max_program_chars} characters", passed=0)
        prefix, entry = suite.get("prefix") or "", suite.get("entry_point")
        if prefix:
            program = prefix + "\n\n" + program if entry and _defines(program, entry) else prefix + program
        return {
            "program": program,
            "setup": suite.get("setup") or "",
            "tests": list(suite["tests"]),
            "entry_point": entry,
        }

    def batch(self, completions: Sequence[str], problems: Sequence[Problem]) -> list[Verdict]:
        """Score several completions, running their programs together in the sandbox.

        Completions with no program or a malformed reference are scored without
        running anything; the rest run in one sandbox call, in parallel.

        Args:
            completions: the completions to score.
            problems: the problem of each completion, in the same order.

        Returns:
            One verdict per completion, in order.
        """
        prepared = [self._prepare(c, p) for c, p in zip(completions, problems, strict=True)]
        payloads = [p for p in prepared if isinstance(p, dict)]
        runs = iter(self._get_sandbox().run(payloads) if payloads else [])
        return [p if isinstance(p, Verdict) else self._verdict(p, next(runs)) for p in prepared]

    def __call__(self, completion: str, problem: Problem) -> Verdict:
        """Score one completion; see :meth:`batch`."""
        return self.batch([completion], [problem])[0]

    def _verdict(self, payload: dict[str, Any], run: Any) -> Verdict:
        total = len(payload["tests"])
        if run.status == "error":
            return Verdict.error(f"the sandbox failed: {run.error}")
        events = {r.get("event"): r for r in run.report if "event" in r}
        results = {r["test"]: r for r in run.report if isinstance(r.get("test"), int) and 0 <= r["test"] < total}
        if run.status == "timeout":
            cause = "timeout"
        elif run.status == "signaled":
            cause = f"killed by {run.signal}"
        else:
            cause = "not run: the program exited before this test"
        for name in ("setup", "load"):
            if name in events and not events[name].get("ok"):
                if name == "setup":
                    return Verdict.unscorable(events[name].get("why", "the tests' setup failed"))
                cause = events[name].get("why", "the program did not load")
        failures = [
            {"test": i, "why": results[i].get("why", "failed") if i in results else cause}
            for i in range(total)
            if not (i in results and results[i].get("ok") is True)
        ]
        passed = total - len(failures)
        score = passed / total if self.mode == "fraction" else float(passed == total)
        details = {
            "passed": passed,
            "total": total,
            "failures": failures[:20],
            "run": run.status,
            "stderr": run.stderr[-500:],
        }
        if passed == total:
            return Verdict.correct(**details)
        return Verdict(score, "incorrect", {"reason": f"{len(failures)} of {total} tests failed", **details})
