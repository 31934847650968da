"""A toy guessing game and a tiny model that can play it: no network, seconds on CPU."""

from __future__ import annotations

import copy

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from toymodels import tiny_llama
from transformers import PreTrainedTokenizerFast

from rlvr.envs.guess import GuessEnv
from rlvr.policy import Policy

CHARS = "abcdefghijklmnopqrstuvwxyz0123456789 :\n"


def game_tokenizer() -> PreTrainedTokenizerFast:
    """One token per character of :data:`CHARS`, plus pad, EOS and BOS."""
    vocab = {t: i for i, t in enumerate(["<pad>", "<eos>", "<bos>", *CHARS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>")


def game_env(**kwargs) -> GuessEnv:
    """Guess 1, 2 or 3 in two tries: the first digit of a turn is the guess; 'higher'/'lower' after a miss.

    Binary search (2, then 3 or 1) always wins; ignoring the feedback wins at most 2/3 of games.
    """
    options = dict(low=1, high=3, max_turns=2, pattern=r"(\d)", prompt="guess", split="all")
    return GuessEnv(**{**options, **kwargs})


class GameRun:
    """A tiny Llama, its frozen copy and the game's tokenizer."""

    def __init__(self, seed: int = 0) -> None:
        self.tokenizer = game_tokenizer()
        self.model = tiny_llama(len(self.tokenizer), seed=seed)
        self.policy = Policy(self.model)
        self.reference = Policy(copy.deepcopy(self.model).eval().requires_grad_(False))
        torch.manual_seed(seed)
