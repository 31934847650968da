import json
import subprocess
import sys

import pytest

from rlvr.cli import main


def run(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "rlvr", *args], capture_output=True, text=True, input=stdin)


def test_envs_and_verifiers_list_the_builtins():
    envs = run("envs")
    assert envs.returncode == 0 and "rlvr/Arithmetic-v0" in envs.stdout and "rlvr/Countdown-v0" in envs.stdout
    verifiers = run("verifiers")
    for name in ["math", "exact-match", "boxed-once", "think-answer", "regex", "countdown"]:
        assert name in verifiers.stdout


def test_verify_prints_the_verdict_and_details():
    out = run("verify", "--verifier", "math", "--completion", r"so \boxed{\frac{1}{2}}", "--reference", "0.5")
    verdict = json.loads(out.stdout)
    assert (
        verdict["score"] == 1.0 and verdict["status"] == "correct" and verdict["details"]["extracted"] == r"\frac{1}{2}"
    )


def test_verify_reads_stdin_options_and_json_references(capsys):
    assert (
        main(
            [
                "verify",
                "--verifier",
                "exact-match",
                "--completion",
                "The Paris",
                "--reference",
                "paris",
                "--option",
                "ignore_articles=true",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["score"] == 1.0
    out = run(
        "verify",
        "--verifier",
        "countdown",
        "--completion",
        "-",
        "--reference",
        '{"numbers": [3, 5, 3], "target": 24}',
        "--reference-json",
        stdin=r"\boxed{(3 + 5) * 3}",
    )
    assert json.loads(out.stdout)["score"] == 1.0


@pytest.mark.parametrize(
    "args, message",
    [
        (["verify", "--verifier", "mathh", "--completion", "x", "--reference", "1"], "did you mean 'math'"),
        (
            ["verify", "--verifier", "exact-match", "--completion", "x", "--reference", "1", "--option", "bogus=1"],
            "its options are",
        ),
        (["verify", "--verifier", "regex", "--completion", "x", "--reference", "1"], "pattern"),
    ],
)
def test_errors_are_one_clear_line(args, message):
    out = run(*args)
    assert out.returncode == 2 and message in out.stderr and len(out.stderr.strip().splitlines()) == 1
