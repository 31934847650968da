"""Tool declaration, parsing of hostile model output, and the sandboxed Python tool's cut-offs."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlvr.tools import CALL_CLOSE, CALL_OPEN, Tool, ToolCall, call_tools, format_call, parse_tool_calls, python_tool

ADD = Tool(
    "add",
    "Add two integers.",
    {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
        "additionalProperties": False,
    },
    lambda a, b: str(a + b),
)


def boom(**_):
    raise RuntimeError("tool bug")


BROKEN = Tool("broken", "Always fails.", {"type": "object", "properties": {}}, boom)
TOOLS = [ADD, BROKEN]
settings_ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_well_formed_calls_run_in_order():
    text = "first " + format_call("add", {"a": 2, "b": 3}) + " then " + format_call("add", {"a": -1, "b": 1})
    calls = parse_tool_calls(text, TOOLS)
    assert calls == [ToolCall("add", {"a": 2, "b": 3}), ToolCall("add", {"a": -1, "b": 1})]
    assert [(r.ok, r.output) for r in call_tools(calls, TOOLS)] == [(True, "5"), (True, "0")]


def test_no_tag_is_no_call():
    assert parse_tool_calls("the answer is \\boxed{5}", TOOLS) == []


def test_the_parameters_key_and_string_arguments_are_accepted():
    text = CALL_OPEN + json.dumps({"name": "add", "parameters": {"a": 1, "b": 2}}) + CALL_CLOSE
    text += CALL_OPEN + json.dumps({"name": "add", "arguments": json.dumps({"a": 1, "b": 2})}) + CALL_CLOSE
    assert [c.arguments for c in parse_tool_calls(text, TOOLS)] == [{"a": 1, "b": 2}] * 2


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ('{"name": "add", "arguments": {"a": 1}}', "missing required"),
        ('{"name": "add", "arguments": {"a": 1, "b": "2"}}', "must be of type integer"),
        ('{"name": "add", "arguments": {"a": true, "b": 2}}', "must be of type integer"),
        ('{"name": "add", "arguments": {"a": 1, "b": 2, "c": 3}}', "unknown argument"),
        ('{"name": "rm_rf", "arguments": {}}', "unknown tool"),
        ('{"arguments": {}}', '"name"'),
        ("[1, 2]", "JSON object"),
        ("{'name': 'add'}", "not valid JSON"),
        ("[" * 10_000 + "]" * 10_000, "longer than"),
        ("[" * 5_000 + "]" * 5_000, "not valid JSON"),
    ],
)
def test_malformed_calls_become_error_observations(body, error):
    (call,) = parse_tool_calls(CALL_OPEN + body + CALL_CLOSE, TOOLS)
    assert error in call.error
    (result,) = call_tools([call], TOOLS)
    assert not result.ok and result.output.startswith("error:")


def test_unclosed_tag_too_many_calls_and_a_raising_tool():
    (call,) = parse_tool_calls(CALL_OPEN + '{"name": "add"', TOOLS)
    assert "without" in call.error
    calls = parse_tool_calls(format_call("add", {"a": 1, "b": 1}) * 6, TOOLS, max_calls=4)
    assert len(calls) == 5 and "more than 4" in calls[-1].error
    (result,) = call_tools(parse_tool_calls(format_call("broken", {}), TOOLS), TOOLS)
    assert not result.ok and "RuntimeError: tool bug" in result.output


def test_a_tool_name_and_schema_are_checked_on_declaration():
    with pytest.raises(ValueError, match="name"):
        Tool("rm -rf", "", {"type": "object"}, str)
    with pytest.raises(ValueError, match="object"):
        Tool("x", "", {"type": "string"}, str)
    assert ADD.spec()["function"]["name"] == "add"


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
PIECES = st.sampled_from([CALL_OPEN, CALL_CLOSE, "{", "}", '"name"', '"add"', '"arguments"', ":", ",", "\\", '"'])
HOSTILE = st.one_of(
    st.text(max_size=400),
    st.lists(st.one_of(PIECES, st.text(max_size=10)), max_size=40).map("".join),
    JSONISH.map(lambda v: CALL_OPEN + json.dumps(v) + CALL_CLOSE),
    st.builds(
        lambda name, args: CALL_OPEN + json.dumps({"name": name, "arguments": args}) + CALL_CLOSE,
        st.sampled_from(["add", "broken", "nope", ""]),
        JSONISH,
    ),
)


@settings_
@given(text=HOSTILE)
def test_parsing_any_text_never_raises_and_every_call_is_well_formed_or_an_error(text):
    calls = parse_tool_calls(text, TOOLS)
    assert len(calls) <= 5
    assert (not calls) == (CALL_OPEN not in text[:65_536])
    for call in calls:
        assert call.error or (call.name in {"add", "broken"} and isinstance(call.arguments, dict))
        if call.name == "add" and not call.error:
            assert set(call.arguments) == {"a", "b"} and all(type(v) is int for v in call.arguments.values())
    results = call_tools(calls, TOOLS)
    assert len(results) == len(calls) and all(isinstance(r.output, str) for r in results)


@settings_
@given(a=st.integers(-(10**12), 10**12), b=st.integers(-(10**12), 10**12), noise=st.text(max_size=50))
def test_a_formatted_call_parses_back(a, b, noise):
    text = noise.replace(CALL_OPEN, "") + format_call("add", {"a": a, "b": b})
    (call,) = parse_tool_calls(text, TOOLS)
    assert call == ToolCall("add", {"a": a, "b": b})
    assert call_tools([call], TOOLS)[0].output == str(a + b)


@pytest.fixture(scope="module")
def python():
    from rlvr.execution.sandbox import Limits, Sandbox

    limits = Limits(wall_seconds=1.0, memory_mb=256, max_output_bytes=512)
    with Sandbox(workers=1, limits=limits) as sandbox:
        yield python_tool(limits, sandbox)


def run(tool, code):
    (result,) = call_tools(parse_tool_calls(format_call("python", {"code": code}), [tool]), [tool])
    return result


def test_python_tool_returns_what_the_program_prints(python):
    result = run(python, "print(347 * 58)")
    assert result.ok and result.output.strip() == "20126"


def test_python_tool_cuts_off_a_hang_and_says_so(python):
    result = run(python, "while True:\n    pass")
    assert not result.ok and "timed out after 1 s" in result.output


def test_python_tool_cuts_off_a_flood_and_says_so(python):
    result = run(python, "import sys\nwhile True:\n    sys.stdout.write('x' * 4096)")
    assert "output cut at 512 bytes" in result.output
    assert len(result.output) < 2_100  # the sandbox's cap, then call_tools' own


def test_python_tool_reports_a_crash_and_a_silent_program(python):
    crashed = run(python, "1 / 0")
    assert not crashed.ok and "ZeroDivisionError" in crashed.output
    assert "no output" in run(python, "x = 1").output


@pytest.mark.parametrize(
    "code, output",
    [
        ("347 * 58", "20126"),
        ("x = 3\nx + 1", "4"),
        ("print(5)", "5"),  # print's None is not printed again
        ('s = \'{}"""\'\nlen(s)', "5"),  # braces and triple quotes in the source stay source
        ("'a' * 3", "'aaa'"),
    ],
)
def test_python_tool_prints_a_final_expression_like_a_notebook_cell(python, code, output):
    result = run(python, code)
    assert result.ok and result.output.strip() == output


def test_python_tool_reports_a_syntax_error(python):
    result = run(python, "def f(:")
    assert not result.ok and "SyntaxError" in result.output
