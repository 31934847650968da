"""A plug-in environment and verifier: repeat the word you were given."""

import rlvr


def echoes(completion: str, problem: rlvr.Problem) -> float:
    return float(completion.strip() == problem.reference)


class EchoEnv(rlvr.DatasetEnv):
    def __init__(self, **kwargs):
        words = ["alpha", "beta", "gamma"]
        problems = [rlvr.Problem(id=w, prompt=f"Repeat: {w}", reference=w) for w in words]
        super().__init__(problems, **{"reward": "toy-echo", **kwargs})
