"""The over-optimisation study's parts: the peak rule by hand, the points file, the plot, and the measurement."""

import copy
import json
import runpy
import shutil
import sys
from pathlib import Path

import pytest
from toymodels import LetterEnv, char_tokenizer, save_tiny_model, target_fraction, tiny_llama, toy_env

import rlvr
import rlvr.agents
from rlvr.policy import Policy
from rlvr.preference.overoptimisation import Point, gold_peak, measure, plot_overoptimisation, read_points, write_point
from rlvr.rollout import TransformersEngine

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def pt(run, step, proxy, gold, kl=None, beta=0.1):
    return Point(
        run=run, beta=beta, step=step, kl=step / 10 if kl is None else kl, proxy=proxy, gold=gold, accuracy=gold
    )


def test_gold_peak_marks_a_run_whose_proxy_climbed_past_its_gold_peak():
    points = [
        pt("over", 0, 0.0, 0.1), pt("over", 10, 2.0, 0.3), pt("over", 5, 1.0, 0.5),  # order of steps does not matter
        pt("rising", 0, 0.0, 0.1), pt("rising", 5, 1.0, 0.2), pt("rising", 10, 0.5, 0.4),
        pt("both fall", 0, 1.0, 0.6), pt("both fall", 5, 0.5, 0.4),  # proxy fell too: not over-optimisation
        pt("tie", 0, 0.0, 0.2), pt("tie", 5, 1.0, 0.2),
    ]  # fmt: skip
    peaks = gold_peak(points)
    assert (peaks["over"][0].step, peaks["over"][1]) == (5, True)
    assert (peaks["rising"][0].step, peaks["rising"][1]) == (10, False)
    assert (peaks["both fall"][0].step, peaks["both fall"][1]) == (0, False)
    assert peaks["tie"][0].step == 0  # the same gold for less KL
    # a fall within the measurement's noise is not over-optimisation
    assert gold_peak(points, min_drop=0.1)["over"][1] is True  # 0.5 -> 0.3
    assert gold_peak(points, min_drop=0.25)["over"][1] is False
    with pytest.raises(ValueError, match="min_drop"):
        gold_peak(points, min_drop=-0.1)
    # a run trained on the gold itself gets no verdict: its proxy was only watched
    ceiling = gold_peak(points, trained_on_gold={"over"})
    assert ceiling["over"] == (peaks["over"][0], None) and ceiling["rising"][1] is False


def test_points_round_trip_and_the_plot_is_written(tmp_path):
    points = [pt("a", 0, 0.0, 0.1), pt("a", 5, 1.0, 0.5, kl=-0.01), pt("a", 10, 2.0, 0.3), pt("b", 0, 0.0, 0.2, beta=1)]
    for p in points:
        write_point(p, tmp_path / "sub" / "points.jsonl")
    assert read_points(tmp_path / "sub" / "points.jsonl") == points
    path = plot_overoptimisation(points, tmp_path / "plots" / "over.png", trained_on_gold={"b"})
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class Recording:
    """An engine that keeps what it generated."""

    def __init__(self, engine):
        self.engine, self.batches = engine, []

    def generate(self, prompts, params):
        self.batches.append(self.engine.generate(prompts, params))
        return self.batches[-1]


def test_measure_reads_kl_proxy_and_gold_from_the_same_samples():
    tok = char_tokenizer()
    model = tiny_llama(len(tok), seed=0)
    engine = Recording(TransformersEngine(model, tok, chat_template=False))
    env = toy_env()
    problems = env.reset(3, seed=0)
    seen = []

    def proxy(texts, probs):
        seen.extend(zip(texts, [p.prompt for p in probs], strict=True))
        return [float(len(t)) for t in texts]

    kwargs = dict(n=4, max_new_tokens=5, temperature=0.7, seed=3, batch_prompts=2)
    same = measure(engine, Policy(copy.deepcopy(model).eval(), temperature=0.7), problems, proxy, env, **kwargs)
    assert abs(same["kl"]) < 1e-5  # the reference is the policy
    assert len(engine.batches) == 2  # 2 + 1 problems
    assert len(seen) == 12 and [q for _, q in seen] == [p.prompt for p in problems for _ in range(4)]
    assert same["proxy"] == pytest.approx(sum(len(t) for t, _ in seen) / 12)
    gold = [target_fraction(t, p) for (t, _), p in zip(seen, [p for p in problems for _ in range(4)], strict=True)]
    assert same["gold"] == pytest.approx(sum(gold) / 12) and same["accuracy"] == pytest.approx(
        sum(g == 1 for g in gold) / 12
    )

    engine.batches.clear()
    other = Policy(tiny_llama(len(tok), seed=1).eval(), temperature=0.7)
    moved = measure(engine, other, problems, proxy, env, **kwargs)
    policy = Policy(model, temperature=0.7)
    by_hand = []  # sum over each sample's tokens of log pi - log pi_ref, under the policy's own log-probs
    for r in engine.batches:
        args = (r.input_ids, r.attention_mask, r.prompt_len)
        by_hand += ((policy.logprobs(*args) - other.logprobs(*args)) * r.completion_mask).sum(-1).tolist()
    assert moved["kl"] == pytest.approx(sum(by_hand) / 12, abs=1e-4) and moved["kl"] > 0.1
    assert moved["proxy"] == pytest.approx(same["proxy"])  # the same seeds draw the same samples
    with pytest.raises(ValueError, match="temperature"):
        measure(engine, other, problems, proxy, env, **{**kwargs, "temperature": 1.0})


def test_samples_the_verifier_cannot_score_count_as_zero_gold():
    """A policy that learns to crash the gold verifier must not raise its gold by it."""
    tok = char_tokenizer()
    model = tiny_llama(len(tok), seed=0)
    engine = Recording(TransformersEngine(model, tok, chat_template=False))

    def fragile(completion, problem):
        if "j" not in completion[:4]:
            raise RuntimeError("the verifier crashed")
        return 1.0

    problems = [rlvr.Problem(id=p, prompt=p, reference="j") for p in ["abc", "cab", "bad"]]
    env = rlvr.BatchedEnv(rlvr.DatasetEnv(problems, reward=fragile))
    reference = Policy(copy.deepcopy(model).eval(), temperature=1.0)
    kwargs = dict(n=8, max_new_tokens=4, temperature=1.0, seed=0)
    m = measure(engine, reference, problems, lambda texts, probs: [0.0] * len(texts), env, **kwargs)
    (rollouts,) = engine.batches
    scoring = [float("j" in text[:4]) for text in rollouts.texts]  # 1 where it scores, a crash elsewhere
    assert 0 < sum(scoring) < len(scoring)
    assert m["gold"] == pytest.approx(sum(scoring) / len(scoring))  # crashes count as 0, not left out
    assert m["accuracy"] == pytest.approx(sum(scoring) / len(scoring))


def test_the_recipe_runs_the_whole_pipeline_and_skips_finished_runs(tmp_path, monkeypatch, unique_id, capsys):
    env_id = unique_id()
    rlvr.register_env(env_id, LetterEnv)
    model = save_tiny_model(tmp_path / "tiny")
    out = tmp_path / "study"
    argv = [
        "rlhf_overoptimisation.py", "--out", str(out), "--model", model, "--env", env_id, "--pairs-models", model,
        "--pairs-prompts", "8", "--pairs-n", "4", "--rm-epochs", "1", "--betas", "0", "0.1", "--ceiling",
        "--steps", "2", "--measure-every", "1", "--prompts", "2", "--group", "4", "--max-new-tokens", "5",
        "--measure-problems", "3", "--measure-n", "2", "--no-chat-template", "--temperature", "1.0",
        "--critic-warmup", "1", "--counterfactuals", "1", "--save-policies",
    ]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(EXAMPLES / "rlhf_overoptimisation.py"), run_name="__main__")
    points = read_points(out / "points.jsonl")
    runs = ["ppo rm beta=0", "ppo rm beta=0.1", "ppo verifier beta=0.1"]
    assert sorted({p.run for p in points}) == runs
    assert [p.step for p in points] == [0, 1, 2] * 3
    assert (out / "rm" / "model.safetensors").exists() and (out / "plots" / "overoptimisation.png").exists()
    assert json.loads((out / "pairs_train.jsonl").read_text().splitlines()[0])["chosen"] is not None
    printed = capsys.readouterr().out
    assert all(f"| {run} |" in printed for run in runs)
    ceiling_row = next(line for line in printed.splitlines() if line.startswith("| ppo verifier beta=0.1 |"))
    assert ceiling_row.endswith("| - |")  # trained on the gold: no over-optimisation verdict
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    # one critic-only warm-up batch, then the updates, for each PPO run
    assert [(m["run"], m["step"]) for m in logged] == [(run, s) for run in runs for s in (-1, 1, 2)]
    assert all("explained_variance" in m for m in logged)
    assert "grad_norm" not in logged[0] and "grad_norm" in logged[1]
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [(s["run"], s["step"]) for s in samples] == [(run, s) for run in runs for s in (1, 2)]
    assert all(len(s["completions"]) == len(s["rewards"]) == 4 and s["prompt"] for s in samples)
    saved = sorted(p.name for p in (out / "policies").iterdir())
    assert saved == ["ppo_rm_beta0", "ppo_rm_beta0.1", "ppo_verifier_beta0.1"]
    assert (out / "policies" / "ppo_rm_beta0" / "model.safetensors").exists()
    info = json.loads((out / "rm" / "reward_model.json").read_text())
    assert sum(1 for _ in (out / "pairs_test.jsonl").open()) > 0 and info["held_out_by_kind"]

    runpy.run_path(str(EXAMPLES / "rlhf_overoptimisation.py"), run_name="__main__")  # everything is reused
    assert read_points(out / "points.jsonl") == points
    assert "step   0" not in capsys.readouterr().out


def test_the_recipe_pools_the_samples_of_every_pairs_model_on_the_same_problems(tmp_path, monkeypatch, unique_id):
    env_id = unique_id()
    rlvr.register_env(env_id, LetterEnv)
    first, second = save_tiny_model(tmp_path / "a", seed=0), save_tiny_model(tmp_path / "b", seed=1)
    out = tmp_path / "pooled"
    argv = [
        "rlhf_overoptimisation.py", "--out", str(out), "--model", first, "--env", env_id,
        "--pairs-models", first, second, "--pairs-pool", "--pairs-prompts", "8", "--pairs-n", "4",
        "--rm-epochs", "1", "--betas", "0", "--algorithm", "grpo", "--steps", "1", "--prompts", "2", "--group", "2",
        "--max-new-tokens", "5", "--measure-problems", "2", "--measure-n", "1", "--no-chat-template",
        "--temperature", "1.0",
    ]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(EXAMPLES / "rlhf_overoptimisation.py"), run_name="__main__")
    train = [json.loads(line) for line in (out / "pairs_train.jsonl").read_text().splitlines()]
    env = rlvr.BatchedEnv(rlvr.make(env_id, split="train"))
    problems = {p.id for p in env.distinct_problems(8, seed=0)}  # the first model's problems, shared
    assert train and {pair["meta"]["problem_id"] for pair in train} <= problems


def test_the_recipe_refuses_a_folder_kept_for_another_study(tmp_path, monkeypatch, unique_id, capsys):
    """Pairs and a reward model made for one task or system prompt are never reused for another."""
    env_id = unique_id()
    rlvr.register_env(env_id, LetterEnv)
    out = tmp_path / "study"
    out.mkdir()
    other = {"env": env_id, "options": {}, "chat_template": True, "system_prompt": "Examples. ..."}
    (out / "study.json").write_text(json.dumps(other))
    monkeypatch.setattr(sys, "argv", ["rlhf_overoptimisation.py", "--out", str(out), "--env", env_id])
    with pytest.raises(SystemExit):
        runpy.run_path(str(EXAMPLES / "rlhf_overoptimisation.py"), run_name="__main__")
    assert "another task or system prompt" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["study.json"]
    assert json.loads((out / "study.json").read_text()) == other


def test_the_recipe_refuses_a_system_prompt_without_a_chat_template(tmp_path, monkeypatch, unique_id, capsys):
    env_id = unique_id()
    rlvr.register_env(env_id, LetterEnv)
    argv = ["rlhf_overoptimisation.py", "--out", str(tmp_path / "s"), "--env", env_id, "--no-chat-template"]
    monkeypatch.setattr(sys, "argv", [*argv, "--system-prompt", "Be brief."])
    with pytest.raises(SystemExit):
        runpy.run_path(str(EXAMPLES / "rlhf_overoptimisation.py"), run_name="__main__")
    assert "needs the chat template" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def one_ppo_step(model: str, env_id: str, *extra: str) -> list[str]:
    """The recipe's argv for a tiny study: pairs, a reward model, one PPO step at beta 0.1, no --out."""
    return [
        "rlhf_overoptimisation.py", "--model", model, "--env", env_id, "--pairs-models", model,
        "--pairs-prompts", "8", "--pairs-n", "4", "--rm-epochs", "1", "--betas", "0.1", "--steps", "1",
        "--prompts", "2", "--group", "4", "--max-new-tokens", "5", "--measure-problems", "2", "--measure-n", "2",
        "--no-chat-template", "--temperature", "1.0", *extra,
    ]  # fmt: skip


def test_the_recipe_can_start_the_critic_from_the_reward_models_trunk_with_a_zero_head(
    tmp_path, monkeypatch, unique_id
):
    env_id = unique_id()
    rlvr.register_env(env_id, LetterEnv)
    model = save_tiny_model(tmp_path / "tiny")
    out = tmp_path / "study"
    common = one_ppo_step(model, env_id, "--critic-warmup", "1")
    first = {}
    for init in ("reward-model-trunk", "reward-model"):
        monkeypatch.setattr(sys, "argv", [*common, "--out", str(out / init), "--critic-init", init])
        if init == "reward-model":  # the same pairs and reward model: only the critic's start differs
            shutil.copytree(
                out / "reward-model-trunk", out / init, ignore=shutil.ignore_patterns("*points*", "metrics*")
            )
        runpy.run_path(str(EXAMPLES / "rlhf_overoptimisation.py"), run_name="__main__")
        first[init] = json.loads((out / init / "metrics.jsonl").read_text().splitlines()[0])
    assert first["reward-model-trunk"]["step"] == -1  # the warm-up batch, valued before any critic step
    assert first["reward-model-trunk"]["value_mean"] == 0.0  # a zero head values everything at 0
    assert first["reward-model"]["value_mean"] != 0.0  # the reward model's own head does not


@pytest.mark.parametrize("flag, value", [("--value-clip", "-0.1"), ("--critic-lr", "0")])
def test_the_recipe_refuses_a_bad_critic_setting_before_any_work(tmp_path, monkeypatch, unique_id, capsys, flag, value):
    env_id = unique_id()
    rlvr.register_env(env_id, LetterEnv)
    monkeypatch.setattr(
        sys, "argv", ["rlhf_overoptimisation.py", "--out", str(tmp_path / "s"), "--env", env_id, flag, value]
    )
    with pytest.raises(SystemExit):
        runpy.run_path(str(EXAMPLES / "rlhf_overoptimisation.py"), run_name="__main__")
    assert flag in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_the_recipe_gives_the_critic_its_own_rate_and_clip(tmp_path, monkeypatch, unique_id):
    env_id = unique_id()
    rlvr.register_env(env_id, LetterEnv)
    model = save_tiny_model(tmp_path / "tiny")
    built = []

    class RecordingPPO(rlvr.agents.PPO):
        def __init__(self, policy, optimizer, critic, critic_optimizer, config, reference=None):
            built.append((optimizer.param_groups[0]["lr"], critic_optimizer.param_groups[0]["lr"], config))
            super().__init__(policy, optimizer, critic, critic_optimizer, config, reference)

    monkeypatch.setattr(rlvr.agents, "PPO", RecordingPPO)
    common = one_ppo_step(model, env_id, "--lr", "2e-5")
    for name, extra in {"default": [], "own": ["--critic-lr", "3e-4", "--value-clip", "0"]}.items():
        monkeypatch.setattr(sys, "argv", [*common, "--out", str(tmp_path / name), *extra])
        runpy.run_path(str(EXAMPLES / "rlhf_overoptimisation.py"), run_name="__main__")
    (lr, critic_lr, config), (own_lr, own_critic_lr, own_config) = built
    assert (lr, critic_lr, config.value_clip_eps) == (2e-5, 2e-5, 0.2)  # the critic follows --lr, clipped
    assert (own_lr, own_critic_lr, own_config.value_clip_eps) == (2e-5, 3e-4, None)  # 0: unclipped


def test_the_recipe_trains_an_ensemble_and_penalises_its_spread(tmp_path, monkeypatch, unique_id):
    env_id = unique_id()
    rlvr.register_env(env_id, LetterEnv)
    model = save_tiny_model(tmp_path / "tiny")
    out = tmp_path / "study"
    common = [*one_ppo_step(model, env_id, "--critic-init", "reward-model-trunk"), "--out", str(out)]
    monkeypatch.setattr(sys, "argv", [*common, "--rm-ensemble", "2", "--reward-model-only"])
    with pytest.raises(SystemExit) as stopped:
        runpy.run_path(str(EXAMPLES / "rlhf_overoptimisation.py"), run_name="__main__")
    assert stopped.value.code == 0
    assert not (out / "points.jsonl").exists()  # stopped before any RL
    seeds = [json.loads((out / name / "reward_model.json").read_text())["seed"] for name in ("rm", "rm-1")]
    assert seeds == [0, 1]
    first = (out / "rm" / "model.safetensors").read_bytes()
    assert first != (out / "rm-1" / "model.safetensors").read_bytes()  # two seeds, two models
    monkeypatch.setattr(sys, "argv", [*common, "--rm-ensemble", "2", "--uncertainty-penalty", "0.5"])
    runpy.run_path(str(EXAMPLES / "rlhf_overoptimisation.py"), run_name="__main__")
    assert (out / "rm" / "model.safetensors").read_bytes() == first  # kept, not trained again
    update = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][-1]
    assert update["step"] == 1 and update["rm_spread"] > 0.0
    assert [p.step for p in read_points(out / "points.jsonl")] == [0, 1]
    assert {p.run for p in read_points(out / "points.jsonl")} == {"ppo rm-ensemble2 u=0.5 beta=0.1"}
    info = json.loads((out / "rm-1" / "reward_model.json").read_text())
    (out / "rm-1" / "reward_model.json").write_text(json.dumps(info | {"seed": 7}))
    with pytest.raises(SystemExit):  # a member from another seed is never taken for this one
        runpy.run_path(str(EXAMPLES / "rlhf_overoptimisation.py"), run_name="__main__")


@pytest.mark.parametrize(
    "extra, message",
    [(["--rm-ensemble", "0"], "error: --rm-ensemble must"), (["--uncertainty-penalty", "-1"], "error: --rm-ensemble must"),
     (["--rm-ensemble", "2"], "error: --critic-init reward-model rescales")],
)  # fmt: skip
def test_the_recipe_refuses_a_bad_ensemble_before_any_work(tmp_path, monkeypatch, unique_id, capsys, extra, message):
    env_id = unique_id()
    rlvr.register_env(env_id, LetterEnv)
    monkeypatch.setattr(
        sys, "argv", ["rlhf_overoptimisation.py", "--out", str(tmp_path / "s"), "--env", env_id, *extra]
    )
    with pytest.raises(SystemExit):
        runpy.run_path(str(EXAMPLES / "rlhf_overoptimisation.py"), run_name="__main__")
    assert message in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    "extra, message",
    [(["--counterfactuals", "-1"], "error: --counterfactuals must"),
     (["--counterfactual-copies", "0"], "error: --counterfactuals must"),
     (["--counterfactual-kind", "swap"], "invalid choice: 'swap'")],
)  # fmt: skip
def test_the_recipe_refuses_bad_near_miss_settings_before_any_work(
    tmp_path, monkeypatch, unique_id, capsys, extra, message
):
    env_id = unique_id()
    rlvr.register_env(env_id, LetterEnv)
    monkeypatch.setattr(
        sys, "argv", ["rlhf_overoptimisation.py", "--out", str(tmp_path / "s"), "--env", env_id, *extra]
    )
    with pytest.raises(SystemExit):
        runpy.run_path(str(EXAMPLES / "rlhf_overoptimisation.py"), run_name="__main__")
    assert message in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("kind, perturb", [("shift", "shift_boxed_integer"), ("rewrite", "rewrite_boxed_integer")])
def test_the_recipe_passes_the_near_miss_kind_and_copies_on(tmp_path, monkeypatch, unique_id, kind, perturb):
    import rlvr.preference.pairs as pairs

    env_id = unique_id()
    rlvr.register_env(env_id, LetterEnv)
    model = save_tiny_model(tmp_path / "tiny")
    calls = []

    def recording(env, scored, perturb, **kwargs):
        calls.append((perturb.__name__, kwargs["pairs_per_prompt"], kwargs["copies"]))
        return []

    monkeypatch.setattr(pairs, "counterfactual_pairs", recording)
    extra = ["--counterfactuals", "2", "--counterfactual-copies", "3", "--counterfactual-kind", kind]
    monkeypatch.setattr(
        sys, "argv", [*one_ppo_step(model, env_id), "--out", str(tmp_path / "s"), "--reward-model-only", *extra]
    )
    with pytest.raises(SystemExit):
        runpy.run_path(str(EXAMPLES / "rlhf_overoptimisation.py"), run_name="__main__")
    assert calls and set(calls) == {(perturb, 2, 3)}  # training and held-out pairs alike
