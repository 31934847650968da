import subprocess
import sys

import gymnasium as gym
import pytest

import rlvr
from rlvr import DuplicateRegistrationError, NotRegisteredError, Problem


def test_gymnasium_make_and_rlvr_make_build_the_same_env():
    a, b = rlvr.make("rlvr/Arithmetic-v0", digits=3), gym.make("rlvr/Arithmetic-v0", digits=3)
    assert type(a) is type(b) and type(a.unwrapped) is type(b.unwrapped)
    assert a.reset(seed=3) == b.reset(seed=3)
    assert a.unwrapped.digits == 3


def test_default_kwargs_are_overridden_by_make(unique_id):
    env_id = unique_id()
    rlvr.register_env(env_id, "rlvr.envs.arithmetic:ArithmeticEnv", digits=1, terms=3)
    env = rlvr.make(env_id, terms=4).unwrapped
    assert (env.digits, env.terms) == (1, 4)
    assert rlvr.env_entries()[env_id].kwargs == {"digits": 1, "terms": 3}


def test_duplicates_are_errors(unique_id):
    with pytest.raises(DuplicateRegistrationError, match="already registered.*rlvr"):
        rlvr.register_env("rlvr/Arithmetic-v0", "rlvr.envs.arithmetic:ArithmeticEnv")
    with pytest.raises(DuplicateRegistrationError, match="'math' is already registered"):
        rlvr.register_verifier("math", lambda completion, problem: 1.0)
    name = unique_id("verifier")
    rlvr.register_verifier(name, lambda completion, problem: 1.0)
    with pytest.raises(DuplicateRegistrationError):
        rlvr.register_verifier(name, lambda completion, problem: 0.0)


def test_unknown_names_list_close_matches():
    with pytest.raises(NotRegisteredError, match="did you mean 'rlvr/Arithmetic-v0'"):
        rlvr.make("rlvr/Arithmetik-v0")
    with pytest.raises(NotRegisteredError, match="did you mean 'exact-match'"):
        rlvr.make_verifier("exact_match")
    with pytest.raises(NotRegisteredError, match="rlvr verifiers"):
        rlvr.make_verifier("zzzzzz")


def test_verifier_registration_forms(unique_id, problem):
    name = unique_id("verifier")

    @rlvr.register_verifier(name, description="contains the gold answer")
    def contains(completion, problem, *, times=1):
        return float(completion.count(problem.reference) >= times)

    assert rlvr.verifier_entries()[name].description == "contains the gold answer"
    assert rlvr.verify(rlvr.make_verifier(name), "4 and 4", problem).score == 1.0
    assert rlvr.verify(rlvr.make_verifier(name, times=3), "4 and 4", problem).score == 0.0

    cls_name = unique_id("verifier")
    rlvr.register_verifier(cls_name, "rlvr.verifiers.exact_match:ExactMatch", extract="last_line")
    assert rlvr.make_verifier(cls_name).extract == "last_line"
    assert rlvr.make_verifier(cls_name, extract="boxed").extract == "boxed"
    with pytest.raises(TypeError, match="its options are .*extract"):
        rlvr.make_verifier(cls_name, extrct="boxed")


def test_signatures_are_checked_at_registration(unique_id):
    with pytest.raises(TypeError, match=r"fn\(completion, problem\)"):
        rlvr.register_verifier(unique_id("verifier"), lambda text: 1.0)

    class NoCall:
        pass

    with pytest.raises(TypeError, match="no __call__"):
        rlvr.register_verifier(unique_id("verifier"), NoCall)
    with pytest.raises(ValueError, match="package.module:Name"):
        rlvr.register_verifier(unique_id("verifier"), "no_colon_here")


def test_lazy_string_targets_fail_clearly_when_loaded(unique_id):
    name = unique_id("verifier")
    rlvr.register_verifier(name, "rlvr_no_such_module:thing")
    with pytest.raises(ImportError, match="rlvr_no_such_module"):
        rlvr.make_verifier(name)
    missing = unique_id("verifier")
    rlvr.register_verifier(missing, "rlvr.verifiers.format:NoSuchClass")
    with pytest.raises(ImportError, match="no attribute 'NoSuchClass'"):
        rlvr.make_verifier(missing)


def test_unregister_env_removes_it_from_gymnasium(unique_id):
    env_id = unique_id()
    rlvr.register_env(env_id, "rlvr.envs.countdown:CountdownEnv")
    assert env_id in gym.registry
    rlvr.unregister_env(env_id)
    assert env_id not in gym.registry and env_id not in rlvr.env_entries()


def test_callable_entry_point(unique_id):
    env_id = unique_id()
    rlvr.register_env(
        env_id, lambda **kw: rlvr.DatasetEnv([Problem(id="a", prompt="p", reference="r")], reward="exact-match", **kw)
    )
    env = rlvr.make(env_id)
    env.reset()
    assert env.step("r")[1] == 1.0


def test_import_is_light_and_loading_is_lazy():
    code = (
        "import sys, rlvr\n"
        "heavy = [m for m in ('torch', 'transformers', 'math_verify', 'sympy', 'rlvr.envs.arithmetic', 'rlvr.verifiers.format') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert 'rlvr/Arithmetic-v0' in rlvr.env_entries() and 'math' in rlvr.verifier_entries()\n"
        "assert 'math_verify' not in sys.modules\n"
        "rlvr.make_verifier('math')\n"
        "assert 'rlvr.verifiers.math_equivalence' in sys.modules and 'math_verify' not in sys.modules\n"
        "from rlvr.verifiers import BoxedOnce; from rlvr.envs import CountdownEnv\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
