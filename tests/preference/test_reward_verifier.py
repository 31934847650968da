"""The reward-model verifier: batched scores, running normalisation, clipping, and its registration."""

import numpy as np
import pytest
from toymodels import char_tokenizer, tiny_llama

import rlvr
from rlvr.preference.reward_model import RewardModel, save_reward_model, score
from rlvr.preference.reward_verifier import RewardModelVerifier, RunningMoments
from rlvr.types import Problem, Status


@pytest.fixture
def rm_and_tok():
    tok = char_tokenizer()
    return RewardModel(tiny_llama(len(tok), seed=3)), tok


PROBLEMS = [Problem(id=str(i), prompt=p, reference=None) for i, p in enumerate(["abc", "de", "fgh", "ij"])]
REPLIES = ["jjj", "a", "bcd", "eeee"]


def test_raw_scores_match_the_model_and_are_unbounded_incorrect_verdicts(rm_and_tok):
    rm, tok = rm_and_tok
    verifier = RewardModelVerifier((rm, tok), chat_template=False, batch_size=3)
    verdicts = verifier.batch(REPLIES, PROBLEMS)
    expected = score(rm, tok, [p.prompt for p in PROBLEMS], REPLIES, chat_template=False).tolist()
    assert [v.score for v in verdicts] == pytest.approx(expected, abs=1e-6)
    assert all(v.status is Status.INCORRECT for v in verdicts)
    assert verifier(REPLIES[0], PROBLEMS[0]).score == pytest.approx(expected[0], abs=1e-6)


def test_normalisation_and_clipping(rm_and_tok):
    rm, tok = rm_and_tok
    rm.head.bias.data.fill_(100.0)  # a large offset normalisation must remove
    verifier = RewardModelVerifier((rm, tok), chat_template=False, normalize=True, clip=1.0)
    scores = np.array([v.score for v in verifier.batch(REPLIES, PROBLEMS)])
    assert abs(scores.mean()) < 0.5 and np.all(np.abs(scores) <= 1.0)
    assert verifier.moments.count == 4
    thresholded = RewardModelVerifier((rm, tok), chat_template=False, correct_above=50.0)
    assert all(v.status is Status.CORRECT for v in thresholded.batch(REPLIES, PROBLEMS))
    with pytest.raises(ValueError, match="clip"):
        RewardModelVerifier((rm, tok), clip=0.0)


def test_running_moments_equal_the_batch_moments():
    values = np.random.default_rng(0).normal(3.0, 2.0, size=101)
    moments = RunningMoments()
    for chunk in np.array_split(values, 7):
        moments.update(chunk.tolist())
    assert moments.mean == pytest.approx(values.mean()) and moments.std == pytest.approx(values.std())


def test_registered_and_loaded_from_a_folder(rm_and_tok, tmp_path):
    rm, tok = rm_and_tok
    folder = save_reward_model(rm, tok, tmp_path / "rm")
    assert "reward-model" in rlvr.verifier_entries()
    verifier = rlvr.make_verifier("reward-model", path=str(folder), device="cpu", chat_template=False)
    assert verifier(REPLIES[1], PROBLEMS[1]).score == pytest.approx(
        score(rm, tok, ["de"], ["a"], chat_template=False).item(), abs=1e-5
    )
    with pytest.raises(FileNotFoundError, match="rlvr train-rm"):
        RewardModelVerifier(str(tmp_path))
