"""Tiny models and a toy bandit task, built from a config: no network, seconds on CPU."""

from __future__ import annotations

import copy

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

import rlvr
from rlvr.agents import Experience
from rlvr.policy import Policy
from rlvr.rollout import SamplingParams, TransformersEngine

LETTERS = "abcdefghij"


def char_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {t: i for i, t in enumerate(["<pad>", "<eos>", "<bos>", *LETTERS, " "])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>")


def wide_tokenizer(extra: int = 300):
    """A character tokenizer with ``extra`` more tokens, so the vocabulary is far above top-k's 50."""
    words = ["<pad>", "<eos>", "<bos>", *"abcdefghij", " ", *[f"<t{i}>" for i in range(extra)]]
    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(words)}, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>")


def tiny_llama(vocab_size: int = 14, seed: int = 0, hidden: int = 32, layers: int = 2) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config)


def target_fraction(completion: str, problem: rlvr.Problem, *, length: int = 4) -> float:
    """Toy reward: the share of the first `length` characters that are the target letter."""
    return completion[:length].count(problem.reference) / length


def toy_env(target: str = "j") -> rlvr.BatchedEnv:
    problems = [rlvr.Problem(id=p, prompt=p, reference=target) for p in ["abc", "cab", "bad", "ace", "fig", "hide"]]
    return rlvr.BatchedEnv(rlvr.DatasetEnv(problems, reward=target_fraction))


class ToyRun:
    """The whole loop on a toy task: reset, sample, score through the env, update."""

    def __init__(self, seed: int = 0, groups: int = 4, group_size: int = 8, max_new_tokens: int = 4) -> None:
        self.tokenizer = char_tokenizer()
        self.model = tiny_llama(len(self.tokenizer), seed=seed)
        self.policy = Policy(self.model)
        self.reference = Policy(copy.deepcopy(self.model).eval().requires_grad_(False))
        self.engine = TransformersEngine(self.model, self.tokenizer, chat_template=False)
        self.env = toy_env()
        self.groups, self.group_size, self.max_new_tokens = groups, group_size, max_new_tokens

    def experience(self, step: int) -> Experience:
        problems = self.env.reset(self.groups, seed=step)
        params = SamplingParams(n=self.group_size, max_new_tokens=self.max_new_tokens, seed=step)
        rollouts = self.engine.generate([p.prompt for p in problems], params)
        result = self.env.step(problems, rollouts.groups())
        return Experience.from_rollouts(rollouts, result.rewards, result.scored)

    def train(self, agent, steps: int) -> list[dict[str, float]]:
        history = []
        for step in range(steps):
            history.append(agent.update(self.experience(step)))
        return history


class LetterEnv(rlvr.ProceduralEnv):
    """The toy task as a registered environment (for trainer tests).

    The reward is the share of the first four characters that are 'j'.
    """

    def default_reward(self):
        return rlvr.as_verifier(target_fraction, "target-fraction")

    def generate(self, rng, problem_id):
        prompt = "".join(LETTERS[int(i)] for i in rng.integers(0, 9, size=3))
        return rlvr.Problem(id=problem_id, prompt=prompt, reference="j")


def save_tiny_model(path, seed: int = 0) -> str:
    """A tiny Llama and its tokenizer in a folder, loadable like any Hugging Face model."""
    tok = char_tokenizer()
    tiny_llama(len(tok), seed=seed).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def math_score_in_child(completion: str, reference: str) -> float:
    """Run the math verifier inside a (daemonic) multiprocessing pool worker."""
    from rlvr.verifiers.math_equivalence import MathVerifier

    return MathVerifier()(completion, rlvr.Problem(id="child", prompt="", reference=reference)).score
