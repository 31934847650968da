"""Tools a policy may call in an episode: declaration, parsing from model output, bounded execution.

A :class:`Tool` is a name, a JSON-schema object of arguments and a function that
returns text. A model calls tools in the tag format that Hermes- and Qwen-style
chat templates use, and that rlvr documents for tokenizers whose template has
none (SmolLM2's)::

    <tool_call>{"name": "python", "arguments": {"code": "print(347 * 58)"}}</tool_call>

``"parameters"`` is accepted in place of ``"arguments"`` (Llama 3's key). A turn
may hold several calls. :func:`parse_tool_calls` never raises: a malformed call
(unclosed tag, bad JSON, not an object, unknown tool, arguments that do not fit
the schema) becomes a :class:`ToolCall` carrying its ``error``, which
:func:`call_tools` reports back as the tool's observation. Limits: the text
parsed is cut at ``max_chars``, at most ``max_calls`` calls are read, a call's
JSON is at most ``max_call_chars`` characters, and the schema check covers the
JSON types, ``required``, ``enum`` and ``additionalProperties: false`` (not
nested schemas' own keywords beyond ``type``).

:func:`python_tool` runs code in :class:`rlvr.execution.sandbox.Sandbox` with its
limits; a hang (wall time) or a flood (output cap) is cut off and said so in the
observation.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CALL_CLOSE",
    "CALL_OPEN",
    "Tool",
    "ToolCall",
    "ToolResult",
    "call_tools",
    "format_call",
    "parse_tool_calls",
    "python_tool",
    "validate_arguments",
]

CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


@dataclass(frozen=True)
class Tool:
    """A callable tool.

    Attributes:
        name: what the model writes in ``"name"``.
        description: one line for the model (in the prompt or the template's tool list).
        parameters: a JSON schema of type ``object`` (``properties``, ``required``).
        fn: called with the arguments as keyword arguments; returns the observation text.
            An exception it raises is reported to the model, never propagated.
    """

    name: str
    description: str
    parameters: Mapping[str, Any]
    fn: Callable[..., str]

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValueError(f"a tool name is letters, digits and underscores, got {self.name!r}")
        if self.parameters.get("type") != "object":
            raise ValueError(f"tool {self.name!r}: parameters must be a JSON schema of type 'object'")

    def spec(self) -> dict[str, Any]:
        """The OpenAI-style function spec that ``apply_chat_template(tools=...)`` takes."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": dict(self.parameters)},
        }


@dataclass(frozen=True)
class ToolCall:
    """One parsed call: ``name`` and ``arguments``, or ``error`` saying why it cannot run."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    error: str = ""


@dataclass(frozen=True)
class ToolResult:
    """What a call returned: ``ok`` is False for a malformed call, a raising tool or a cut-off run."""

    name: str
    ok: bool
    output: str


def _type_ok(value: Any, kind: Any) -> bool:
    kinds = kind if isinstance(kind, list) else [kind]
    for k in kinds:
        types = _JSON_TYPES.get(k)
        if types is None:
            continue
        if k in ("integer", "number") and isinstance(value, bool):
            continue
        if isinstance(value, types):
            return True
    return False


def validate_arguments(schema: Mapping[str, Any], arguments: Any) -> str:
    """Why ``arguments`` do not fit the object ``schema``, or ``""`` when they do.

    Checks: an object; ``required`` keys present; each property's ``type`` and
    ``enum``; no unknown keys when ``additionalProperties`` is false.
    """
    if not isinstance(arguments, dict):
        return f"arguments must be a JSON object, got {type(arguments).__name__}"
    props = schema.get("properties", {})
    missing = [k for k in schema.get("required", []) if k not in arguments]
    if missing:
        return f"missing required argument(s): {', '.join(missing)}"
    for key, value in arguments.items():
        if key not in props:
            if schema.get("additionalProperties", True) is False:
                return f"unknown argument {key[:40]!r}; expected: {', '.join(props) or 'none'}"
            continue
        rule = props[key]
        if "type" in rule and not _type_ok(value, rule["type"]):
            return f"argument {key!r} must be of type {rule['type']}, got {type(value).__name__}"
        if "enum" in rule and value not in rule["enum"]:
            return f"argument {key!r} must be one of {rule['enum']}"
    return ""


def _decode_call(body: str, tools: Mapping[str, Tool], max_call_chars: int) -> ToolCall:
    """One call from the JSON between the tags (never raises)."""
    if len(body) > max_call_chars:
        return ToolCall("", error=f"tool call longer than {max_call_chars} characters")
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than the parser's stack
        return ToolCall("", error=f"tool call is not valid JSON: {str(exc)[:120]}")
    if not isinstance(obj, dict):
        return ToolCall("", error='a tool call is a JSON object: {"name": ..., "arguments": {...}}')
    name = obj.get("name")
    if not isinstance(name, str):
        return ToolCall("", error='a tool call needs a "name" string')
    if name not in tools:
        return ToolCall(name[:64], error=f"unknown tool {name[:64]!r}; available: {', '.join(sorted(tools)) or 'none'}")
    arguments = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(arguments, str):  # some templates emit the arguments as a JSON string
        try:
            arguments = json.loads(arguments)
        except (ValueError, RecursionError):
            return ToolCall(name, error="arguments given as a string that is not a JSON object")
    problem = validate_arguments(tools[name].parameters, arguments)
    if problem:
        return ToolCall(name, error=problem)
    return ToolCall(name, arguments)


def parse_tool_calls(
    text: str,
    tools: Sequence[Tool],
    *,
    max_calls: int = 4,
    max_chars: int = 65_536,
    max_call_chars: int = 16_384,
) -> list[ToolCall]:
    """The tool calls in a model turn, in order; ``[]`` when it makes none (a final answer).

    Scans for ``<tool_call>...</tool_call>`` with plain string search (linear time,
    no regular expression to backtrack). An opening tag without a closing one is a
    malformed call. Calls beyond ``max_calls`` are reported as one malformed call.
    Never raises on any string.
    """
    text = text[:max_chars]
    by_name = {t.name: t for t in tools}
    calls: list[ToolCall] = []
    pos = 0
    while True:
        start = text.find(CALL_OPEN, pos)
        if start < 0:
            break
        if len(calls) == max_calls:
            calls.append(ToolCall("", error=f"more than {max_calls} tool calls in one turn; the rest were not run"))
            break
        end = text.find(CALL_CLOSE, start + len(CALL_OPEN))
        if end < 0:
            calls.append(ToolCall("", error=f"{CALL_OPEN} without {CALL_CLOSE}"))
            break
        calls.append(_decode_call(text[start + len(CALL_OPEN) : end].strip(), by_name, max_call_chars))
        pos = end + len(CALL_CLOSE)
    return calls


def format_call(name: str, arguments: Mapping[str, Any]) -> str:
    """The text of a call in the tag format (for prompts' examples and tests)."""
    return f"{CALL_OPEN}{json.dumps({'name': name, 'arguments': dict(arguments)})}{CALL_CLOSE}"


def call_tools(calls: Sequence[ToolCall], tools: Sequence[Tool], *, max_output_chars: int = 2_000) -> list[ToolResult]:
    """Run each call; a malformed call or a raising tool gives an error result, never an exception.

    Outputs longer than ``max_output_chars`` are cut and marked.
    """
    by_name = {t.name: t for t in tools}
    results = []
    for call in calls:
        if call.error:
            results.append(ToolResult(call.name, False, f"error: {call.error}"))
            continue
        try:
            output, ok = by_name[call.name].fn(**call.arguments), True
            if not isinstance(output, str):
                output = str(output)
        except Exception as exc:  # the tool's failure is the model's observation
            output, ok = f"error: {type(exc).__name__}: {str(exc)[:200]}", False
        if len(output) > max_output_chars:
            output = output[:max_output_chars] + f"\n[output cut at {max_output_chars} characters]"
        ok = ok and not output.startswith("error:")
        results.append(ToolResult(call.name, ok, output))
    return results


_SANDBOXES: dict[Any, Any] = {}
_SANDBOX_LOCK = threading.Lock()


def _shared_sandbox(limits: Any) -> Any:
    """One sandbox per set of limits for the process (its workers start once)."""
    from rlvr.execution.sandbox import Sandbox

    with _SANDBOX_LOCK:
        if limits not in _SANDBOXES:
            _SANDBOXES[limits] = Sandbox(workers=1, limits=limits)
        return _SANDBOXES[limits]


# Run inside the sandbox around the model's code, so that parsing hostile source
# happens there too: like a notebook cell, a final expression's value is printed.
_CELL = """import ast
tree = ast.parse({source!r}, "<tool>")
if tree.body and isinstance(tree.body[-1], ast.Expr):
    value = tree.body.pop().value
    tree.body.append(ast.parse("if _ is not None: print(repr(_))").body[0])
    tree.body.insert(len(tree.body) - 1, ast.Assign([ast.Name("_", ast.Store())], value))
    ast.fix_missing_locations(tree)
exec(compile(tree, "<tool>", "exec"), {{"__name__": "__main__"}})
"""


def python_tool(limits: Any = None, sandbox: Any = None) -> Tool:
    """A ``python`` tool: runs ``code`` in the sandbox like a notebook cell and returns what it printed.

    Like a notebook cell, a final expression's value is printed too (``347 * 58``
    answers ``20126``), unless it is ``None``.

    Args:
        limits: a :class:`rlvr.execution.sandbox.Limits`; default 3 s wall time,
            256 MB, 4 KiB of output per stream.
        sandbox: a :class:`rlvr.execution.sandbox.Sandbox` to run in; default one shared
            per ``limits`` in this process, started on first use.

    The observation is stdout (and the last lines of stderr after a crash), with
    ``[timed out after S s]`` for a hang and ``[output cut at N bytes]`` for a flood.
    """
    from rlvr.execution.sandbox import Limits

    limits = limits or Limits(wall_seconds=3.0, memory_mb=256, max_output_bytes=4096)

    def run(code: str) -> str:
        box = sandbox or _shared_sandbox(limits)
        (result,) = box.run([{"program": _CELL.format(source=code)}], limits)
        out = result.stdout
        if result.stdout_truncated:
            out += f"\n[output cut at {limits.max_output_bytes} bytes]"
        if result.status == "timeout":
            return f"error: [timed out after {limits.wall_seconds:g} s]\n{out}".rstrip()
        if result.status == "error":
            return f"error: the sandbox failed: {result.error[:200]}"
        if result.status in ("signaled", "lost"):
            return f"error: the program was killed ({result.signal or result.status})\n{out}".rstrip()
        if result.exit_code:
            tail = result.stderr.strip().splitlines()[-3:]
            return "error: " + "\n".join([*([out.rstrip()] if out.strip() else []), *tail])
        return out if out.strip() else "(no output: print the result)"

    schema = {
        "type": "object",
        "properties": {"code": {"type": "string", "description": "Python source; print what you need"}},
        "required": ["code"],
        "additionalProperties": False,
    }
    return Tool("python", "Run Python code and return what it prints.", schema, run)
