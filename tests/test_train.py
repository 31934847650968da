"""The training loop on a tiny model: exact resume, Ctrl-C, artefacts, and one-line errors."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from toymodels import LetterEnv, save_tiny_model

import rlvr
from rlvr.checkpoint import latest_checkpoint
from rlvr.parse_config import load_config
from rlvr.schedule import LRSchedule
from rlvr.train import train

pytestmark = pytest.mark.filterwarnings("ignore:.*hit the length limit")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def letter_env():
    env_id = f"test{uuid.uuid4().hex[:6]}/Letters-v0"
    rlvr.register_env(env_id, LetterEnv)
    yield env_id
    rlvr.unregister_env(env_id)


def config(tiny, env_id, run_dir, *extra):
    return load_config(
        None,
        [
            f"model.name={tiny}",
            "model.chat_template=false",
            "model.autocast=none",
            f"env.id={env_id}",
            "rollout.max_new_tokens=4",
            "rollout.prompts_per_step=2",
            "rollout.group_size=4",
            "optim.lr=3e-3",
            "eval.problems=8",
            "log.progress=false",
            "log.plots=false",
            f"log.run_dir={run_dir}",
            *extra,
        ],
    )


def metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


KEYS = ["reward_mean", "loss", "kl_ref", "entropy", "grad_norm", "response_length", "lr", "beta"]


@pytest.mark.parametrize("algorithm", ["grpo", "ppo", "reinforce"])
def test_resume_continues_exactly_like_an_uninterrupted_run(tiny, letter_env, tmp_path, algorithm):
    """Everything that moves between steps is restored: weights, optimiser, the warm-up, beta, the baseline."""
    moving = [
        "optim.warmup_steps=8",  # the learning rate still climbs across the cut at step 3
        f"algorithm.{algorithm}.kl_target=0.001",  # beta adapts every step
        "algorithm.reinforce.baseline=moving_average",
    ]

    def run(run_dir, steps, *extra):
        return train(
            config(
                tiny, letter_env, run_dir, f"train.steps={steps}", "checkpoint.every=3", "eval.at_end=false",
                f"algorithm.name={algorithm}", *moving, *extra,
            )
        )  # fmt: skip

    straight = run(tmp_path / "straight", 6)
    cut = tmp_path / "cut"
    run(cut, 3)
    run(cut, 6, "checkpoint.resume=auto")
    a = {m["step"]: m for m in metrics(straight) if "reward_mean" in m}
    b = {m["step"]: m for m in metrics(cut) if "reward_mean" in m}
    assert sorted(a) == sorted(b) == list(range(6))
    for key in ["lr", "beta"]:  # the comparison below means something only if these move
        assert len({a[step][key] for step in range(2, 6)}) > 1, (key, [a[step][key] for step in range(6)])
    for step in range(3, 6):
        assert {"lr", "beta"} <= set(a[step]) & set(b[step])
        for key in KEYS:
            if key in a[step]:
                assert a[step][key] == pytest.approx(b[step][key], rel=1e-5, abs=1e-7), (step, key)
    if algorithm == "reinforce":  # the moving-average baseline went through the checkpoint
        state = json.loads((latest_checkpoint(cut) / "state.json").read_text())
        assert state["agent"]["baseline"]["value"] is not None


def test_cosine_rate_follows_the_clock_when_the_time_limit_ends_the_run(tiny, letter_env, tmp_path):
    """Each update's rate is the cosine's at its step and at a time between the two steps' logged clocks."""
    run_dir = train(
        config(
            tiny, letter_env, tmp_path / "run", "optim.schedule=cosine", "train.steps=100000",
            "train.time_limit_minutes=0.05", "eval.every=0", "eval.at_end=false", "checkpoint.every=0",
        )
    )  # fmt: skip
    steps = [m for m in metrics(run_dir) if "lr" in m]
    assert len(steps) >= 3  # the clock, not the 100000 steps, ended it
    schedule = LRSchedule("cosine", warmup_steps=0, steps=100000, time_limit_s=3.0)
    previous = 0.0
    for m in steps:
        factor = m["lr"] / 3e-3
        assert schedule.factor(m["step"], m["elapsed"]) - 1e-9 <= factor <= schedule.factor(m["step"], previous) + 1e-9
        previous = m["elapsed"]
    assert steps[-1]["lr"] < 0.5 * steps[0]["lr"]  # by steps alone it would not have moved


def test_run_folder_holds_what_users_expect(tiny, letter_env, tmp_path):
    run_dir = train(
        config(
            tiny,
            letter_env,
            tmp_path / "run",
            "train.steps=4",
            "eval.every=2",
            "log.plots=true",
            "log.samples_every=2",
            "eval.pass_k=[1, 2]",
        )
    )
    assert load_config(run_dir / "config.yaml").train.steps == 4
    records = metrics(run_dir)
    assert [r["step"] for r in records if "reward_mean" in r] == [0, 1, 2, 3]
    evals = [r for r in records if "eval/accuracy" in r]
    assert [r["step"] for r in evals] == [2, 4] and "eval/pass@2" in evals[-1]
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert samples and {"prompt", "completion", "reward", "components"} <= set(samples[0])
    assert {p.name for p in (run_dir / "plots").glob("*.png")} >= {
        "reward.png",
        "kl.png",
        "entropy.png",
        "length.png",
        "accuracy.png",
    }
    assert latest_checkpoint(run_dir).name == "step-000004"
    assert (latest_checkpoint(run_dir) / "tokenizer.json").exists()


def test_dynamic_sampling_draws_more_prompts_while_groups_lack_signal(tiny, letter_env, tmp_path):
    # one new token of a 20-letter vocabulary: a pair of samples is mostly all-wrong, so most draws lack signal
    extra = ["train.steps=4", "eval.at_end=false", "rollout.max_new_tokens=1", "rollout.group_size=2"]
    run_dir = train(config(tiny, letter_env, tmp_path / "dyn", *extra, "rollout.max_draws=3"))
    steps = [r for r in metrics(run_dir) if "reward_mean" in r]
    draws = [r["rollout/draws"] for r in steps]
    assert len(steps) == 4 and all(1 <= d <= 3 for d in draws) and max(draws) > 1, draws
    plain = [r for r in metrics(train(config(tiny, letter_env, tmp_path / "plain", *extra))) if "reward_mean" in r]
    assert "rollout/draws" not in plain[0]


def test_partial_checkpoints_are_ignored(tmp_path):
    (tmp_path / "checkpoints" / "step-000009.partial").mkdir(parents=True)
    (tmp_path / "checkpoints" / "step-000003").mkdir()
    (tmp_path / "checkpoints" / "step-000003" / "state.json").write_text("{}")
    assert latest_checkpoint(tmp_path).name == "step-000003"


def rlvr_cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "rlvr", *args], capture_output=True, text=True, timeout=300, **kwargs)


def test_ctrl_c_writes_a_checkpoint_and_exits_cleanly(tiny, tmp_path):
    run_dir = tmp_path / "interrupted"
    cmd = [
        sys.executable, "-m", "rlvr", "train", f"model.name={tiny}", "model.chat_template=false", "model.autocast=none",
        "rollout.max_new_tokens=4", "rollout.prompts_per_step=2", "rollout.group_size=2", "train.steps=100000",
        "checkpoint.every=0", "eval.at_end=false", "log.progress=false", "log.plots=false", f"log.run_dir={run_dir}",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while (
        time.time() < deadline
        and not (run_dir / "metrics.jsonl").exists()
        or not (run_dir / "metrics.jsonl").read_text().strip()
    ):
        time.sleep(0.2)
        assert time.time() < deadline and proc.poll() is None, (
            proc.stderr.read() if proc.poll() is not None else "no step logged"
        )
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert "stopping after this step" in out + err
    ckpt = latest_checkpoint(run_dir)
    assert ckpt is not None
    assert json.loads((ckpt / "state.json").read_text())["step"] == len(
        [m for m in metrics(run_dir) if "reward_mean" in m]
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "train.stepz=3"], "unknown key 'train.stepz'"),
        (["train", "env.id=rlvr/Arithmetik-v0"], "did you mean 'rlvr/Arithmetic-v0'"),
        (["train", "/no/such/config.yaml"], "does not exist"),
        (["train", "--model", "/no/such/model", "train.steps=1"], "cannot load model"),
        (["eval", "--model", "/no/such/model"], "cannot load model"),
        (["eval", "--model", "x", "--env", "rlvr/Nope-v0"], "unknown environment"),
        (["eval", "--model", "x", "--env", "rlvr/Guess-v0", "--pass-k", "1"], "not supported for the multi-step"),
        (["plot", "/no/such/run"], "metrics.jsonl does not exist"),
        (["train", "model.device=cuda:7"], "no CUDA GPU"),
        (["train", "rollout.engine=vllm"], "needs vLLM"),
    ],
)
def test_bad_input_stops_before_any_work_with_one_line(args, message, tmp_path):
    env = {**os.environ, "RLVR_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    out = rlvr_cli(*args, env=env, cwd=tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr[-2000:]


def test_eval_command_on_a_tiny_model(tiny, tmp_path):
    out = rlvr_cli(
        "eval",
        "--model",
        tiny,
        "--env",
        "rlvr/Countdown-v0",
        "--n",
        "4",
        "--no-chat-template",
        "--max-new-tokens",
        "4",
        "--pass-k",
        "1,2",
        "--json",
        str(tmp_path / "r.json"),
    )
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["n"] == 4 and "eval/pass@2" in report and "eval/format" in report


def test_eval_command_plays_whole_episodes_of_a_multi_step_env(tiny, tmp_path):
    out = rlvr_cli(
        "eval", "--model", tiny, "--env", "rlvr/Guess-v0", "--n", "3", "--no-chat-template",
        "--max-new-tokens", "3", "--max-total-tokens", "64", "--json", str(tmp_path / "r.json"),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["n"] == 3 and 0.0 <= report["eval/accuracy"] <= 1.0
    assert report["eval/episode/turns_mean"] >= 1.0 and all(len(s["turns"]) >= 1 for s in report["samples"])


def test_system_prompt_auto_takes_the_environments_suggestion():
    from rlvr.train import pick_system_prompt

    arithmetic = rlvr.make("rlvr/Arithmetic-v0").unwrapped
    assert load_config(None, []).model.system_prompt == "auto"
    assert pick_system_prompt("auto", arithmetic) == arithmetic.system_prompt()
    assert "7 + 5 = \\boxed{12}" in pick_system_prompt("auto", arithmetic)
    assert pick_system_prompt("auto", LetterEnv()) is None  # suggests nothing: the template's own default
    assert pick_system_prompt(None, arithmetic) is None
    assert pick_system_prompt("", arithmetic) == ""
    assert pick_system_prompt("Be brief.", arithmetic) == "Be brief."
