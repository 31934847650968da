"""Experiment trackers: pure helpers, fail-fast checks, and a short run read back by each tracker's own reader."""

import importlib.util
import json
import math
import uuid

import pytest
from toymodels import LetterEnv, save_tiny_model

import rlvr
from rlvr.parse_config import load_config
from rlvr.runlog import RunLog, read_metrics
from rlvr.trackers import check_trackers, flat_config, sample_table, samples_key, scalars

pytestmark = pytest.mark.filterwarnings("ignore:.*hit the length limit")


def test_scalars_keep_finite_numbers_only():
    record = {"a": 1, "b": 0.5, "c": math.nan, "d": math.inf, "e": None, "f": "text", "g": True}
    assert scalars(record) == {"a": 1.0, "b": 0.5, "g": 1.0}


def test_flat_config_joins_sections_and_writes_structures_as_json():
    config = {"model": {"name": "m", "lora_rank": 0}, "eval": {"pass_k": [1, 4], "every": None}, "top": 1.5}
    assert flat_config(config) == {
        "model/name": "m",
        "model/lora_rank": 0,
        "eval/pass_k": "[1, 4]",
        "eval/every": "null",
        "top": 1.5,
    }


def test_sample_table_takes_every_column_and_encodes_structures():
    rows = [
        {"problem_id": "1", "prompt": [{"role": "user", "content": "hi"}], "reward": 0.5},
        {"problem_id": "2", "prompt": "plain", "components": {"a": 1.0}},
    ]
    columns, data = sample_table(rows, step=3)
    assert columns == ["step", "problem_id", "prompt", "reward", "components"]
    assert data[0] == [3, "1", '[{"role": "user", "content": "hi"}]', 0.5, None]
    assert data[1] == [3, "2", "plain", None, '{"a": 1.0}']
    assert samples_key(rows) == "samples/train"
    assert samples_key([{"eval": True, **r} for r in rows]) == "samples/eval"


def test_unknown_and_missing_trackers_fail_with_one_clear_line(monkeypatch):
    check_trackers(())
    with pytest.raises(ValueError, match="unknown trackers \\['mlflow'\\]"):
        check_trackers(["mlflow"])
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ImportError, match=r"pip install 'rlvr\[wandb\]'"):
        check_trackers(["wandb"])


def test_a_missing_tracker_library_stops_rlvr_train_before_the_model_loads(monkeypatch, tmp_path, capsys):
    from rlvr.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    code = main(
        [
            "train",
            f"model.name={tmp_path / 'no-such-model'}",  # loading it would fail with another error
            "log.report_to=[tensorboard]",
            f"log.run_dir={tmp_path / 'run'}",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "needs the tensorboard package: pip install 'rlvr[tensorboard]'" in err
    assert not (tmp_path / "run").exists()


class Recorder:
    def __init__(self):
        self.metrics, self.samples, self.closed = [], [], False

    def log_metrics(self, step, metrics):
        self.metrics.append((step, dict(metrics)))

    def log_samples(self, step, rows):
        self.samples.append((step, list(rows)))

    def close(self):
        self.closed = True


def test_run_log_hands_trackers_what_it_writes(tmp_path):
    tracker = Recorder()
    log = RunLog(tmp_path, total_steps=2, progress=False, trackers=[tracker])
    log.log(0, {"reward_mean": 0.5, "kl_ref": math.nan})
    log.samples(0, [{"problem_id": "p", "completion": "c"}])
    log.close()
    ((step, metrics),) = tracker.metrics
    assert step == 0 and metrics["reward_mean"] == 0.5 and math.isnan(metrics["kl_ref"])
    assert tracker.samples == [(0, [{"problem_id": "p", "completion": "c"}])]
    assert tracker.closed


# -- a short run, read back by the trackers' own readers -------------------------------------------------------------


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory):
    pytest.importorskip("tensorboard")
    pytest.importorskip("wandb")
    from rlvr.train import train

    tiny = save_tiny_model(tmp_path_factory.mktemp("tiny"))
    env_id = f"test{uuid.uuid4().hex[:6]}/Letters-v0"
    rlvr.register_env(env_id, LetterEnv)
    run_dir = tmp_path_factory.mktemp("tracked") / "run"
    mp = pytest.MonkeyPatch()
    mp.delenv("WANDB_MODE", raising=False)  # the default must be offline: no network here
    mp.setenv("WANDB_SILENT", "true")
    try:
        cfg = load_config(
            None,
            [
                f"model.name={tiny}",
                "model.chat_template=false",
                "model.autocast=none",
                f"env.id={env_id}",
                "rollout.max_new_tokens=4",
                "rollout.prompts_per_step=2",
                "rollout.group_size=4",
                "train.steps=3",
                "eval.problems=4",
                "eval.every=2",
                "log.samples_every=1",
                "log.progress=false",
                "log.plots=false",
                "log.report_to=[tensorboard, wandb]",
                f"log.run_dir={run_dir}",
            ],
        )
        train(cfg)
    finally:
        rlvr.unregister_env(env_id)
        mp.undo()
    return run_dir


def expected_scalars(run_dir):
    """``(metric, step) -> value`` from metrics.jsonl; at a step logged twice the later value wins."""
    out = {}
    for record in read_metrics(run_dir):
        step = record.pop("step")
        record.pop("time")
        for key, value in scalars(record).items():
            out[key, step] = value
    return out


def test_tensorboard_reader_loads_every_metric_config_and_samples(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tracked_run / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    expected = expected_scalars(tracked_run)
    assert {k for k, _ in expected} >= {"reward_mean", "loss", "eval/accuracy", "time/step", "lr"}
    assert set(acc.Tags()["scalars"]) == {k for k, _ in expected}
    for (key, step), value in expected.items():
        events = {e.step: e.value for e in acc.Scalars(key)}
        assert events[step] == pytest.approx(value, rel=1e-6), (key, step)
    tensors = acc.Tags()["tensors"]
    assert {"config/text_summary", "samples/train/text_summary", "samples/eval/text_summary"} <= set(tensors)
    from tensorboard.plugins.hparams import plugin_data_pb2

    start = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(start).session_start_info.hparams
    assert hparams["rollout/group_size"].number_value == 4
    assert hparams["log/report_to"].string_value == '["tensorboard", "wandb"]'
    config_text = acc.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert '"report_to": [' in config_text and '"group_size": 4' in config_text
    table = acc.Tensors("samples/train/text_summary")[0].tensor_proto.string_val[0].decode()
    assert table.startswith("| step | problem_id | prompt | completion | reward | components |")
    assert len(table.splitlines()) == 2 + 2  # header, rule, one row per problem of the step


def wandb_records(path):
    """The protobuf records of a ``.wandb`` file: a 7-byte W&B header, then a LevelDB log of 32 KiB blocks."""
    from wandb.proto.wandb_internal_pb2 import Record

    data = path.read_bytes()
    assert data[:4] == b":W&B", data[:7]
    pos, block, payload = 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        payload += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL, or LAST of FIRST/MIDDLE/LAST
            yield Record.FromString(payload)
            payload = b""


def test_wandb_offline_run_holds_every_metric_config_and_tables(tracked_run):
    (run_file,) = (tracked_run / "wandb").glob("offline-run-*/run-*.wandb")
    logged, config, tables = {}, {}, {}
    for record in wandb_records(run_file):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            step = record.history.step.num
            for item in record.history.item:
                path, value = [item.key] if item.key else list(item.nested_key), json.loads(item.value_json)
                if len(path) > 1:  # a media value (a table) is logged field by field
                    tables[path[0], step, path[-1]] = value
                elif not path[0].startswith("_"):  # wandb's own _step, _runtime, _timestamp
                    logged[path[0], step] = value
        elif kind == "run":
            config.update({item.key: json.loads(item.value_json) for item in record.run.config.update})
    expected = expected_scalars(tracked_run)
    assert logged.keys() == expected.keys()
    for key, value in expected.items():
        assert logged[key] == pytest.approx(value, rel=1e-9), key
    assert config["rollout"]["group_size"] == 4 and config["log"]["report_to"] == ["tensorboard", "wandb"]
    train_steps = {r["step"] for r in read_metrics(tracked_run) if "reward_mean" in r}
    eval_steps = {r["step"] for r in read_metrics(tracked_run) if "eval/accuracy" in r}
    assert {(n, s) for n, s, f in tables if f == "_type"} == {("samples/train", s) for s in train_steps} | {
        ("samples/eval", s) for s in eval_steps
    }
    assert {v for (n, s, f), v in tables.items() if f == "_type"} == {"table-file"}
    assert {tables["samples/train", s, "nrows"] for s in train_steps} == {2}
