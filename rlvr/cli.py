"""The ``rlvr`` command line.

    rlvr envs                      list environments (built-in and plug-in)
    rlvr verifiers                 list verifiers
    rlvr verify --verifier NAME --completion TEXT --reference REF [--option KEY=VALUE ...]

Every error is one line on stderr saying what to fix, with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import rlvr
from rlvr.registry import env_entries, verifier_entries


def _json_or_text(value: str) -> Any:
    """JSON when it parses (numbers, lists, objects), else the text itself."""
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, _json_or_text(value)


def _read(value: str) -> str:
    return sys.stdin.read() if value == "-" else value


def _print_entries(entries: dict[str, Any]) -> int:
    width = max(len(name) for name in entries)
    for name, entry in entries.items():
        print(f"{name:<{width}}  {entry.description or '-'}  [{entry.source}]")
    return 0


def cmd_envs(args: argparse.Namespace) -> int:
    return _print_entries(env_entries())


def cmd_verifiers(args: argparse.Namespace) -> int:
    return _print_entries(verifier_entries())


def cmd_verify(args: argparse.Namespace) -> int:
    verifier = rlvr.make_verifier(args.verifier, **dict(args.option))
    reference = _json_or_text(args.reference) if args.reference_json else args.reference
    problem = rlvr.Problem(id="cli", prompt="", reference=reference)
    verdict = rlvr.verify(verifier, _read(args.completion), problem)
    print(
        json.dumps(
            {"score": verdict.score, "status": verdict.status.value, "details": _jsonable(verdict.details)},
            indent=2,
            ensure_ascii=False,
        )
    )
    return 0


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlvr", description="Reinforcement learning of LMs against verifiable rewards."
    )
    parser.add_argument("--version", action="version", version=f"rlvr {rlvr.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("envs", help="list registered environments").set_defaults(func=cmd_envs)
    sub.add_parser("verifiers", help="list registered verifiers").set_defaults(func=cmd_verifiers)
    verify = sub.add_parser("verify", help="score one completion with one verifier and print the verdict")
    verify.add_argument("--verifier", required=True, help="a registered verifier name (see `rlvr verifiers`)")
    verify.add_argument("--completion", required=True, help="the completion text, or - to read it from stdin")
    verify.add_argument("--reference", required=True, help="the gold answer")
    verify.add_argument(
        "--reference-json",
        action="store_true",
        help='parse --reference as JSON (e.g. countdown\'s {"numbers": ..., "target": ...})',
    )
    verify.add_argument(
        "--option",
        type=_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="verifier keyword argument (JSON value or text); repeatable",
    )
    verify.set_defaults(func=cmd_verify)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (
        rlvr.NotRegisteredError,
        rlvr.DuplicateRegistrationError,
        rlvr.VerifierError,
        TypeError,
        ValueError,
        ImportError,
    ) as exc:
        print(f"rlvr {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
