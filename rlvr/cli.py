"""The ``rlvr`` command line.

    rlvr envs                      list environments (built-in and plug-in)
    rlvr verifiers                 list verifiers
    rlvr verify --verifier NAME --completion TEXT --reference REF [--option KEY=VALUE ...]
    rlvr train [CONFIG.yaml] [KEY=VALUE ...] [--model ID] [--nproc N]
    rlvr eval --model PATH_OR_ID --env ID [--n 200] [--pass-k 1,4]
    rlvr plot RUN_DIR
    rlvr make-pairs --env ID --model M --out pairs.jsonl   (rlvr/preference/cli.py)
    rlvr train-rm --data pairs.jsonl --out rm/

Every error is one line on stderr saying what to fix, with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import rlvr
from rlvr.preference.cli import add_commands as add_preference_commands
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
    """``rlvr envs``: list the registered environments with their descriptions and sources."""
    return _print_entries(env_entries())


def cmd_verifiers(args: argparse.Namespace) -> int:
    """``rlvr verifiers``: list the registered verifiers with their descriptions and sources."""
    return _print_entries(verifier_entries())


def cmd_verify(args: argparse.Namespace) -> int:
    """``rlvr verify``: score one completion with one verifier and print the verdict as JSON."""
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


def cmd_train(args: argparse.Namespace) -> int:
    """``rlvr train``: load the config (an optional YAML file plus overrides), train, and print the run folder."""
    from rlvr.parse_config import load_config
    from rlvr.train import train

    config_path, overrides = None, list(args.overrides)
    if overrides and "=" not in overrides[0]:
        config_path = overrides.pop(0)
    if args.model:
        overrides.append(f"model.name={args.model}")
    config = load_config(config_path, overrides)  # a bad config fails here, before any process starts
    if args.nproc > 1:
        import subprocess

        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.nproc}"]
        return subprocess.run(
            [*cmd, "-m", "rlvr", "train", *args.overrides, *(["--model", args.model] * bool(args.model))]
        ).returncode
    run_dir = train(config)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 alone
        print(f"run folder: {run_dir}  (metrics.jsonl, samples.jsonl, plots/, checkpoints/)")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """``rlvr eval``: evaluate a model on distinct problems of an environment and print the report.

    The report (accuracy, pass@k, per-component rewards) is printed one metric per
    line; with ``--json`` it is also written, with sample completions, to a file.
    """
    from rlvr.episodes import EpisodeEnv
    from rlvr.evaluation import evaluate, evaluate_episodes
    from rlvr.models import load_model_and_tokenizer
    from rlvr.precision import pick_autocast
    from rlvr.rollout import TransformersEngine

    options = dict(args.option)
    env = rlvr.BatchedEnv(rlvr.make(args.env, split=args.split, **options))
    episodic = isinstance(env.env, EpisodeEnv)
    pass_k = tuple(int(k) for k in args.pass_k.split(",")) if args.pass_k else ()
    if episodic and pass_k:
        raise ValueError(f"--pass-k is not supported for the multi-step environment {args.env}")
    model, tokenizer = load_model_and_tokenizer(args.model, device=args.device)
    model.eval()
    problems = env.distinct_problems(args.n, seed=args.seed)
    mixed = pick_autocast(args.autocast, next(model.parameters()).device)
    if episodic:
        report = evaluate_episodes(
            model, tokenizer, lambda: rlvr.make(args.env, split=args.split, **options), problems,
            max_new_tokens=args.max_new_tokens, max_total_tokens=args.max_total_tokens,
            chat_template=not args.no_chat_template, autocast=mixed,
        )  # fmt: skip
    else:
        engine = TransformersEngine(model, tokenizer, chat_template=not args.no_chat_template, autocast=mixed)
        report = evaluate(
            engine, env, problems, max_new_tokens=args.max_new_tokens, pass_k=pass_k,
            temperature=args.temperature, seed=args.seed,
        )  # fmt: skip
    summary = {"model": args.model, "env": args.env, "split": args.split, "n": report.n, **report.flat()}
    for key, value in summary.items():
        print(f"{key:28} {value:.4f}" if isinstance(value, float) else f"{key:28} {value}")
    if args.json:
        Path(args.json).write_text(json.dumps({**summary, "samples": report.samples}, indent=2, default=str))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    """``rlvr plot``: write PNG plots of a run's metrics and print their paths."""
    from rlvr.plots import plot_run

    for path in plot_run(args.run_dir):
        print(path)
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
    """The ``rlvr`` argument parser, with every subcommand (preference commands included)."""
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

    tr = sub.add_parser("train", help="train a policy (defaults: GRPO, SmolLM2-135M-Instruct, two-digit addition, CPU)")
    tr.add_argument(
        "overrides",
        nargs="*",
        metavar="[CONFIG.yaml] KEY=VALUE",
        help="a YAML config, then overrides such as train.steps=50",
    )
    tr.add_argument("--model", help="Hugging Face id or local folder (same as model.name=...)")
    tr.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="data-parallel processes on this machine: runs torchrun --standalone --nproc-per-node N (docs/distributed.md)",
    )
    tr.set_defaults(func=cmd_train)

    ev = sub.add_parser("eval", help="held-out greedy accuracy, pass@k and per-component rewards of a model")
    ev.add_argument(
        "--model", required=True, help="Hugging Face id, local folder, checkpoint folder, or smollm2-135m-instruct"
    )
    ev.add_argument("--env", default="rlvr/Arithmetic-v0", help="a registered environment id")
    ev.add_argument("--split", default="test", choices=["train", "test", "all"])
    ev.add_argument(
        "--option",
        type=_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment option; repeatable",
    )
    ev.add_argument("--n", type=int, default=200, help="number of distinct problems")
    ev.add_argument("--pass-k", default="", help="comma-separated k values for pass@k, e.g. 1,4")
    ev.add_argument("--temperature", type=float, default=1.0, help="sampling temperature for pass@k")
    ev.add_argument("--max-new-tokens", type=int, default=48, help="per turn in multi-step environments")
    ev.add_argument(
        "--max-total-tokens", type=int, default=512, help="multi-step environments: tokens after the prompt per episode"
    )
    ev.add_argument("--seed", type=int, default=1)
    ev.add_argument("--no-chat-template", action="store_true")
    ev.add_argument(
        "--autocast", default="auto", choices=["auto", "bf16", "none"], help="mixed precision for generation"
    )
    ev.add_argument("--device", default="auto", help="auto (a CUDA GPU if there is one), cpu, cuda, cuda:N")
    ev.add_argument("--json", help="also write the report (with sample completions) to this file")
    ev.set_defaults(func=cmd_eval)

    pl = sub.add_parser("plot", help="write PNG plots of a run's metrics")
    pl.add_argument("run_dir")
    pl.set_defaults(func=cmd_plot)
    add_preference_commands(sub, _option)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``rlvr`` command line.

    Args:
        argv: the arguments, without the program name; None reads ``sys.argv``.

    Returns:
        The exit status: the command's own, or 2 when it fails with a user-facing
        error (printed to stderr without a traceback).
    """
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (
        rlvr.NotRegisteredError,
        rlvr.DuplicateRegistrationError,
        rlvr.VerifierError,
        rlvr.SelfCheckError,
        TypeError,
        ValueError,
        ImportError,
        FileNotFoundError,
    ) as exc:
        print(f"rlvr {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
