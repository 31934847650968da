"""Learned reward models: a transformer trunk with a scalar head.

They are trained with the Bradley-Terry loss on preference pairs (the RLHF
lecture slides, Ahn, 2026, "Reward Model Training").

The score is read at the last non-padding token of ``prompt + completion + EOS``
(the RLHF lecture slides: "a scalar score at the EOS token"). Sequences are
right-padded and, when too long, cut from the left, so the token read is always
the completion's end.

Saved as a folder: ``model.safetensors`` (trunk and head), the trunk's
``config.json``, the tokenizer, and ``reward_model.json`` (what it was trained on
and its held-out accuracy). The scores are unbounded logits whose scale only
means something relative to each other (Bradley-Terry fixes differences, not the
level): normalise them before mixing with rule-based rewards (see
:class:`rlvr.preference.reward_verifier.RewardModelVerifier`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from rlvr.precision import autocast
from rlvr.preference.losses import bradley_terry_loss
from rlvr.preference.pairs import PreferencePair
from rlvr.tokens import encode_texts, position_ids

__all__ = [
    "RewardModel",
    "check_reward_model_folder",
    "load_reward_model",
    "pairwise_accuracy",
    "save_reward_model",
    "train_reward_model",
]

MARKER = "reward_model.json"


class RewardModel(nn.Module):
    """``r(x, y)``: a trunk (the causal LM's base model, no LM head) plus ``Linear(H, 1)``.

    Built from a causal LM (``RewardModel(AutoModelForCausalLM...)``) or a bare
    trunk. The head starts small and random (std ``1/sqrt(H+1)``) so the first
    gradients reach the trunk.
    """

    def __init__(self, model: nn.Module, autocast: torch.dtype | None = None) -> None:
        super().__init__()
        self.trunk = getattr(model, "base_model", model)
        self.config = model.config
        self.autocast = autocast
        hidden = model.config.hidden_size
        self.head = nn.Linear(hidden, 1)
        nn.init.normal_(self.head.weight, std=1.0 / math.sqrt(hidden + 1))
        nn.init.zeros_(self.head.bias)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Scores ``[N]`` of right-padded sequences ``[N, L]``."""
        with autocast(self.trunk, self.autocast):
            out = self.trunk(
                input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask)
            )
        positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
        last = (attention_mask * positions).argmax(dim=1)  # [N] index of the last real token
        hidden = out.last_hidden_state[torch.arange(len(last), device=last.device), last]  # [N, H]
        return self.head(hidden.to(self.head.weight.dtype)).squeeze(-1)


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


@torch.no_grad()
def score(
    rm: RewardModel,
    tokenizer: Any,
    prompts: Sequence[Any],
    completions: Sequence[str],
    *,
    batch_size: int = 16,
    chat_template: bool = True,
    max_length: int = 512,
) -> Tensor:
    """Scores ``[N]`` (float32, on the CPU) of ``completions[i]`` as replies to ``prompts[i]``."""
    was_training = rm.training
    rm.eval()
    out = []
    for i in range(0, len(prompts), batch_size):
        ids, mask = encode_texts(
            tokenizer, prompts[i : i + batch_size], completions[i : i + batch_size],
            chat_template=chat_template, max_length=max_length, device=_device(rm),
        )  # fmt: skip
        out.append(rm(ids, mask).float().cpu())
    rm.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)


def pairwise_accuracy(
    rm: RewardModel, tokenizer: Any, pairs: Sequence[PreferencePair], **kwargs: Any
) -> dict[str, float]:
    """Held-out metrics of a reward model on preference pairs.

    ``accuracy`` (share of pairs with ``r(chosen) > r(rejected)``, ties wrong),
    ``margin`` (mean ``r_w - r_l``), ``loss`` (Bradley-Terry) and ``pairs`` (how
    many were scored). ``kwargs`` go to :func:`score`.
    """
    prompts = [p.prompt for p in pairs]
    chosen = score(rm, tokenizer, prompts, [p.chosen for p in pairs], **kwargs)
    rejected = score(rm, tokenizer, prompts, [p.rejected for p in pairs], **kwargs)
    loss, stats = bradley_terry_loss(chosen, rejected)
    return {
        "accuracy": stats["rewards/accuracy"],
        "margin": stats["rewards/margin"],
        "loss": float(loss),
        "pairs": len(pairs),
    }


def train_reward_model(
    rm: RewardModel,
    tokenizer: Any,
    pairs: Sequence[PreferencePair],
    *,
    epochs: int = 1,
    lr: float = 1e-5,
    batch_size: int = 8,
    max_grad_norm: float | None = 1.0,
    chat_template: bool = True,
    max_length: int = 512,
    seed: int = 0,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """Bradley-Terry training with AdamW; returns each step's stats.

    One epoch by default: reward models overfit preference data quickly (the RLHF
    lecture slides, Ahn, 2026).
    Chosen and rejected go through the trunk in one forward of ``2 x batch_size``
    sequences (hidden cost: memory grows with the longest of them).
    """
    if not pairs:
        raise ValueError("no preference pairs to train on")
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.AdamW([p for p in rm.parameters() if p.requires_grad], lr=lr)
    rm.train()
    history = []
    step = 0
    for _ in range(epochs):
        order = rng.permutation(len(pairs))
        for start in range(0, len(order), batch_size):
            batch = [pairs[i] for i in order[start : start + batch_size]]
            prompts = [p.prompt for p in batch] * 2
            texts = [p.chosen for p in batch] + [p.rejected for p in batch]
            ids, mask = encode_texts(
                tokenizer, prompts, texts, chat_template=chat_template, max_length=max_length, device=_device(rm)
            )
            scores = rm(ids, mask).float()  # [2B]: chosen, then rejected
            loss, stats = bradley_terry_loss(scores[: len(batch)], scores[len(batch) :])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if max_grad_norm is not None:
                stats["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(rm.parameters(), max_grad_norm))
            optimizer.step()
            history.append(stats)
            if on_step is not None:
                on_step(step, stats)
            step += 1
    return history


def save_reward_model(rm: RewardModel, tokenizer: Any, out_dir: str | Path, info: dict[str, Any] | None = None) -> Path:
    """Write the folder :func:`load_reward_model` reads."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in rm.state_dict().items()}
    save_file(state, out / "model.safetensors")
    rm.config.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / MARKER).write_text(json.dumps({"format": "rlvr-reward-model", **(info or {})}, indent=2, default=str))
    return out


def check_reward_model_folder(path: str | Path) -> Path:
    """``path`` as a ``Path`` when it holds a folder written by :func:`save_reward_model`; else ``FileNotFoundError``."""
    folder = Path(path)
    if not (folder / MARKER).exists():
        raise FileNotFoundError(f"{path} is not a reward model folder (no {MARKER}); make one with rlvr train-rm")
    return folder


def load_reward_model(
    path: str | Path, *, device: str = "auto", autocast: torch.dtype | None = None
) -> tuple[RewardModel, Any]:
    """``(reward_model, tokenizer)`` from a folder written by :func:`save_reward_model`."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from rlvr.models import resolve_device

    folder = check_reward_model_folder(path)
    config = AutoConfig.from_pretrained(folder)
    rm = RewardModel(AutoModel.from_config(config), autocast=autocast)
    rm.load_state_dict(load_file(folder / "model.safetensors"))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return rm.to(resolve_device(device)).eval(), tokenizer
