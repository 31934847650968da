"""Register a new environment in a few lines, then run it like any gymnasium env.

python examples/custom_env.py
"""

import numpy as np

import rlvr

WORDS = ["planet", "reward", "gradient", "verifier", "token", "policy", "sample", "bandit"]


class ReverseWordEnv(rlvr.ProceduralEnv):
    r"""Spell a word backwards; the answer goes in \boxed{}."""

    def default_reward(self):
        """Case-sensitive exact match against the boxed answer."""
        return rlvr.make_verifier("exact-match", extract="boxed", case_sensitive=True)

    def generate(self, rng: np.random.Generator, problem_id: str) -> rlvr.Problem:
        """Draw a word with ``rng``; the reference is the word reversed."""
        word = WORDS[int(rng.integers(len(WORDS)))]
        prompt = f"Spell the word '{word}' backwards. Put the result in \\boxed{{}}."
        return rlvr.Problem(id=problem_id, prompt=prompt, reference=word[::-1])


rlvr.register_env("demo/ReverseWord-v0", ReverseWordEnv, split="all")

if __name__ == "__main__":
    env = rlvr.make("demo/ReverseWord-v0")
    rng = np.random.default_rng(0)
    total = 0.0
    for episode in range(6):
        prompt, info = env.reset(seed=episode)
        word = prompt.split("'")[1]
        guess = word[::-1] if rng.random() < 0.5 else word  # a coin-flip "policy"
        _, reward, terminated, truncated, info = env.step(f"\\boxed{{{guess}}}")
        total += reward
        print(f"{prompt:70} -> {guess:10} reward {reward:.0f}")
    print(f"mean reward {total / 6:.2f}")
