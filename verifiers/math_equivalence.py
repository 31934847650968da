"""Math answer equivalence on ``math-verify`` (which parses LaTeX into ``sympy``).

The verifier extracts the answer with explicit rules, rejects answer spraying,
checks the answer's form, and only then asks ``math-verify`` whether the answer
and the reference are equivalent. That last step runs in a killable worker
process (:class:`rlvr.execution.workers.WorkerPool`) with a hard wall-time bound and a
memory limit, so a hostile answer (``10^{10^{10}}``, a megabyte of digits) costs
at most ``timeout_seconds`` and earns 0, on any thread, in any process.

The worker processes are local, or, with ``backend="ray"``, spread over a Ray
cluster's CPU nodes (:class:`rlvr.execution.ray_pool.RayPool`) with the same
bounds and verdicts.

Statuses: CORRECT / INCORRECT are caused by the completion (a timeout or a
memory blow-up while checking the *answer* counts as INCORRECT); UNSCORABLE
means the reference has no mathematical content; ERROR means the machinery
failed (a worker crashed, math-verify raised, a Ray worker or node was lost
twice), and says nothing of the completion.
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import re
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from rlvr.types import Problem, Verdict
from rlvr.verifiers.extract import (
    _CHAT_LEAK,
    RULES,
    _choice_letter,
    _chosen_letter,
    _parts,
    extract_answers,
)

__all__ = ["RULES", "MathVerifier", "extract_answers"]

_PRELOAD = ("sympy", "math_verify", "rlvr.verifiers.math_equivalence")
_ASCII_RELATIONS = (("!=", "\\neq "), (">=", "\\geq "), ("<=", "\\leq "), ("\\gt", ">"), ("\\lt", "<"))
_DECIMAL_COMMA = re.compile(r"(?<![\d,])(\d+),(\d{1,2})(?![\d,])")


def _normalize(text: str) -> str:
    r"""Rewrite spellings math-verify reads differently.

    These are ``>=`` / ``\gt``, and a decimal comma (``2,74``: two digits after the
    only comma, outside any bracket, which a thousands group or a tuple never is).
    """
    for ascii_form, latex in _ASCII_RELATIONS:
        text = text.replace(ascii_form, latex)
    if text.count(",") == 1 and not any(b in text for b in "()[]{}"):  # one number, not a tuple
        text = _DECIMAL_COMMA.sub(r"\1.\2", text)
    return _thousands(text)


def _normal(answer: str) -> str:
    return re.sub(r"\s+", "", answer).replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")


# -- the check that runs in a worker ----------------------------------------------------
def _quiet() -> None:
    """math-verify warns on every call made without its own timeout; ours bounds time."""
    import logging

    logging.getLogger("math_verify").setLevel(logging.ERROR)


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> tuple:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    config = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    return tuple(parse(f"${text}$", extraction_config=config, parsing_timeout=None))


def _number_form(expr: Any) -> bool:
    """Whether a parsed expression is a number written as a number.

    That is an atom (``104``, ``1/2``, ``0.5``), a negated one, or a percentage
    (``28*(1/100)``); the right side of ``x = 11`` counts.
    """
    import sympy

    if isinstance(expr, sympy.Equality):
        expr = expr.rhs
    if isinstance(expr, sympy.Mul) and len(expr.args) == 2 and sympy.Rational(1, 100) in expr.args:
        expr = next(a for a in expr.args if a != sympy.Rational(1, 100))
    if isinstance(expr, sympy.Mul) and len(expr.args) == 2 and sympy.S.NegativeOne in expr.args:
        expr = next(a for a in expr.args if a != sympy.S.NegativeOne)
    return bool(getattr(expr, "is_Number", False))


def plain_math_verify(gold: str, prediction: str) -> bool:
    """Whether math-verify alone finds ``prediction`` equivalent to ``gold``.

    math-verify runs with its defaults and none of rlvr's rules: this is the peer
    that ``benchmarks/verifiers.py`` measures, sequentially and through the worker
    pool. Any exception counts as not equivalent.
    """
    from math_verify import parse, verify

    _quiet()
    try:
        return bool(verify(parse(gold), parse(prediction)))
    except Exception:
        return False


def _check(answer: str, gold: str, float_rounding: int, literal_numbers: bool = False) -> tuple[str, str, str]:
    """``(status, reason, parsed)``: the equivalence test, run inside a worker."""
    from math_verify import verify

    _quiet()
    gold_parsed = _parse(_normalize(gold))
    if not any(not isinstance(g, str) for g in gold_parsed):
        return "unscorable", f"cannot parse the reference {gold[:200]!r}", ""
    pred = _parse(_normalize(answer))
    if not pred:
        return "incorrect", "cannot parse the answer", ""
    if literal_numbers and _number_form(gold_parsed[0]) and not _number_form(pred[0]):
        return "incorrect", "the reference is a number but the answer is not one", str(pred[0])[:200]
    same = verify(list(gold_parsed), list(pred), float_rounding=float_rounding, timeout_seconds=None)
    return ("correct" if same else "incorrect"), ("" if same else "not equivalent"), str(pred[0])[:200]


class MathVerifier:
    r"""1 when the extracted answer is mathematically equivalent to the reference.

    Args:
        extract: the extraction rules to try, in order (see :func:`extract_answers`);
            the default ``("boxed",)`` reads only ``\boxed{}``. A completion none of
            the rules reads is incorrect: the verifier never searches the rest of the
            text for a number, so an answer that merely appears does not win by accident.
        reject_multiple: several *different* answers found by the winning rule score
            0 (answer spraying must not be rewarded); identical repeats pass.
        float_rounding: decimal places numbers are compared at (numeric tolerance).
        timeout_seconds: hard wall-time bound of one check, in a killable worker.
        isolation: ``"process"`` (default: worker processes, hard bounds) or
            ``"inline"`` (same process; math-verify's own ``signal`` timeout, which
            holds only on the main thread). Inside a daemonic process (a
            multiprocessing pool worker), which may not start children, the verifier
            falls back to inline.
        workers / memory_limit_mb: size and per-worker address-space limit of the pool
            (with ``backend="ray"``, ``workers`` Ray actors; None: one per CPU of
            this machine, or of the cluster).
        backend: where the pool's workers run: ``"local"`` (processes on this
            machine) or ``"ray"`` (a Ray cluster: ``pip install 'rlvr[ray]'``; the
            process's Ray connection, else ``ray.init()``); None reads the
            ``RLVR_POOL_BACKEND`` environment variable, else ``"local"``.
        max_answer_chars / max_nesting: answers longer or more deeply bracketed than
            this are incorrect without parsing.
        literal_numbers: when the reference is a number (``104``, ``-0.5``,
            ``\frac{3}{4}``, ``1,000``, ``50\%``), the answer must be a number too,
            not an expression that evaluates to it. Without this rule a policy
            learns to box the question (``\boxed{11 + 93}``), which a symbolic
            grader accepts: measured on SmolLM2-135M, GRPO found that exploit in
            40 steps and scored 100% on held-out problems without adding anything.
        choices: a reference that is a multiple-choice letter (``C``, ``(C) Cecile``)
            is compared with the letter the completion chooses: the first standalone
            A-E after "answer", else the first in the text.

    A reference with several parts (``(2, 2), (6, 2)``, ``{1, 2, 3}``) may be
    answered in as many boxes; that is not spraying, and the boxes are compared
    together.
    """

    name = "math"

    def __init__(
        self,
        extract: str | Sequence[str] = ("boxed",),
        reject_multiple: bool = True,
        float_rounding: int = 6,
        timeout_seconds: float = 3.0,
        isolation: str = "process",
        workers: int | None = 2,
        memory_limit_mb: int = 2048,
        max_answer_chars: int = 1000,
        max_nesting: int = 12,
        literal_numbers: bool = True,
        choices: bool = True,
        backend: str | None = None,
    ) -> None:
        from rlvr.execution.workers import resolve_backend

        rules = (extract,) if isinstance(extract, str) else tuple(extract)
        unknown = [r for r in rules if r not in RULES]
        if not rules or unknown:
            raise ValueError(f"extract must name rules from {RULES}, got {extract!r}")
        if isolation not in ("process", "inline"):
            raise ValueError(f"isolation must be 'process' or 'inline', got {isolation!r}")
        self.rules = rules
        self.reject_multiple = bool(reject_multiple)
        self.float_rounding = int(float_rounding)
        self.timeout_seconds = float(timeout_seconds)
        self.isolation = isolation
        self.workers, self.memory_limit_mb = (int(workers) if workers else None), int(memory_limit_mb)
        self.backend = resolve_backend(backend)
        self.max_answer_chars = int(max_answer_chars)
        self.max_nesting = int(max_nesting)
        self.literal_numbers = bool(literal_numbers)
        self.choices = bool(choices)
        self._pool: Any = None
        self._lock = threading.Lock()

    # The pool is per instance and is not pickled: a copy in another process starts its own.
    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_pool", "_lock")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._pool, self._lock = None, threading.Lock()

    def _get_pool(self) -> Any:
        if self.isolation == "inline" or mp.current_process().daemon:
            return None
        with self._lock:
            if self._pool is None:
                if self.backend == "ray":
                    from rlvr.execution.ray_pool import RayPool as Pool
                else:
                    from rlvr.execution.workers import WorkerPool as Pool

                self._pool = Pool(
                    self.workers, self.memory_limit_mb, preload=_PRELOAD, warmup=(_check, ("1/2", "0.5", 6, True))
                )
                weakref.finalize(self, self._pool.close)
            return self._pool

    def warm_up(self) -> None:
        """Start the worker processes now and wait until they are ready.

        Starting takes a second or two of imports; doing it now means the first real
        batch does not pay for it. Does nothing when checks run inline.
        """
        pool = self._get_pool()
        if pool is not None:
            with self._lock:
                pool.wait_ready()

    def _prepare(self, completion: str, problem: Problem) -> Verdict | tuple[str, str]:
        """A verdict decided without math, or the ``(answer, gold)`` to check."""
        reference = problem.reference
        if not isinstance(reference, str | int | float) or isinstance(reference, bool) or not str(reference).strip():
            return Verdict.unscorable(f"the reference {str(reference)[:200]!r} is not a math answer")
        gold_letter = _choice_letter(str(reference)) if self.choices else None
        if gold_letter is not None:
            chosen = _chosen_letter(_CHAT_LEAK.sub("", completion))
            if chosen == gold_letter:
                return Verdict.correct(extracted=chosen)
            return Verdict.incorrect(
                "a different choice" if chosen else "no choice letter found", extracted=chosen or ""
            )
        found = extract_answers(completion, self.rules)
        if found is None:
            return Verdict.incorrect(f"no answer found (rules: {', '.join(self.rules)})")
        rule, answers = found
        distinct = list(dict.fromkeys(_normal(a) for a in answers))
        answer = answers[-1]
        if len(distinct) > 1 and len(distinct) == _parts(str(reference)):
            answer = ", ".join(dict.fromkeys(a.strip() for a in answers))  # a multi-part reference, one box per part
        elif self.reject_multiple and len(distinct) > 1:
            return Verdict.incorrect(f"{len(distinct)} different answers given", rule=rule, answers=distinct[:8])
        if len(answer) > self.max_answer_chars:
            return Verdict.incorrect(f"answer longer than {self.max_answer_chars} characters", rule=rule)
        if _nesting(answer) > self.max_nesting:
            return Verdict.incorrect(f"brackets nest deeper than {self.max_nesting}", rule=rule, extracted=answer[:200])
        return answer, str(reference)

    def _verdict(self, answer: str, result: Any) -> Verdict:
        details = {"extracted": answer[:200]}
        if result.status == "ok":
            status, reason, parsed = result.value
            details["parsed"] = parsed
            if status == "correct":
                return Verdict.correct(**details)
            if status == "unscorable":
                return Verdict.unscorable(reason)
            return Verdict.incorrect(reason, **details)
        if result.status == "timeout":
            return Verdict.incorrect(f"checking the answer took over {self.timeout_seconds:g}s", **details)
        if result.status == "error" and "MemoryError" in result.error:
            return Verdict.incorrect("checking the answer exhausted the memory limit", **details)
        return Verdict.error(f"the checker failed: {result.status}: {result.error}", **details)

    def batch(self, completions: Sequence[str], problems: Sequence[Problem]) -> list[Verdict]:
        """Score several completions, checking their answers together.

        Verdicts that need no math (no answer, spraying, a multiple-choice letter...)
        are decided here; the remaining answers are checked in the worker pool (or
        inline), each bounded by ``timeout_seconds``.

        Args:
            completions: the completions to score.
            problems: the problem of each completion, in the same order.

        Returns:
            One verdict per completion, in order.
        """
        prepared = [self._prepare(c, p) for c, p in zip(completions, problems, strict=True)]
        todo = [i for i, p in enumerate(prepared) if not isinstance(p, Verdict)]
        tasks = [(prepared[i][0], prepared[i][1], self.float_rounding, self.literal_numbers) for i in todo]
        pool = self._get_pool()
        if pool is not None:
            results = pool.map(_check, tasks, timeout=self.timeout_seconds)
        else:
            results = [_inline(task, self.timeout_seconds) for task in tasks]
        out = list(prepared)
        for i, result in zip(todo, results, strict=True):
            out[i] = self._verdict(prepared[i][0], result)
        return out  # type: ignore[return-value]

    def __call__(self, completion: str, problem: Problem) -> Verdict:
        """Score one completion; see :meth:`batch`."""
        return self.batch([completion], [problem])[0]


def _inline(task: tuple, timeout: float) -> Any:
    """Run a check in this process; math-verify's signal timeout holds on the main thread only."""
    from math_verify.errors import TimeoutException
    from math_verify.utils import timeout as signal_timeout

    from rlvr.execution.workers import TaskResult

    bound = max(1, int(round(timeout))) if threading.current_thread() is threading.main_thread() else None
    try:
        return TaskResult("ok", signal_timeout(bound)(_check)(*task))
    except TimeoutException:
        return TaskResult("timeout")
    except MemoryError:
        return TaskResult("error", error="MemoryError")
    except Exception as exc:
        return TaskResult("error", error=f"{type(exc).__name__}: {exc}")


_SPACED_THOUSANDS = re.compile(r"(?<=\d)[ ,]?\{,\}(?=\d{3})|(?<=\d) (?=\d{3}(?!\d))")


def _thousands(text: str) -> str:
    """``1 000`` and ``14{,}916`` are thousands groups; math-verify reads ``1 000`` as ``1*0``."""
    return _SPACED_THOUSANDS.sub("", text)


def _nesting(text: str) -> int:
    depth = deepest = 0
    for ch in text:
        if ch in "({[":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")}]":
            depth = max(depth - 1, 0)
    return deepest
