"""The reward-model ensemble: UWO by hand, members normalised on their own, disagreement penalised."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from toymodels import char_tokenizer, tiny_llama

import rlvr
from rlvr.preference.reward_ensemble import RewardEnsembleVerifier, uncertainty_weighted
from rlvr.preference.reward_model import RewardModel, save_reward_model
from rlvr.preference.reward_verifier import RewardModelVerifier
from rlvr.types import Problem, Status

PROBLEMS = [Problem(id=str(i), prompt=p, reference=None) for i, p in enumerate(["abc", "de", "fgh", "ij", "k"])]
REPLIES = ["jjj", "a", "bcd", "eeee", "ab"]


def member(seed: int):
    tok = char_tokenizer()
    return RewardModel(tiny_llama(len(tok), seed=seed)), tok


def test_uncertainty_weighted_by_hand():
    z = np.array([[1.0, 0.0, -2.0], [3.0, 0.0, 2.0]])  # [K=2, N=3]
    # means 2, 0, 0; population stds 1, 0, 2
    combined, stats = uncertainty_weighted(z, penalty=1.0)
    assert combined == pytest.approx([1.0, 0.0, -2.0])
    assert stats["spread"] == pytest.approx(1.0)
    assert uncertainty_weighted(z, penalty=0.0)[0] == pytest.approx([2.0, 0.0, 0.0])
    assert uncertainty_weighted(z, penalty=0.5)[0] == pytest.approx([1.5, 0.0, -1.0])


def test_uncertainty_weighted_never_rises_with_the_penalty_and_ignores_agreement():
    z = np.random.default_rng(0).normal(size=(4, 50))
    previous = None
    for penalty in (0.0, 0.3, 1.0, 3.0):
        combined, _ = uncertainty_weighted(z, penalty)
        assert np.all(combined <= z.mean(axis=0) + 1e-12)
        if previous is not None:
            assert np.all(combined <= previous + 1e-12)
        previous = combined
    agreeing = np.tile(z[0], (3, 1))
    assert uncertainty_weighted(agreeing, penalty=5.0)[0] == pytest.approx(z[0])


@pytest.mark.parametrize(
    ("z", "penalty", "match"),
    [(np.zeros((1, 3)), 1.0, "K >= 2"), (np.zeros(3), 1.0, "K >= 2"), (np.zeros((2, 3)), -0.1, "penalty")],
)
def test_uncertainty_weighted_rejects_bad_input(z, penalty, match):
    with pytest.raises(ValueError, match=match):
        uncertainty_weighted(z, penalty)


def test_the_ensemble_combines_each_members_own_normalised_scores():
    a, b = member(3), member(4)
    a[0].head.bias.data.fill_(100.0)  # members on different scales: normalising each removes it
    ensemble = RewardEnsembleVerifier([a, b], penalty=0.7, chat_template=False)
    verdicts = ensemble.batch(REPLIES, PROBLEMS)
    singles = [RewardModelVerifier(m, normalize=True, chat_template=False).batch(REPLIES, PROBLEMS) for m in (a, b)]
    z = np.array([[v.score for v in row] for row in singles])  # [2, N]
    expected = z.mean(axis=0) - 0.7 * z.std(axis=0)
    assert [v.score for v in verdicts] == pytest.approx(expected.tolist(), abs=1e-6)
    assert all(v.status is Status.INCORRECT for v in verdicts)
    first = verdicts[0].details
    assert first["member_scores"] == pytest.approx(z[:, 0].tolist(), abs=1e-6)
    assert first["spread"] == pytest.approx(float(z[:, 0].std()), abs=1e-6)
    assert first["raw_scores"] == pytest.approx([row[0].details["raw_score"] for row in singles], abs=1e-4)


def test_a_completion_the_members_disagree_on_scores_below_their_mean():
    a, b = member(3), member(5)
    verdicts = RewardEnsembleVerifier([a, b], penalty=1.0, chat_template=False).batch(REPLIES, PROBLEMS)
    for v in verdicts:
        mean = float(np.mean(v.details["member_scores"]))
        assert v.score == pytest.approx(mean - v.details["spread"], abs=1e-6)
        assert v.score <= mean + 1e-9
    assert max(v.details["spread"] for v in verdicts) > 0.0  # two seeds do disagree somewhere


def test_clip_and_threshold():
    a, b = member(3), member(4)
    clipped = RewardEnsembleVerifier([a, b], penalty=0.0, clip=0.5, chat_template=False)
    assert all(abs(v.score) <= 0.5 for v in clipped.batch(REPLIES, PROBLEMS))
    lenient = RewardEnsembleVerifier([a, b], penalty=0.0, correct_above=-1e9, chat_template=False)
    assert all(v.status is Status.CORRECT for v in lenient.batch(REPLIES, PROBLEMS))


def test_bad_configuration_fails_before_any_model_is_loaded(tmp_path):
    missing = str(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="at least two"):
        RewardEnsembleVerifier([missing])
    with pytest.raises(TypeError, match="list of reward models"):
        RewardEnsembleVerifier(missing)
    with pytest.raises(TypeError, match="list of reward models"):
        RewardEnsembleVerifier(member(3))
    with pytest.raises(ValueError, match="penalty"):
        RewardEnsembleVerifier([missing, missing], penalty=-1.0)
    with pytest.raises(ValueError, match="clip"):
        RewardEnsembleVerifier([missing, missing], clip=0.0)
    with pytest.raises(FileNotFoundError, match="rlvr train-rm"):
        RewardEnsembleVerifier([missing, missing])
    with pytest.raises(ValueError, match="at least two"):
        RewardEnsembleVerifier([])
    with pytest.raises(TypeError, match="list of reward models"):
        RewardEnsembleVerifier(tmp_path)
    kept = str(save_reward_model(*member(3), tmp_path / "rm"))
    with pytest.raises(FileNotFoundError, match="nowhere"):  # the missing member is named, whatever its place
        RewardEnsembleVerifier([kept, missing])


def test_completions_and_problems_must_pair_up():
    ensemble = RewardEnsembleVerifier([member(3), member(4)], chat_template=False)
    with pytest.raises(ValueError, match="4 completions for 5 problems"):
        ensemble.batch(REPLIES[:4], PROBLEMS)
    assert ensemble.batch([], []) == []


def test_registered_and_loaded_from_folders(tmp_path):
    models = [member(3), member(4)]
    folders = [str(save_reward_model(m, tok, tmp_path / f"rm{i}")) for i, (m, tok) in enumerate(models)]
    assert "reward-model-ensemble" in rlvr.verifier_entries()
    verifier = rlvr.make_verifier(
        "reward-model-ensemble", paths=folders, penalty=0.0, device="cpu", chat_template=False
    )
    direct = RewardEnsembleVerifier(models, penalty=0.0, chat_template=False)
    assert [v.score for v in verifier.batch(REPLIES, PROBLEMS)] == pytest.approx(
        [v.score for v in direct.batch(REPLIES, PROBLEMS)], abs=1e-4
    )


def test_a_member_that_fails_leaves_every_members_moments_as_they_were():
    ensemble = RewardEnsembleVerifier([member(3), member(4)], chat_template=False)
    ensemble.batch(REPLIES, PROBLEMS)
    counts = [m.moments.count for m in ensemble.members]

    def broken(completions, problems):
        raise RuntimeError("out of memory")

    ensemble.members[1].batch = broken
    with pytest.raises(RuntimeError, match="out of memory"):
        ensemble.batch(REPLIES, PROBLEMS)
    assert [m.moments.count for m in ensemble.members] == counts == [5, 5]


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, st.tuples(st.integers(2, 5), st.integers(1, 6)), elements=st.floats(-1e3, 1e3)),
    st.floats(0.0, 3.0),
    st.floats(-10.0, 10.0),
    st.floats(0.1, 10.0),
)
def test_uncertainty_weighted_ignores_member_order_and_follows_the_scale(z, penalty, shift, scale):
    combined, _ = uncertainty_weighted(z, penalty)
    assert uncertainty_weighted(z[::-1], penalty)[0] == pytest.approx(combined, abs=1e-6)
    # a common shift moves every score by the shift; a common scale scales them: no level or unit is favoured
    assert uncertainty_weighted(z + shift, penalty)[0] == pytest.approx(combined + shift, abs=1e-6)
    assert uncertainty_weighted(z * scale, penalty)[0] == pytest.approx(combined * scale, rel=1e-6, abs=1e-6)


def test_hostile_completions_score_finite_and_inside_the_clip():
    hostile = ["", " ", "\x00\x1b[2J", "\\boxed{" * 2000, "é" * 20_000, "1" * 5000, "\n" * 300]
    problems = [PROBLEMS[i % len(PROBLEMS)] for i in range(len(hostile))]
    ensemble = RewardEnsembleVerifier([member(3), member(4)], clip=3.0, chat_template=False, max_length=64)
    verdicts = ensemble.batch(hostile, problems)
    assert len(verdicts) == len(hostile)
    assert all(np.isfinite(v.score) and abs(v.score) <= 3.0 for v in verdicts)
    assert all(np.isfinite(v.details["spread"]) for v in verdicts)
