"""Preference pairs: the common ``prompt`` / ``chosen`` / ``rejected`` format.

Pairs are loaded with ``datasets``, or made offline from an environment whose
verifier decides which of two sampled completions is better.

Accepted rows (the shapes TRL, OpenRLHF and most hub preference sets use):

* ``{"prompt": str, "chosen": str, "rejected": str}``;
* ``{"prompt": [messages], "chosen": [messages], "rejected": [messages]}``: the
  chosen / rejected messages are the assistant's turn(s);
* ``{"chosen": [messages], "rejected": [messages]}`` with no prompt: whole
  conversations sharing a prefix, which becomes the prompt.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rlvr.types import Message, Problem

if TYPE_CHECKING:
    from rlvr.preference.rejection import Scored

__all__ = [
    "PreferencePair",
    "counterfactual_pairs",
    "load_pairs",
    "pair_from_row",
    "pairs_from_env",
    "pairs_from_scored",
    "rewrite_boxed_integer",
    "save_pairs",
    "shift_boxed_integer",
    "split_pairs",
]


@dataclass(frozen=True)
class PreferencePair:
    """``chosen`` is preferred to ``rejected`` as a reply to ``prompt`` (text, or chat messages)."""

    prompt: str | tuple[Message, ...]
    chosen: str
    rejected: str
    meta: Mapping[str, Any] = field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        """The pair as a JSON-able row in the common format (``meta`` only when it is not empty)."""
        prompt = self.prompt if isinstance(self.prompt, str) else [dict(m) for m in self.prompt]
        return {
            "prompt": prompt,
            "chosen": self.chosen,
            "rejected": self.rejected,
            **({"meta": dict(self.meta)} if self.meta else {}),
        }


def _is_messages(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(
        isinstance(m, Mapping) and {"role", "content"} <= m.keys() for m in value
    )


def _assistant_text(messages: Sequence[Mapping[str, str]]) -> str:
    return "\n".join(m["content"] for m in messages if m["role"] == "assistant")


def pair_from_row(row: Mapping[str, Any], index: int = 0) -> PreferencePair:
    """One row of a preference set as a :class:`PreferencePair`.

    Args:
        row: a row in one of the accepted shapes (see the module docstring).
        index: the row's position, named in error messages.

    Raises:
        ValueError: the row is malformed; the message names the row and what is wrong.
    """
    if "chosen" not in row or "rejected" not in row:
        raise ValueError(f"row {index}: a preference row needs 'chosen' and 'rejected' (it has {sorted(row)})")
    chosen, rejected, prompt = row["chosen"], row["rejected"], row.get("prompt")
    meta = dict(row.get("meta") or {})
    if isinstance(chosen, str) and isinstance(rejected, str):
        if not isinstance(prompt, str) and not _is_messages(prompt):
            raise ValueError(f"row {index}: text 'chosen'/'rejected' need a 'prompt' (text or chat messages)")
        prompt = prompt if isinstance(prompt, str) else tuple(dict(m) for m in prompt)
        return PreferencePair(prompt, chosen, rejected, meta)
    if not (_is_messages(chosen) and _is_messages(rejected)):
        raise ValueError(f"row {index}: 'chosen' and 'rejected' must both be text or both be chat messages")
    if prompt is None:  # whole conversations: the shared prefix is the prompt
        shared = 0
        while shared < min(len(chosen), len(rejected)) - 1 and chosen[shared] == rejected[shared]:
            shared += 1
        prompt, chosen, rejected = chosen[:shared], chosen[shared:], rejected[shared:]
        if not prompt:
            raise ValueError(f"row {index}: the chosen and rejected conversations share no prompt")
    elif isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}]
    elif not _is_messages(prompt):
        raise ValueError(f"row {index}: 'prompt' must be text or chat messages")
    return PreferencePair(tuple(dict(m) for m in prompt), _assistant_text(chosen), _assistant_text(rejected), meta)


def load_pairs(
    source: str, *, split: str = "train", data_files: str | Sequence[str] | None = None
) -> list[PreferencePair]:
    """Pairs from local files (``.jsonl``, ``.json``, ``.parquet``, ``.csv``) or a hub dataset id.

    Local files and ``data_files`` go through ``datasets.load_dataset`` with the
    matching builder; anything else is taken as a hub id (this needs network).
    """
    try:
        from datasets import load_dataset
    except ImportError as exc:
        raise ImportError("loading preference data needs datasets: pip install 'rlvr[data]'") from exc
    builders = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
    path = Path(source)
    if data_files is None and path.suffix in builders:
        if not path.exists():
            raise FileNotFoundError(f"preference data {source} does not exist")
        dataset = load_dataset(builders[path.suffix], data_files=str(path), split="train")
    elif data_files is not None:
        dataset = load_dataset(source, data_files=data_files, split=split)
    else:
        dataset = load_dataset(source, split=split)
    pairs = [pair_from_row(row, i) for i, row in enumerate(dataset)]
    if not pairs:
        raise ValueError(f"{source} holds no preference pairs")
    return pairs


def save_pairs(pairs: Sequence[PreferencePair], path: str | Path) -> Path:
    """Write ``pairs`` as JSON lines in the format :func:`load_pairs` reads."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for pair in pairs:
            f.write(json.dumps(pair.to_row()) + "\n")
    return path


def split_pairs(pairs: Sequence[PreferencePair], held_out: float, seed: int = 0) -> tuple[list, list]:
    """``(train, held_out)`` by prompt, so no prompt's pairs land on both sides."""
    prompts = sorted({json.dumps(p.to_row()["prompt"]) for p in pairs})
    rng = np.random.default_rng(seed)
    test_prompts = set(rng.permutation(prompts)[: round(held_out * len(prompts))].tolist())
    train = [p for p in pairs if json.dumps(p.to_row()["prompt"]) not in test_prompts]
    return train, [p for p in pairs if json.dumps(p.to_row()["prompt"]) in test_prompts]


def pairs_from_env(
    engine: Any,
    env: Any,
    problems: Sequence[Problem],
    *,
    n: int = 8,
    max_new_tokens: int = 48,
    temperature: float = 1.0,
    pairs_per_prompt: int = 4,
    seed: int = 0,
    batch_prompts: int = 4,
) -> list[PreferencePair]:
    """Make preference pairs from sampled completions, ranked by the environment's reward.

    Sample ``n`` completions per problem, score them through the environment
    (``BatchedEnv``; :func:`rlvr.preference.rejection.sample_and_score`), then
    :func:`pairs_from_scored`.
    """
    from rlvr.preference.rejection import sample_and_score

    scored = sample_and_score(
        engine, env, problems, n=n, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed,
        batch_prompts=batch_prompts,
    )  # fmt: skip
    return pairs_from_scored(scored, pairs_per_prompt=pairs_per_prompt, seed=seed)


def pairs_from_scored(scored: Scored, *, pairs_per_prompt: int = 4, seed: int = 0) -> list[PreferencePair]:
    """Pair a higher-reward completion (chosen) with a lower-reward one (rejected), at most ``pairs_per_prompt`` per problem.

    Only scored samples count (a verifier error or an unscorable reference says
    nothing about the completion), equal rewards make no pair, and identical
    texts are never paired. Problems whose samples all score alike give none.
    """
    rng = np.random.default_rng(seed)
    pairs: list[PreferencePair] = []
    for problem, texts, rewards in zip(scored.problems, scored.texts, scored.rewards, strict=True):
        kept = [(float(r), t) for r, t in zip(rewards, texts, strict=True) if np.isfinite(r)]  # scored samples only
        candidates = [
            (i, j) for i, (ri, ti) in enumerate(kept) for j, (rj, tj) in enumerate(kept) if ri > rj and ti != tj
        ]
        seen: set[tuple[str, str]] = set()
        for k in rng.permutation(len(candidates)):
            i, j = candidates[k]
            if (kept[i][1], kept[j][1]) in seen:
                continue
            seen.add((kept[i][1], kept[j][1]))
            meta = {"problem_id": problem.id, "chosen_reward": kept[i][0], "rejected_reward": kept[j][0]}
            pairs.append(PreferencePair(problem.prompt, kept[i][1], kept[j][1], meta))
            if len(seen) >= pairs_per_prompt:
                break
    return pairs


# the integer that ends the last box: \boxed{12}, \boxed{6 + 6 = 12}, never part of 3.5
_LAST_BOXED_INTEGER = re.compile(r"(\\boxed\{[^{}]*?)(?<![\d.])(-?\d+)(\s*\})(?!.*\\boxed)", re.DOTALL)


def shift_boxed_integer(
    text: str, rng: np.random.Generator, shifts: Sequence[int] = (-10, -2, -1, 1, 2, 10)
) -> str | None:
    r"""``text`` with the integer that ends its last box moved by one of ``shifts``: a near miss.

    ``\boxed{12}`` and ``\boxed{6 + 6 = 12}`` both have their 12 moved. A
    perturbation for :func:`counterfactual_pairs` on integer answers; None when
    the last box does not end in an integer.
    """
    match = _LAST_BOXED_INTEGER.search(text)
    if match is None:
        return None
    moved = int(match.group(2)) + int(rng.choice(list(shifts)))
    return text[: match.start(2)] + str(moved) + text[match.end(2) :]


def rewrite_boxed_integer(text: str, rng: np.random.Generator) -> str | None:
    r"""``text`` with the integer that ends its last box replaced by a wrong one of a kind policies reach for.

    One of five kinds, uniformly: a neighbour (``s`` +/- 1 or 2), ``s`` +/- 10, a
    digit added (``1s``, ``s1``, or any digit before or after), a digit dropped,
    or any integer from 0 to ``max(2|s|, 19)`` (constants and operands among them).
    Policies optimised against reward models that saw only the shifts of
    :func:`shift_boxed_integer` found these (docs/preference.md). The kind that
    cannot apply (dropping the digit of a one-digit answer) falls back to any
    integer; a draw equal to ``s`` is redrawn. None when the last box does not
    end in an integer.
    """
    match = _LAST_BOXED_INTEGER.search(text)
    if match is None:
        return None
    written = match.group(2)
    value = int(written)
    sign, digits = ("-", written[1:]) if written.startswith("-") else ("", written)
    moved = value
    while moved == value:
        kind = int(rng.integers(5))
        if kind == 0:
            moved = value + int(rng.choice([-2, -1, 1, 2]))
        elif kind == 1:
            moved = value + int(rng.choice([-10, 10]))
        elif kind == 2:
            digit = str(int(rng.integers(10)))
            moved = int(sign + (digit + digits if rng.integers(2) else digits + digit))
        elif kind == 3 and len(digits) > 1:
            cut = int(rng.integers(len(digits)))
            moved = int(sign + digits[:cut] + digits[cut + 1 :])
        else:
            moved = int(rng.integers(max(2 * abs(value), 19) + 1))
    return text[: match.start(2)] + str(moved) + text[match.end(2) :]


def counterfactual_pairs(
    env: Any,
    scored: Scored,
    perturb: Callable[[str, np.random.Generator], str | None],
    *,
    pairs_per_prompt: int = 4,
    copies: int = 1,
    seed: int = 0,
) -> list[PreferencePair]:
    """Pairs that differ only where the verifier looks: a CORRECT sample over its perturbed copy.

    Sampled pairs rank completions that differ in many ways at once, and a reward
    model learns whichever difference is easiest: on two-digit addition, a style
    that wrong answers share, while a near miss written in the right style scores
    like the right sum (docs/preference.md). Here each CORRECT completion of
    ``scored`` (up to ``pairs_per_prompt`` per problem) is changed by ``perturb``
    (e.g. the boxed answer moved by one) into up to ``copies`` distinct copies,
    each scored by ``env`` (a ``BatchedEnv``, the same verifier), and a pair is
    kept only when its copy
    scores lower: the verifier, not the perturbation, labels it. ``perturb``
    returns None where it has nothing to change.

    A pair repeated within a problem (the same sample drawn twice and moved alike)
    is kept once. ``meta`` holds ``problem_id``, both rewards and ``counterfactual: True``.
    """
    rng = np.random.default_rng(seed)
    if copies < 1:
        raise ValueError(f"copies must be at least 1, got {copies}")
    problems, originals, changed_texts = [], [], []
    for m, problem in enumerate(scored.problems):
        picked, seen = 0, set()
        for text, correct, reward in zip(scored.texts[m], scored.correct[m], scored.rewards[m], strict=True):
            if picked == pairs_per_prompt or not correct or not np.isfinite(reward):
                continue
            made = 0
            for _ in range(2 * copies - 1):  # copies - 1 spare draws: a perturbation can repeat itself
                changed = perturb(text, rng)
                if changed is None or changed == text or (text, changed) in seen:
                    continue  # a repeated sample moved the same way would weigh one pair twice
                seen.add((text, changed))
                problems.append(problem)
                originals.append((text, float(reward)))
                changed_texts.append(changed)
                made += 1
                if made == copies:
                    break
            picked += made > 0
    if not problems:
        return []
    result = env.step(problems, [[c] for c in changed_texts], on_error="record")
    pairs = []
    for b, (problem, (text, reward), copy) in enumerate(zip(problems, originals, changed_texts, strict=True)):
        if not result.scored[b][0] or float(result.rewards[b][0]) >= reward:
            continue
        meta = {
            "problem_id": problem.id,
            "chosen_reward": reward,
            "rejected_reward": float(result.rewards[b][0]),
            "counterfactual": True,
        }
        pairs.append(PreferencePair(problem.prompt, text, copy, meta))
    return pairs
