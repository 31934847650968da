"""`rlvr make-pairs` then `rlvr train-rm` on a tiny model and a toy environment, in process."""

import json
import uuid

import pytest
from toymodels import LetterEnv, save_tiny_model

import rlvr
from rlvr.cli import main
from rlvr.preference.pairs import load_pairs
from rlvr.preference.reward_model import load_reward_model


@pytest.fixture(scope="module")
def letters():
    env_id = f"test{uuid.uuid4().hex[:6]}/Letters-v0"
    rlvr.register_env(env_id, LetterEnv)
    yield env_id
    rlvr.unregister_env(env_id)


def test_make_pairs_then_train_a_reward_model(letters, tmp_path, capsys):
    model = save_tiny_model(tmp_path / "tiny")
    pairs_file = tmp_path / "pairs.jsonl"
    common = ["--model", model, "--no-chat-template", "--device", "cpu"]
    assert (
        main(
            [
                "make-pairs",
                "--env",
                letters,
                "--prompts",
                "24",
                "--n",
                "8",
                "--max-new-tokens",
                "4",
                "--out",
                str(pairs_file),
                *common,
            ]
        )
        == 0
    )
    pairs = load_pairs(str(pairs_file))
    assert pairs and all(p.meta["chosen_reward"] > p.meta["rejected_reward"] for p in pairs)
    assert f"{len(pairs)} pairs from" in capsys.readouterr().out

    out_dir, summary = tmp_path / "rm", tmp_path / "summary.json"
    argv = [
        "train-rm",
        "--data",
        str(pairs_file),
        "--out",
        str(out_dir),
        "--lr",
        "3e-3",
        "--epochs",
        "2",
        "--json",
        str(summary),
        *common,
    ]
    assert main(argv) == 0
    report = json.loads(summary.read_text())
    assert report["train_pairs"] + report["held_out_pairs"] == len(pairs) and report["steps"] > 0
    assert 0.0 <= report["held_out_accuracy"] <= 1.0
    rm, _ = load_reward_model(out_dir, device="cpu")
    assert json.loads((out_dir / "reward_model.json").read_text())["held_out_accuracy"] == report["held_out_accuracy"]
    assert rm.head.weight.shape == (1, 32)


def test_bad_input_is_one_line(tmp_path, capsys):
    assert main(["train-rm", "--data", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "rm")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]
