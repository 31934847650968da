"""The stub that runs inside the sandboxed interpreter: load the program, answer calls.

This file never runs in the verifier's process: the source of
:mod:`rlvr.execution.wire` followed by this file's is loaded, as one module
that imports nothing of rlvr, into each worker's template interpreter
(``python -I -S``, empty environment; :mod:`rlvr.execution.template`), and each
run's program process, forked from it and confined, calls :func:`serve`.
Descriptor 3 brings requests from the judge, 4 takes answers back; 0 is
``/dev/null``; 1 and 2 go to the worker, which keeps a capped tail.

Nothing here is trusted: the program shares this process and may rewrite any
of it. What it can send back is only what the judge's strict decoder accepts
(:mod:`rlvr.execution.wire`): a forged answer is just a return value, judged
as one.
"""

import io
import sys

REQUESTS, ANSWERS = 3, 4


def _describe(exc):
    try:
        text = str(exc)
    except BaseException:
        text = ""
    name = type(exc).__name__
    return (f"{name}: {text}" if text else name)[:300]


def _load(job, namespace):
    """Exec the setup (when sent) and the program; returns setup classes and a load failure ("" if none)."""
    setup_ns = {"__name__": "tests"}
    exec(compile(job.get("setup") or "", "<setup>", "exec", dont_inherit=True), setup_ns)
    classes = {k: v for k, v in setup_ns.items() if isinstance(v, type) and v.__module__ == "tests"}
    namespace.update({k: v for k, v in setup_ns.items() if not k.startswith("__")})
    try:
        code = compile(job["program"], "<program>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, OverflowError, MemoryError, RecursionError) as exc:
        return classes, "syntax error: " + _describe(exc)
    try:
        exec(code, namespace)
    except SystemExit:
        return classes, "the program called exit while loading"
    except BaseException as exc:
        return classes, "the program raised while loading: " + _describe(exc)
    return classes, ""


def _call(message, namespace, classes):
    function = namespace.get(message["call"])
    if not callable(function):
        return {"missing": message["call"]}
    try:
        value = function(*from_wire(message["args"], classes), **from_wire(message["kwargs"], classes))  # noqa: F821
    except SystemExit:
        return {"exit": 1}
    except BaseException as exc:
        return {"raised": type(exc).__name__, "message": _describe(exc)}
    try:
        wired = to_wire(value, classes)  # noqa: F821
        to_json(wired)  # noqa: F821 - fails here (not in send) on an integer over 4300 digits
        return {"value": wired}
    except (WireError, RecursionError, ValueError) as exc:  # noqa: F821
        return {"bad": _describe(exc).partition(": ")[2] or "an unencodable value"}


def _run_script(source, stdin_text):
    """Run ``source`` as ``__main__`` with ``stdin_text`` as its input; what it printed and how it ended."""
    real = sys.stdin, sys.stdout
    out = io.BytesIO()
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin_text.encode()), encoding="utf-8")
    sys.stdout = stdout = io.TextIOWrapper(out, encoding="utf-8", write_through=True)
    raised = ""
    try:
        exec(compile(source, "<program>", "exec", dont_inherit=True), {"__name__": "__main__"})
    except SystemExit as exc:
        raised = "" if exc.code in (None, 0) else f"exit status {exc.code!r:.40}"
    except BaseException as exc:
        raised = _describe(exc)
    try:
        stdout.flush()
    except BaseException:
        pass
    printed = out.getvalue() if not out.closed else b""
    sys.stdin, sys.stdout = real
    return {"output": printed.decode("utf-8", "replace"), "raised": raised}


def _script(job):
    """Script mode: the program is the whole process; its exit status is the result."""
    try:
        exec(compile(job["program"], "<program>", "exec", dont_inherit=True), {"__name__": "__main__"})
    except SystemExit as exc:
        code = exc.code
        sys.exit(code if isinstance(code, int) else (0 if code is None else 1))


def serve(config):
    """Announce readiness, take one job, answer the judge until it closes the channel.

    ``config`` is the largest frame accepted, then the library folders to import from, one a line.
    """
    limit, *paths = config.split("\n")
    sys.path.extend(paths)
    limit = int(limit)
    send(ANSWERS, {"ready": 1})  # noqa: F821
    job = receive_trusted(REQUESTS, limit)  # noqa: F821
    if job["mode"] == "script":
        _script(job)
        return
    namespace = {"__name__": "solution"}
    try:
        classes, failure = _load(job, namespace) if job["mode"] == "functions" else ({}, "")
    except BaseException as exc:
        classes, failure = {}, "the tests' setup failed in the program's process: " + _describe(exc)
    names = [n for n in job.get("names", []) if callable(namespace.get(n))]
    send(ANSWERS, {"loaded": not failure, "why": failure, "functions": names})  # noqa: F821
    if failure:
        return
    while True:
        try:
            message = receive_trusted(REQUESTS, limit)  # noqa: F821
        except ChannelClosed:  # noqa: F821
            return
        if message is None:
            return
        if "run" in message:
            answer = _run_script(job["program"], message["run"])
        else:
            answer = _call(message, namespace, classes)
        send(ANSWERS, answer)  # noqa: F821
