r"""The main job's acceptance run: the README's command on a fresh clone, then ``rlvr eval --n 200``.

For each seed: clone the repository at ``HEAD`` into a temporary folder, run the
README's main-job command there exactly as written (with ``train.seed=N`` and a
run folder appended, and an empty model cache so the GGUF conversion is counted),
time it and read its peak resident memory, then evaluate the final checkpoint on
200 held-out problems. One JSON line per seed is appended to
``benchmarks/results/main_job.jsonl`` with the CPU it ran on, so figures from
several sessions and machines accumulate in one log.

    python benchmarks/main_job.py --seeds 0 1 2

A candidate default can be tried the same way before it is committed:
``--set key=value ...`` appends overrides to the command and ``--extras lora``
adds extras to its install; both are recorded in the line (``overrides``,
``extras``), so the log tells an acceptance run (neither) from an experiment.

The goal each line is checked against: wall time (set-up included) <= 30 min,
held-out greedy accuracy >= 0.80, exactly one ``\boxed{}`` >= 0.95, peak RSS <= 8 GiB.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import resource
import shlex
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOG = ROOT / "benchmarks" / "results" / "main_job.jsonl"
GOALS = {"wall_minutes": 30.0, "accuracy": 0.80, "boxed_once": 0.95, "peak_rss_gib": 8.0}


def readme_command() -> str:
    """The main-job command, exactly as README.md gives it (the first line that runs ``rlvr train``)."""
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("python3 -m venv") and line.rstrip().endswith("rlvr train"):
            return line.strip()
    raise SystemExit("README.md has no main-job command ending in 'rlvr train'")


def cpu() -> dict[str, object]:
    """The CPU model and the flags that decide training speed, from lscpu."""
    text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = re.search(r"Model name:\s*(.+)", text)
    flags = set((re.search(r"Flags:\s*(.+)", text) or re.search("(.*)", "")).group(1).split())
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return {
        "cpu": model.group(1).strip() if model else platform.processor(),
        "cpus": len(__import__("os").sched_getaffinity(0)),
        "flags": [f for f in wanted if f in flags],
    }


def run_seed(seed: int, keep: bool, overrides: list[str], extras: list[str]) -> dict[str, object]:
    """One acceptance run (or, with overrides or extras, an experiment); returns its figures."""
    work = Path(tempfile.mkdtemp(prefix=f"rlvr-main-job-{seed}-"))
    clone, cache = work / "rlvr", work / "cache"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True, text=True).stdout.strip()
    command = readme_command()
    if extras:
        command = command.replace('-e ".[train]"', f'-e ".[train,{",".join(extras)}]"', 1)
    command += f" train.seed={seed} log.run_dir=runs/seed{seed} log.progress=false"
    command += "".join(f" {shlex.quote(o)}" for o in overrides)
    env = {**__import__("os").environ, "RLVR_CACHE": str(cache)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.monotonic()
    with open(work / "train.log", "w") as out:
        done = subprocess.run(["bash", "-c", command], cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT)
    wall = time.monotonic() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result: dict[str, object] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit,
        **cpu(),
        "seed": seed,
        **({"overrides": overrides} if overrides else {}),
        **({"extras": extras} if extras else {}),
        "exit_code": done.returncode,
        "wall_minutes": round(wall / 60, 2),
        # ru_maxrss of the children is the largest single process; earlier seeds of this
        # run are children too, so it is exact only for the first (each run is alike).
        "peak_rss_gib": round(max(peak_kib, before) / 2**20, 2),
    }
    metrics = clone / f"runs/seed{seed}/metrics.jsonl"
    if metrics.exists():
        rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        steps = [r for r in rows if "time/step" in r]
        evals = [r for r in rows if "eval/accuracy" in r]
        result["steps"] = len(steps)
        if steps:
            times = sorted(r["time/step"] for r in steps)
            result["median_step_s"] = round(times[len(times) // 2], 2)
        result["in_run_accuracy"] = {str(r["step"]): round(r["eval/accuracy"], 3) for r in evals if "step" in r}
    checkpoints = sorted((clone / f"runs/seed{seed}/checkpoints").glob("step-*"))
    if done.returncode == 0 and checkpoints:
        report = work / "eval.json"
        subprocess.run(
            [
                str(clone / ".venv/bin/rlvr"),
                "eval",
                "--model",
                str(checkpoints[-1]),
                "--n",
                "200",
                "--json",
                str(report),
            ],
            cwd=clone,
            env=env,
            check=True,
            capture_output=True,
        )
        summary = json.loads(report.read_text())
        result["accuracy"] = round(summary["eval/accuracy"], 3)
        result["boxed_once"] = round(summary["eval/format"], 3)  # the reward's exactly-one-box leaf
    result["goals_met"] = {
        "wall": result["wall_minutes"] <= GOALS["wall_minutes"],
        "accuracy": result.get("accuracy", 0.0) >= GOALS["accuracy"],
        "boxed_once": (result.get("boxed_once") or 0.0) >= GOALS["boxed_once"],
        "memory": result["peak_rss_gib"] <= GOALS["peak_rss_gib"],
    }
    if keep:
        result["folder"] = str(work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return result


def main() -> None:
    """Run the seeds one after another and append each result to the log."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--keep", action="store_true", help="keep each clone, its run folder and logs")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides (an experiment)")
    parser.add_argument("--extras", nargs="+", default=[], help="extras added to the install, e.g. lora")
    args = parser.parse_args()
    if args.extras and '-e ".[train]"' not in readme_command():
        raise SystemExit('--extras needs the README command to install -e ".[train]"')
    LOG.parent.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        result = run_seed(seed, args.keep, args.set, args.extras)
        with LOG.open("a") as log:
            log.write(json.dumps(result) + "\n")
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
