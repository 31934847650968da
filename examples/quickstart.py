"""A tour of rlvr without a model: pose problems, score groups of completions, read the breakdown.

    python examples/quickstart.py

A "policy" here is a list of hand-written completions per problem, including the
degenerate ones a policy finds when it games a lenient reward, so you can see
what the default reward pays for each. Training a real model comes with `rlvr train`.
"""

import rlvr
from rlvr.rewards import describe

B = 4  # problems per batch

env = rlvr.make("rlvr/Arithmetic-v0", digits=2, terms=2, operations="+")
print("reward:", describe(env.unwrapped.reward_fn), "\n")

batched = rlvr.BatchedEnv(env)
problems = batched.reset(B, seed=0)


def group(problem: rlvr.Problem) -> dict[str, str]:
    """G = 5 completions for one problem, each showing one behaviour."""
    gold = problem.reference
    return {
        "correct": f"{problem.meta['expression']} = {gold}. The answer is \\boxed{{{gold}}}.",
        "wrong": f"I think it is \\boxed{{{int(gold) + 1}}}.",
        "unboxed": f"The answer is {gold}.",
        "sprayed": f"\\boxed{{{int(gold) - 1}}} or \\boxed{{{gold}}}",
        "empty boxes": "\\boxed{} \\boxed{} \\boxed{}",
    }


groups = [group(p) for p in problems]
result = batched.step(problems, [list(g.values()) for g in groups])

names = list(groups[0])
print(f"{'problem':28}" + "".join(f"{n:>13}" for n in names))
for problem, rewards in zip(problems, result.rewards, strict=True):
    print(f"{problem.prompt.split('?')[0]:28}" + "".join(f"{r:>13.2f}" for r in rewards))
print(f"{'mean':28}" + "".join(f"{m:>13.2f}" for m in result.rewards.mean(axis=0)))

print("\nwhy 'sprayed' earns nothing, from info['details']:")
for leaf, verdict in result.infos[0][3]["details"]["components"].items():
    print(f"  {leaf:15} score {verdict['score']:.0f}  {verdict['details'].get('reason', '')}")
