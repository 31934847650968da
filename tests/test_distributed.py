"""Data-parallel and sharded training on 2 CPU ranks (gloo) equal one process with the same global batch."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from distworkers import CASES, one_update, worker
from toymodels import save_tiny_model

from rlvr import distributed
from rlvr.checkpoint import latest_checkpoint
from rlvr.config import ConfigError
from rlvr.evaluation import EvalReport
from rlvr.parse_config import load_config
from rlvr.train import train

pytestmark = pytest.mark.filterwarnings("ignore:.*hit the length limit")
TESTS = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def single():
    """Every case's update in this one process, with the whole batch."""
    torch.manual_seed(0)
    return {case: one_update(case, 0, 1, "ddp") for case in CASES}


def two_ranks(strategy: str, cases: list[str], tmp_path: Path) -> dict:
    mp.start_processes(
        worker, args=(2, free_port(), cases, strategy, str(tmp_path)), nprocs=2, join=True, start_method="spawn"
    )
    return torch.load(tmp_path / f"{strategy}.pt", weights_only=False)


def max_change_gap(a: dict, b: dict, before: dict) -> tuple[float, float]:
    """The largest gap between two updates' weight changes, and the largest change itself."""
    gap = max(float((a[k] - b[k]).abs().max()) for k in before)
    change = max(float((a[k] - before[k]).abs().max()) for k in before)
    return gap, change


@pytest.fixture(scope="module")
def initial():
    from distworkers import global_batch

    return {k: v.clone() for k, v in global_batch()[0].model.state_dict().items()}


@pytest.mark.timeout(240)
def test_two_ddp_ranks_take_the_single_process_step(single, initial, tmp_path):
    """GRPO (three aggregations, a rank that keeps no row), PPO (two epochs, critic) and REINFORCE.

    The per-rank losses are divided by the global token / sequence counts and the
    gradients summed, so the weights after the step equal one process's; dividing
    by each rank's own counts (``grpo-local-norm``) is caught.
    """
    multi = two_ranks("ddp", list(CASES), tmp_path)
    for case in CASES:
        gap, change = max_change_gap(multi[case]["weights"], single[case]["weights"], initial)
        assert change > 1e-3, (case, change)  # the step moved the weights
        if case == "grpo-local-norm":
            assert gap > 1e-2 * change, (case, gap, change)
            continue
        assert gap < 1e-5 * max(change, 1.0), (case, gap, change)
        if "critic.head.weight" in single[case]["weights"]:
            torch.testing.assert_close(
                multi[case]["weights"]["critic.head.weight"], single[case]["weights"]["critic.head.weight"]
            )
        # Not "loss": it is a token-weighted mean of micro-batch losses, which depends on how rows fall into micro-batches.
        for key in ("kl_ref", "grad_norm", "entropy", "reward_mean", "rows_kept", "explained_variance"):
            if key in single[case]["metrics"]:
                assert multi[case]["metrics"][key] == pytest.approx(single[case]["metrics"][key], rel=1e-4, abs=1e-6), (
                    case,
                    key,
                )
    assert multi["grpo-empty-rank"]["metrics"]["rows_kept"] == 8


@pytest.mark.timeout(240)
def test_two_fsdp_ranks_take_the_single_process_step(single, initial, tmp_path):
    """FSDP2 (fully_shard on gloo): sharded policy, reference and critic; same step as one process."""
    cases = ["grpo-token", "grpo-empty-rank", "ppo"]
    multi = two_ranks("fsdp", cases, tmp_path)
    for case in cases:
        gap, change = max_change_gap(multi[case]["weights"], single[case]["weights"], initial)
        assert change > 1e-3 and gap < 1e-5 * max(change, 1.0), (case, gap, change)
        for key in ("grad_norm", "rows_kept", "entropy"):
            assert multi[case]["metrics"][key] == pytest.approx(single[case]["metrics"][key], rel=1e-4), (case, key)


def rlvr_torchrun(nproc: int, *args: str, timeout: float = 300, env: dict | None = None):
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--master-port",
        str(free_port()), "-m", "rlvr", "train", *args,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(TESTS), **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def train_args(tiny: str, run_dir: Path, *extra: str) -> list[str]:
    return [
        f"model.name={tiny}", "model.chat_template=false", "model.autocast=none", "model.threads=1",
        "env.id=rlvr/Countdown-v0", "rollout.max_new_tokens=4", "rollout.prompts_per_step=2", "rollout.group_size=2",
        "eval.problems=4", "eval.every=0", "log.progress=false", "log.plots=false", "log.samples_every=1",
        f"log.run_dir={run_dir}", *extra,
    ]  # fmt: skip


@pytest.mark.timeout(300)
def test_two_rank_train_writes_one_run_and_resumes(tmp_path):
    """``torchrun --nproc-per-node 2 -m rlvr train``: one log, one checkpoint; ``rlvr train --nproc 2`` resumes."""
    tiny = save_tiny_model(tmp_path / "tiny")
    run_dir = tmp_path / "run"
    first = rlvr_torchrun(2, *train_args(tiny, run_dir, "train.steps=2", "checkpoint.every=0"))
    assert first.returncode == 0, first.stderr[-3000:]
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "reward_mean" in r]
    assert [r["step"] for r in steps] == [0, 1]  # one line per step: rank 0 alone writes
    assert all(r["world_size"] == 2 for r in steps)
    assert [r["step"] for r in records if "eval/accuracy" in r] == [2]
    assert latest_checkpoint(run_dir).name == "step-000002"
    assert len(list((run_dir / "checkpoints").iterdir())) == 1
    samples = (run_dir / "samples.jsonl").read_text().splitlines()
    assert len([s for s in samples if '"eval"' not in s]) == 2 * 1  # one sample per prompt, rank 0's prompt each step
    second = subprocess.run(  # `rlvr train --nproc 2` launches torchrun itself
        [sys.executable, "-m", "rlvr", "train", "--nproc", "2",
         *train_args(tiny, run_dir, "train.steps=3", "checkpoint.resume=auto")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert second.returncode == 0, second.stderr[-3000:]
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "reward_mean" in r] == [0, 1, 2]
    assert latest_checkpoint(run_dir).name == "step-000003"


LEAVE_SCRIPT = """
import os, sys
import torch.distributed as dist
from rlvr import distributed
distributed.init_process_group("auto", 5)
out = [None, None]
dist.all_gather_object(out, distributed.rank())
import transformers.modeling_utils  # as loading a model does, after the group exists
dist.destroy_process_group()
names = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
sys.exit(any("gloo" in n for n in names))
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="thread names are read from Linux's /proc")
def test_leaving_the_group_stops_its_threads(tmp_path):
    """Gloo's worker threads still running at interpreter exit can abort a finished run (SIGABRT, exit -6)."""
    script = tmp_path / "leave.py"
    script.write_text(LEAVE_SCRIPT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(free_port()),
           str(script)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]


def worker_pids(parent: int) -> dict[int, int]:
    """LOCAL_RANK -> pid of the processes below ``parent`` that torchrun started."""
    found = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            ppid = int(next(line for line in status.read_text().splitlines() if line.startswith("PPid:")).split()[1])
            if ppid != parent:
                continue
            env = (status.parent / "environ").read_bytes().split(b"\0")
        except (OSError, StopIteration):
            continue
        local = [e for e in env if e.startswith(b"LOCAL_RANK=")]
        if local:
            found[int(local[0].split(b"=")[1])] = int(status.parent.name)
    return found


@pytest.mark.timeout(300)
def test_a_rank_that_dies_ends_the_job_on_every_rank(tmp_path):
    """Rank 1 is killed mid-run: the other rank ends within seconds and torchrun reports the failed rank."""
    tiny = save_tiny_model(tmp_path / "tiny")
    run_dir = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(free_port()),
        "-m", "rlvr", "train", *train_args(tiny, run_dir, "train.steps=100000", "checkpoint.every=0"),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 200
        metrics = run_dir / "metrics.jsonl"
        while not (metrics.exists() and metrics.read_text().strip()):
            assert time.monotonic() < deadline and proc.poll() is None, "no step logged"
            time.sleep(0.5)
        pids = worker_pids(proc.pid)
        assert set(pids) == {0, 1}, pids
        killed = time.monotonic()
        os.kill(pids[1], signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
        ended = time.monotonic() - killed
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert ended < 30, ended  # measured: see docs/distributed.md
    assert "rank      : 1" in err and "Signal 9" in err, err[-3000:]
    with contextlib.suppress(ProcessLookupError):  # rank 0 is gone too
        os.kill(pids[0], 0)
        raise AssertionError("rank 0 still runs")


def test_distributed_settings_are_checked_before_any_work(monkeypatch):
    with pytest.raises(ConfigError, match="unknown key 'distributed.stratgy'"):
        load_config(None, ["distributed.stratgy=fsdp"])
    with pytest.raises(ConfigError, match="distributed.strategy"):
        load_config(None, ["distributed.strategy=fsdp", "model.lora_rank=8"])
    with pytest.raises(ConfigError, match="distributed.timeout_minutes"):
        load_config(None, ["distributed.timeout_minutes=0"])
    with pytest.raises(ConfigError, match="is not one of"):
        load_config(None, ["distributed.strategy=zero3"])
    monkeypatch.setenv("WORLD_SIZE", "3")  # as torchrun sets it; the check comes before the process group
    with pytest.raises(ValueError, match="multiple of the 3 ranks"):
        train(load_config(None, ["rollout.prompts_per_step=4"]))


def test_evaluation_shares_merge_into_the_whole():
    a = EvalReport(n=3, accuracy=1 / 3, mean_reward=0.5, components={"x": 1.0}, response_length=4.0,
                   truncated_fraction=0.0, pass_at={1: 0.5})  # fmt: skip
    b = EvalReport(n=1, accuracy=1.0, mean_reward=0.9, components={"x": 0.0}, response_length=8.0,
                   truncated_fraction=1.0, pass_at={1: 1.0})  # fmt: skip
    merged = EvalReport.merge([a, b])
    assert merged.n == 4 and merged.accuracy == pytest.approx(0.5) and merged.components["x"] == pytest.approx(0.75)
    assert merged.response_length == pytest.approx(5.0) and merged.pass_at[1] == pytest.approx(0.625)
    assert EvalReport.merge([a]) is a


def test_one_process_needs_no_process_group():
    assert distributed.world_size() == 1 and distributed.rank() == 0 and not distributed.is_distributed()
    assert distributed.global_sum(2.0, 3) == [2.0, 3.0]
    assert distributed.reduce_metrics({"loss": 1.0}) == {"loss": 1.0}
    assert distributed.rank_seed(7) == 7 and distributed.shard_of([1, 2, 3]) == [1, 2, 3]
