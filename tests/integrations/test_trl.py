"""rlvr rewards inside TRL: the reward function's contract, and a real GRPOTrainer on a tiny model."""

import json
import math

import pytest
from toymodels import char_tokenizer, target_fraction, tiny_llama

import rlvr
from rlvr.integrations.trl import completion_text, dataset, reward_function


def picky_reward(completion, problem):
    """The toy reward, except that problem ``hide`` cannot be scored and ``!`` crashes the verifier."""
    if "!" in completion:
        raise RuntimeError("verifier bug")
    if problem.id == "hide":
        return rlvr.Verdict.unscorable("no reference for this one")
    return target_fraction(completion, problem)


def letters_env(ids=("abc", "hide")):
    problems = [rlvr.Problem(id=p, prompt=p, reference="j") for p in ids]
    return rlvr.DatasetEnv(problems, reward=picky_reward)


def test_completion_text_takes_the_assistant_words():
    assert completion_text("plain") == "plain"
    assert completion_text([{"role": "assistant", "content": "jj"}]) == "jj"
    conversation = [
        {"role": "assistant", "content": "call"},
        {"role": "tool", "content": "result"},
        {"role": "assistant", "content": [{"type": "text", "text": "done"}, {"type": "image"}]},
    ]
    assert completion_text(conversation) == "call\ndone"


def test_dataset_rows_carry_what_the_reward_needs():
    env = rlvr.make("rlvr/Arithmetic-v0")
    ds = dataset(env, 5, seed=1)
    assert ds.column_names == ["prompt", "problem_id", "reference"]
    assert len(set(ds["prompt"])) == 5 and all(isinstance(p, str) for p in ds["prompt"])
    problem = env.unwrapped.problem_from_id(ds[0]["problem_id"])
    assert ds[0]["prompt"] == problem.prompt and json.loads(ds[0]["reference"]) == problem.reference
    chat = dataset(env, 2, seed=1, chat=True)
    assert chat[0]["prompt"] == [{"role": "user", "content": ds[0]["prompt"]}]


@pytest.mark.parametrize("source", ["env", "verifier"])
def test_rewards_equal_rlvr_and_unscorable_or_crashed_samples_get_none(source):
    env = letters_env()
    fn = reward_function(env if source == "env" else picky_reward)
    ds = dataset(env, 2)
    by_prompt = {row["prompt"]: row for row in ds}
    completions = ["jjab", "jjjj", "jj!", "jjjj"]
    prompts = ["abc", "abc", "abc", "hide"]
    logged, extra = {}, {}
    rewards = fn(
        prompts=prompts,
        completions=[[{"role": "assistant", "content": c}] for c in completions],  # conversational form
        problem_id=[by_prompt[p]["problem_id"] for p in prompts],
        reference=[by_prompt[p]["reference"] for p in prompts],
        completion_ids=None,
        trainer_state=None,
        log_metric=logged.__setitem__,
        log_extra=extra.__setitem__,
    )
    assert rewards == [0.5, 1.0, None, None]
    assert logged == {"rlvr/scored_fraction": 0.5, "rlvr/component/picky_reward": 0.75}
    assert extra == {"rlvr_status": ["incorrect", "correct", "error", "unscorable"]}
    assert fn.__name__ == ("rlvr/DatasetEnv" if source == "env" else "rlvr/picky_reward")


def test_a_dataset_without_problem_ids_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="no problem_id column"):
        reward_function(letters_env())(prompts=["abc"], completions=["j"])


def test_a_registered_env_is_named_by_its_id():
    assert reward_function(rlvr.make("rlvr/Countdown-v0")).__name__ == "rlvr/Countdown-v0"


def test_a_real_grpo_trainer_logs_rlvrs_rewards(tmp_path, monkeypatch):
    """Two GRPOTrainer steps on a tiny model; the rewards TRL logs are the ones rlvr gives the same completions."""
    pytest.importorskip("trl")
    import pandas as pd
    from trl import GRPOConfig, GRPOTrainer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    env = letters_env()
    fn = reward_function(env, name="letters")
    tokenizer = char_tokenizer()
    args = GRPOConfig(
        output_dir=str(tmp_path),
        max_steps=2,
        per_device_train_batch_size=8,  # both prompts, 4 completions each, every step
        num_generations=4,
        max_completion_length=4,
        learning_rate=1e-3,
        logging_steps=1,
        log_completions=True,  # TRL writes each step's completions and rewards to completions/*.parquet
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        bf16=False,
        seed=0,
        disable_tqdm=True,
    )
    trainer = GRPOTrainer(
        model=tiny_llama(len(tokenizer)),
        reward_funcs=fn,
        train_dataset=dataset(env, 2),
        args=args,
        processing_class=tokenizer,
    )
    trainer.train()

    history = [h for h in trainer.state.log_history if "reward" in h]
    assert [h["step"] for h in history] == [1, 2]
    problems = {p.prompt: p for p in env.problems}
    nonzero = 0
    for entry in history:
        table = pd.read_parquet(tmp_path / "completions" / f"completions_{entry['step']:05d}.parquet")
        assert len(table) == 8 and set(table["prompt"]) == {"abc", "hide"}
        for prompt, completion, logged, advantage in zip(
            table["prompt"], table["completion"], table["letters"], table["advantage"], strict=True
        ):
            ((reward, info),) = env.score_many([problems[prompt]], [completion])
            if info["scored"]:
                assert logged == pytest.approx(reward), (prompt, completion)
                nonzero += reward > 0
            else:  # rlvr's "no reward": TRL keeps it out of the statistics and gives it no advantage
                assert math.isnan(logged) and advantage == 0.0
        scored = table["letters"].dropna()
        assert entry["rewards/letters/mean"] == pytest.approx(scored.mean(), abs=1e-6)
        assert entry["reward"] == pytest.approx(scored.mean(), abs=1e-6)
        assert entry["rlvr/scored_fraction"] == 0.5
    assert nonzero > 0  # the comparison saw real rewards, not only zeros
