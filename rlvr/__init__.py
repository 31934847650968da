r"""rlvr: reinforcement learning of language models against verifiable rewards.

The public API::

    import rlvr
    env = rlvr.make("rlvr/Arithmetic-v0", digits=2)      # a gymnasium.Env
    prompt, info = env.reset(seed=0)
    _, reward, terminated, truncated, info = env.step("... \\boxed{85}")

Importing rlvr registers the built-in environments and verifiers by name only;
nothing heavy (torch, math-verify, sympy) is imported until it is used.
"""

from rlvr.batched import BatchedEnv, BatchResult
from rlvr.core import BanditEnv, DatasetEnv, ProceduralEnv, SelfCheckError
from rlvr.registry import (
    DuplicateRegistrationError,
    NotRegisteredError,
    env_entries,
    load_plugins,
    make,
    make_verifier,
    register_env,
    register_verifier,
    unregister_env,
    unregister_verifier,
    verifier_entries,
)
from rlvr.rewards import Clip, Gate, WeightedSum, as_verifier, verify, verify_batch
from rlvr.types import Problem, Status, Verdict, Verifier, VerifierError

# Register the built-ins (names and 'module:Class' strings only).
import rlvr.envs  # noqa: E402,F401  isort: skip
import rlvr.verifiers  # noqa: E402,F401  isort: skip

__version__ = "0.1.0"

__all__ = [
    "BanditEnv",
    "BatchResult",
    "BatchedEnv",
    "Clip",
    "DatasetEnv",
    "DuplicateRegistrationError",
    "Gate",
    "NotRegisteredError",
    "Problem",
    "ProceduralEnv",
    "SelfCheckError",
    "Status",
    "Verdict",
    "Verifier",
    "VerifierError",
    "WeightedSum",
    "as_verifier",
    "env_entries",
    "load_plugins",
    "make",
    "make_verifier",
    "register_env",
    "register_verifier",
    "unregister_env",
    "unregister_verifier",
    "verifier_entries",
    "verify",
    "verify_batch",
]
