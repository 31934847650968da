"""Built-in verifiers, installed as ``rlvr.verifiers``.

Importing this package registers every built-in by name (``rlvr verifiers`` lists
them) without importing any of them: ``math-verify`` and ``sympy`` load only when
the math verifier is first built. Classes are also reachable as attributes,
e.g. ``from rlvr.verifiers import MathVerifier``, loaded on first access.
"""

from rlvr.registry import register_builtins

_BUILTINS = {
    # name: (target, description)
    "exact-match": ("rlvr.verifiers.exact_match:ExactMatch", "normalised exact match against one or more gold answers"),
    "math": (
        "rlvr.verifiers.math_equivalence:MathVerifier",
        "math equivalence of the \\boxed{} answer (math-verify, sympy)",
    ),
    "boxed-once": ("rlvr.verifiers.format:BoxedOnce", "format: exactly one non-empty \\boxed{}"),
    "think-answer": ("rlvr.verifiers.format:ThinkAnswer", "format: <think>...</think><answer>...</answer>"),
    "regex": ("rlvr.verifiers.format:RegexFormat", "format: the completion matches a regular expression (pattern=...)"),
    "length": ("rlvr.verifiers.format:LengthBounds", "format: length in characters within [min_chars, max_chars]"),
    "code-tests": (
        "rlvr.verifiers.code_tests:CodeTests",
        "code: fraction of the problem's tests the program passes, run in the sandbox",
    ),
    "instructions": (
        "rlvr.verifiers.instructions:InstructionFollowing",
        "instruction following (IFEval's 25 constraints): strict, loose (IFEval's variants) or fraction",
    ),
    "ifbench": (
        "rlvr.verifiers.ifbench:IFBenchFollowing",
        "instruction following (IFBench's out-of-distribution constraints, and IFEval's)",
    ),
    "reward-model": (
        "rlvr.preference.reward_verifier:RewardModelVerifier",
        "a learned reward model's score (path=a folder from rlvr train-rm); unbounded unless normalised",
    ),
    "reward-model-ensemble": (
        "rlvr.preference.reward_ensemble:RewardEnsembleVerifier",
        "several reward models' mean score less a multiple of their spread (paths=[folders], penalty=1.0)",
    ),
    "countdown": (
        "rlvr.verifiers.countdown:CountdownVerifier",
        "Countdown: an expression over the numbers that hits the target",
    ),
}

__getattr__ = register_builtins("verifier", _BUILTINS, "rlvr.verifiers")
__all__ = sorted(target.rpartition(":")[2] for target, _ in _BUILTINS.values())
