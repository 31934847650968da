"""Register a new verifier in a few lines, then use it as (part of) an environment's reward.

python examples/custom_verifier.py
"""

import rlvr
from rlvr.verifiers.extract import boxed_contents


@rlvr.register_verifier("close-enough")
def close_enough(completion: str, problem: rlvr.Problem, *, rel_tol: float = 0.01) -> rlvr.Verdict:
    """1 when the boxed number is within rel_tol of the reference (estimates welcome)."""
    boxes = boxed_contents(completion)
    if not boxes or len(boxes) != 1:
        return rlvr.Verdict.incorrect("need exactly one \\boxed{} answer")
    try:
        guess = float(boxes[0].replace(",", ""))
    except ValueError:
        return rlvr.Verdict.incorrect("the boxed answer is not a number", boxed=boxes[0])
    gold = float(problem.reference)
    ok = abs(guess - gold) <= rel_tol * max(abs(gold), 1.0)
    return rlvr.Verdict.from_score(float(ok), guess=guess, gold=gold)


if __name__ == "__main__":
    # Three-digit multiplication, where an answer within 1% counts.
    env = rlvr.make("rlvr/Arithmetic-v0", digits=3, operations="*", reward="close-enough")
    prompt, _ = env.reset(seed=0)
    gold = int(env.unwrapped.problem.reference)
    print(prompt)
    for completion in [f"\\boxed{{{gold}}}", f"About \\boxed{{{round(gold, -2)}}}", "\\boxed{12}", "no idea"]:
        env.reset(seed=0)
        _, reward, _, _, info = env.step(completion)
        print(f"  reward {reward:.1f}  {completion!r:40}  {info['details']}")
