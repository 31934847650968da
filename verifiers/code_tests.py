"""The code-test verifier: judge a completion's program against the problem's tests, out of its reach.

A problem's ``reference`` is either a test suite, a mapping with

* ``tests``: a list of test snippets, each run on its own (``assert f(2) == 4``);
* ``setup`` (optional): trusted code run before the tests in their own namespace
  (helpers, imports, constants the tests use);
* ``entry_point`` (optional): the function the tests call as ``candidate``
  (HumanEval style); without it, tests call the program's functions by name (MBPP style);
* ``prefix`` (optional): code the program is built on, e.g. HumanEval's
  signature and docstring. A completion that defines the entry point itself is
  run after the prefix (its definition wins); one that does not is taken as the
  continuation of the prefix (a function body);

or a stdin/stdout suite (APPS, CodeContests style): ``io``, a list of
``{"input": str, "output": str}`` cases (or ``inputs`` and ``outputs``, two
lists). Each case runs the program as ``__main__`` with the input on
``sys.stdin``; what it prints to ``sys.stdout`` must match the output line by
line (trailing spaces and blank lines at either end ignored), compared by the judge.

Tests run in the judge's process (:mod:`rlvr.execution.harness`), the program
in a confined interpreter of its own (:mod:`rlvr.execution.sandbox`).
:func:`suite_from_check` turns HumanEval's ``def check(candidate): ...`` into
a test suite, one test per ``assert``.
"""

from __future__ import annotations

import ast
import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from rlvr.types import Problem, Verdict
from rlvr.verifiers.code_extract import EXTRACT_RULES, defines, extract_program

__all__ = ["CodeTests", "extract_program", "io_cases", "suite_from_check"]


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


def io_cases(reference: Mapping[str, Any]) -> list[dict[str, str]] | None:
    """The stdin/stdout cases of a reference (``io``, or ``inputs`` + ``outputs``), or None if it has none.

    Raises:
        ValueError: cases that are not strings, or lists of unequal length.
    """
    if "io" in reference:
        cases = reference["io"]
        if not (isinstance(cases, Sequence) and all(isinstance(c, Mapping) for c in cases)):
            raise ValueError("'io' must be a list of {'input': str, 'output': str}")
        cases = [{"input": c.get("input"), "output": c.get("output")} for c in cases]
    elif "inputs" in reference and "outputs" in reference:
        inputs, outputs = list(reference["inputs"]), list(reference["outputs"])
        if len(inputs) != len(outputs):
            raise ValueError("'inputs' and 'outputs' differ in length")
        cases = [{"input": i, "output": o} for i, o in zip(inputs, outputs, strict=True)]
    else:
        return None
    if not cases or not all(isinstance(c["input"], str) and isinstance(c["output"], str) for c in cases):
        raise ValueError("stdin/stdout cases need a string 'input' and 'output' each, and at least one case")
    return cases


class CodeTests:
    """Score = the fraction of the problem's tests the program passes (or all-or-nothing).

    Args:
        mode: ``"fraction"`` (passed / total) or ``"all"`` (1 only if every test passes).
        extract: how the program is read from the completion (:func:`extract_program`).
        limits: :class:`rlvr.execution.sandbox.Limits` of one program run (wall time, memory...).
        workers: programs run in parallel.
        backend: where the sandbox's workers run: ``"local"`` or ``"ray"`` (across
            a Ray cluster's nodes, each program in the same confined interpreter);
            None reads ``RLVR_POOL_BACKEND`` (:class:`rlvr.execution.sandbox.Sandbox`).
        max_program_chars: longer programs score 0 without running.
        max_completion_chars: longer completions score 0 without being read at all.

    Verdicts: a program that fails any test is INCORRECT with ``details`` listing
    each failure and why (``assertion failed``, ``exception: ...``, ``timeout``,
    ``killed by SIGKILL``, ``syntax error: ...``). Whatever happens once the
    program runs is the program's: a timeout, a crash, a lost worker, garbage on
    the channel all score 0 (INCORRECT), never ERROR. A reference that is not a
    test suite, or whose setup fails, is UNSCORABLE; ERROR only means the
    sandbox could not start a run, or that a Ray worker or node was lost with
    it (after one retry on fresh workers). Reading the
    completion is linear-time and bounded; a completion that still breaks it
    (``MemoryError``, ``RecursionError``) is INCORRECT, alone.
    """

    name = "code-tests"

    def __init__(
        self,
        mode: str = "fraction",
        extract: str = "auto",
        limits: Any = None,
        workers: int | None = None,
        max_program_chars: int = 100_000,
        max_completion_chars: int = 1_000_000,
        backend: str | None = None,
    ) -> None:
        from rlvr.execution.sandbox import Limits
        from rlvr.execution.workers import resolve_backend

        if mode not in ("fraction", "all"):
            raise ValueError(f"mode must be 'fraction' or 'all', got {mode!r}")
        if extract not in EXTRACT_RULES:
            raise ValueError(f"extract must be one of {EXTRACT_RULES}, got {extract!r}")
        if isinstance(limits, Mapping):
            limits = Limits(**limits)
        self.mode, self.extract, self.limits = mode, extract, limits or Limits()
        self.workers, self.max_program_chars = workers, int(max_program_chars)
        self.max_completion_chars = int(max_completion_chars)
        self.backend = resolve_backend(backend)
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

                self._sandbox = Sandbox(self.workers, self.limits, backend=self.backend)
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
        if not isinstance(suite, Mapping):
            return Verdict.unscorable("the reference is not a test suite (a mapping with 'tests' or 'io')")
        try:
            cases = io_cases(suite)
        except (ValueError, TypeError) as exc:
            return Verdict.unscorable(f"the reference's stdin/stdout cases are malformed: {exc}")
        tests = suite.get("tests")
        if cases is None and not (
            isinstance(tests, Sequence)
            and tests
            and all(isinstance(t, str) for t in tests)
            and not isinstance(tests, str)
        ):
            return Verdict.unscorable("the reference is not a test suite (a mapping with a non-empty list 'tests')")
        total = len(cases) if cases is not None else len(tests)
        if not isinstance(completion, str):
            return Verdict.incorrect("the completion is not text", passed=0, total=total)
        if len(completion) > self.max_completion_chars:
            return Verdict.incorrect(f"completion longer than {self.max_completion_chars} characters", passed=0)
        try:
            program = self._program(completion, suite, cases is not None)
        except (MemoryError, RecursionError, ValueError) as exc:  # this completion's failure, not the batch's
            return Verdict.incorrect(f"the completion could not be read: {type(exc).__name__}", passed=0, total=total)
        if program is None or not program.strip():
            return Verdict.incorrect("no program found in the completion", passed=0, total=total)
        if len(program) > self.max_program_chars:
            return Verdict.incorrect(f"program longer than {self.max_program_chars} characters", passed=0)
        if cases is not None:
            return {"program": program, "io": cases}
        return {
            "program": program,
            "setup": suite.get("setup") or "",
            "tests": list(tests),
            "entry_point": suite.get("entry_point"),
        }

    def _program(self, completion: str, suite: Mapping[str, Any], io: bool) -> str | None:
        program = extract_program(completion, self.extract)
        if program is None or not program.strip() or io:
            return program
        prefix, entry = suite.get("prefix") or "", suite.get("entry_point")
        if prefix:
            program = prefix + "\n\n" + program if entry and defines(program, entry) else prefix + program
        return program

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
        return [p if isinstance(p, Verdict) else verdict_of(p, next(runs), self.mode) for p in prepared]

    def __call__(self, completion: str, problem: Problem) -> Verdict:
        """Score one completion; see :meth:`batch`."""
        return self.batch([completion], [problem])[0]


_CAUSES = {
    "timeout": "timeout",
    "lost": "the sandbox worker died while the program ran",
    "done": "not run",
    "exited": "not run: the program exited before this test",
}


def verdict_of(payload: dict[str, Any], run: Any, mode: str = "fraction") -> Verdict:
    """The verdict on one run (a :class:`rlvr.execution.sandbox.RunResult`) of ``payload``.

    A test passes only when the judge recorded it passed; every test without a
    record failed for the run's reason (timeout, the signal that killed it, ...).
    """
    total = len(payload["io"] if "io" in payload else payload["tests"])
    if run.status == "error":
        return Verdict.error(f"the sandbox failed: {run.error}")
    events = {r.get("event"): r for r in run.report if "event" in r}
    results = {r["test"]: r for r in run.report if isinstance(r.get("test"), int) and 0 <= r["test"] < total}
    cause = _CAUSES.get(run.status, f"killed by {run.signal}")
    if "setup" in events:
        return Verdict.unscorable(events["setup"].get("why", "the tests' setup failed"))
    if "load" in events and not events["load"].get("ok"):
        cause = events["load"].get("why", "the program did not load")
    elif "judge failed" in events:
        cause = "the judge failed: " + events["judge failed"].get("why", "")
    failures = [
        {"test": i, "why": results[i].get("why", "failed") if i in results else cause}
        for i in range(total)
        if not (i in results and results[i].get("ok") is True)
    ]
    passed = total - len(failures)
    score = passed / total if mode == "fraction" else float(passed == total)
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
