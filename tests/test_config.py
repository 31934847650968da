import pytest

from rlvr.config import ConfigError, RunConfig
from rlvr.parse_config import load_config, parse_override, to_yaml


def test_defaults_are_the_main_job():
    cfg = load_config()
    assert cfg == RunConfig()
    assert cfg.model.name == "smollm2-135m-instruct" and cfg.algorithm.name == "grpo"
    assert cfg.env.id == "rlvr/Arithmetic-v0" and cfg.algorithm.grpo.beta > 0


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  steps: 7\nalgorithm:\n  name: ppo\n  ppo:\n    lam: 0.9\nenv:\n  options: {digits: 3}\n")
    cfg = load_config(path, ["train.steps=9", "optim.lr=3e-5", "eval.pass_k=[1, 4]"])
    assert cfg.train.steps == 9 and cfg.algorithm.name == "ppo" and cfg.algorithm.ppo.lam == 0.9
    assert cfg.env.options == {"digits": 3} and cfg.optim.lr == 3e-5 and cfg.eval.pass_k == (1, 4)


def test_saved_config_round_trips(tmp_path):
    cfg = load_config(None, ["train.steps=3", "algorithm.grpo.beta=0.1", "env.options.digits=3"])
    path = tmp_path / "config.yaml"
    path.write_text(to_yaml(cfg))
    assert load_config(path) == cfg


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["train.stepz=5"], "unknown key 'train.stepz'; did you mean 'train.steps'"),
        (["trian.steps=5"], "unknown key 'trian'"),
        (["algorithm.name=dpo"], "'dpo' is not one of"),
        (["train.steps=five"], "train.steps: expected int"),
        (["optim.betas=[0.9]"], "expected 2 values"),
        (["algorithm.grpo.kl_placement=logits"], "kl_placement must be"),
        (["nonsense"], "must look like section.key=value"),
        (["train.steps=[1"], "not valid YAML"),
    ],
)
def test_bad_config_says_what_to_fix(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_config(None, overrides)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n- not sections\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)


def test_parse_override_reads_yaml_values():
    assert parse_override("a.b=1") == {"a": {"b": 1}}
    assert parse_override("a=null") == {"a": None}
    assert parse_override("a.b=text") == {"a": {"b": "text"}}


def test_device_auto_picks_cpu_without_a_gpu_and_bad_devices_fail_clearly(monkeypatch):
    import torch

    from rlvr.models import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="not a torch device"):
        resolve_device("gpu-please")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


INVALID = [
    ("rollout.group_size=0", "rollout.group_size"),
    ("rollout.group_size=1", "rollout.group_size"),  # GRPO needs a group
    ("rollout.prompts_per_step=0", "rollout.prompts_per_step"),
    ("rollout.max_new_tokens=0", "rollout.max_new_tokens"),
    ("rollout.temperature=0", "rollout.temperature"),
    ("rollout.top_p=0", "rollout.top_p"),
    ("rollout.max_draws=0", "rollout.max_draws"),
    ("rollout.vllm_gpu_memory_utilization=1.5", "rollout.vllm_gpu_memory_utilization"),
    ("model.lora_rank=-1", "model.lora_rank"),
    ("model.threads=0", "model.threads"),
    ("model.device=tpu", "model.device"),
    ("optim.lr=0", "optim.lr"),
    ("optim.betas=[0.9, 1.0]", "optim.betas"),
    ("optim.warmup_steps=-1", "optim.warmup_steps"),
    ("train.steps=0", "train.steps"),
    ("train.time_limit_minutes=0", "train.time_limit_minutes"),
    ("eval.problems=0", "eval.problems"),
    ("eval.pass_k=[0]", "eval.pass_k"),
    ("eval.every=-1", "eval.every"),
    ("log.samples_every=-1", "log.samples_every"),
    ("checkpoint.keep=0", "checkpoint.keep"),
]


@pytest.mark.parametrize("override, key", INVALID)
def test_invalid_values_fail_at_configuration_time_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, [override])


def test_an_invalid_value_stops_rlvr_train_before_any_work(tmp_path, capsys):
    from rlvr.cli import main

    run_dir = tmp_path / "run"
    code = main(["train", "rollout.group_size=0", f"log.run_dir={run_dir}"])
    assert code != 0 and not run_dir.exists()
    assert "rollout.group_size" in capsys.readouterr().err


def test_report_to_names_known_trackers_and_round_trips(tmp_path):
    assert load_config(None, []).log.report_to == ()
    cfg = load_config(None, ["log.report_to=[tensorboard, wandb]"])
    assert cfg.log.report_to == ("tensorboard", "wandb")
    path = tmp_path / "config.yaml"
    path.write_text(to_yaml(cfg))
    assert load_config(path) == cfg


@pytest.mark.parametrize("value", ["[mlflow]", "[tensorboard, tensorboard]", "[TensorBoard]"])
def test_report_to_rejects_unknown_or_repeated_trackers_naming_the_key(value):
    with pytest.raises(ConfigError, match=r"log\.report_to must be distinct names among \['tensorboard', 'wandb'\]"):
        load_config(None, [f"log.report_to={value}"])


def test_dynamic_sampling_needs_groups_of_two():
    with pytest.raises(ConfigError, match="rollout.max_draws must be 1 when group_size is 1"):
        load_config(None, ["algorithm.name=reinforce", "rollout.group_size=1", "rollout.max_draws=3"])
    assert load_config(None, ["algorithm.name=reinforce", "rollout.group_size=1"]).rollout.max_draws == 1
