"""Turn-by-turn generation of multi-step episodes, token in and token out, in the rollout layout.

An episode is one row: the first observation is the prompt (left-padded to P);
everything after it, the policy's turns and the environment's observations in
between, is the "completion" (right-padded to T)::

    prompt | turn 1 (policy) | observation 1 (environment) | turn 2 (policy) | ...
    completion_mask   1 ... 1 | 0 ........................ 0 | 1 ... 1
    observation_mask  0 ... 0 | 1 ........................ 1 | 0 ... 0

The policy's tokens are kept exactly as the sampler drew them, and each
observation is rendered (with the chat template's own glue) and tokenised once,
when it arrives, then appended as tokens: no earlier turn is ever re-tokenised,
so the trainer scores exactly the ids the sampler produced. The attention mask
covers both kinds of token, the loss mask (``completion_mask``) only the
policy's: environment tokens are context, never loss, KL or importance ratio.
:class:`EpisodeRollouts` is a :class:`rlvr.rollout.Rollouts`, so
``Experience.from_rollouts(episodes, episodes.returns, episodes.scored)`` gives
the agents a batch they accept unchanged.

Turns are sampled by rlvr's ``transformers`` sampler (:func:`rlvr.sampler.sample_tokens`)
or, given a :class:`rlvr.vllm_engine.VLLMEngine` in place of the model, by vLLM,
which receives each row's context as token ids (:meth:`~rlvr.vllm_engine.VLLMEngine.sample_ids`).

Limits: each turn is sampled with a fresh prefill of its row's whole context (the
``transformers`` sampler shares each prompt's prefill across its group on the
first turn; no turn reuses the key/value cache of earlier ones), stop strings are
not supported, and a template that renders earlier turns differently once more
messages follow (some reasoning templates drop earlier thoughts) is refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from rlvr.precision import autocast as autocast_ctx
from rlvr.rollout import Rollouts, SamplingParams, derive_seed
from rlvr.sampler import sample_tokens

if TYPE_CHECKING:
    from rlvr.vllm_engine import VLLMEngine

__all__ = ["EpisodeRollouts", "ObservationRenderer", "episode_metrics", "generate_episodes"]

#: ``sample(turn, episodes, contexts, rooms)``: one ``(token ids, log-probs)`` per episode,
#: sampled after its context; ``rooms`` are the tokens each episode has left.
TurnSampler = Callable[[int, Sequence[int], Sequence[list[int]], Sequence[int]], list[tuple[list[int], list[float]]]]


@dataclass
class EpisodeRollouts(Rollouts):
    """N = B x G episodes in the rollout layout (see the module docs).

    Attributes (beyond :class:`rlvr.rollout.Rollouts`'; ``texts`` are the policy's turns joined by newlines):
        observation_mask: ``[N, T]`` 1 on environment tokens.
        turn_texts: each episode's turns as text.
        turn_rewards: each turn's reward; an episode's return is their sum.
        turn_ends: the completion column of each turn's last policy token.
        infos: each turn's step info.
        finish_reasons: ``"stop"`` (the environment ended the episode) or
            ``"length"`` (turn or token budget, or the environment's truncation).
    """

    observation_mask: Tensor
    turn_texts: list[list[str]]
    turn_rewards: list[list[float]]
    turn_ends: list[list[int]]
    infos: list[list[dict[str, Any]]]

    @property
    def attention_mask(self) -> Tensor:
        """``[N, P + T]``: 1 on every real token, the environment's included."""
        return torch.cat([self.prompt_mask, self.completion_mask | self.observation_mask], dim=1)

    @property
    def returns(self) -> Tensor:
        """``[N]`` each episode's return, the sum of its turns' rewards."""
        return torch.tensor([sum(r) for r in self.turn_rewards], dtype=torch.float32)

    @property
    def scored(self) -> Tensor:
        """``[N]`` bool: False when a scored turn's verifier could not score it (``scored`` False in its info)."""
        return torch.tensor([all(i.get("scored", True) for i in infos) for infos in self.infos])

    def token_rewards(self) -> Tensor:
        """``[N, T]`` each turn's reward on its last policy token, 0 elsewhere (for per-token credit, e.g. PPO)."""
        out = torch.zeros(self.completion_ids.shape, dtype=torch.float32)
        for i, (ends, rewards) in enumerate(zip(self.turn_ends, self.turn_rewards, strict=True)):
            for end, reward in zip(ends, rewards, strict=True):
                out[i, end] += reward
        return out


class ObservationRenderer:
    """The text that follows a policy turn: the template's end of that turn, the observation, the next header.

    With a chat template it is what the template itself adds, found by rendering a
    stand-in conversation with and without the observation (so the template's
    system-prompt rules apply as they would); without one, each message is its
    content and a newline.

    Args:
        tokenizer: with ``apply_chat_template`` when ``chat_template``.
        chat_template: render with the tokenizer's template.
        tools: tool specs handed to the template (``Tool.spec()``), for templates that list them.
    """

    def __init__(self, tokenizer: Any, chat_template: bool = True, tools: Sequence[dict] | None = None) -> None:
        self.tokenizer = tokenizer
        self.chat = bool(chat_template and getattr(tokenizer, "chat_template", None))
        self.tools = list(tools) if tools else None
        self.eos_text = tokenizer.eos_token or ""
        self.tail = self._tail() if self.chat else ""

    def _apply(self, messages: Sequence[dict], generation: bool) -> str:
        kwargs = {"tools": self.tools} if self.tools else {}
        return self.tokenizer.apply_chat_template(
            [dict(m) for m in messages], add_generation_prompt=generation, tokenize=False, **kwargs
        )

    def _tail(self) -> str:
        r"""What the template writes after an assistant turn's content (e.g. ``<|im_end|>\n``)."""
        marker = "\u2063TURN\u2063"
        closed = self._apply([{"role": "user", "content": "Q"}, {"role": "assistant", "content": marker}], False)
        return closed[closed.rindex(marker) + len(marker) :]

    def prompt(self, messages: Sequence[dict]) -> str:
        """The first observation, with the generation prompt."""
        if self.chat:
            return self._apply(messages, True)
        return "".join(m["content"] + "\n" for m in messages)

    def after_turn(self, observation: Sequence[dict], ended_with_eos: bool) -> str:
        """The text after a policy turn: its closing glue, ``observation``, and the next turn's header.

        Raises:
            ValueError: the template renders the earlier turns differently once the observation follows.
        """
        if not self.chat:
            return ("" if ended_with_eos else "\n") + "".join(m["content"] + "\n" for m in observation)
        base = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]
        closed, full = self._apply(base, False), self._apply([*base, *observation], True)
        if not full.startswith(closed):
            raise ValueError(
                "the chat template renders earlier turns differently once more messages follow; "
                "token-in/token-out episodes need a template that only appends"
            )
        glue = self.tail
        if ended_with_eos and self.eos_text and glue.startswith(self.eos_text):
            glue = glue[len(self.eos_text) :]  # the sampled EOS already closed the turn
        return glue + full[len(closed) :]


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _left_pad(rows: Sequence[list[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """``(ids [A, L], mask [A, L])`` left-padded."""
    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad_id] * (width - len(r)) + r for r in rows], dtype=torch.long)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long)
    return ids, mask


@torch.no_grad()
def generate_episodes(
    model: nn.Module | VLLMEngine,
    tokenizer: Any,
    envs: Sequence[Any],
    problems: Sequence[Any],
    params: SamplingParams,
    *,
    max_turns: int | None = None,
    max_total_tokens: int = 1024,
    chat_template: bool = True,
    autocast: torch.dtype | None = None,
    on_turn: Callable[[int, int, str, dict], None] | None = None,
) -> EpisodeRollouts:
    """Play ``params.n`` episodes of each problem, turn by turn, sampling from ``model``.

    Args:
        model: a ``transformers`` causal LM (the policy; put in eval mode while
            sampling), or a :class:`rlvr.vllm_engine.VLLMEngine` holding the policy's
            weights (sync them first).
        tokenizer: its tokenizer, with a pad token (the engine's, for vLLM).
        envs: N = B x G :class:`rlvr.episodes.EpisodeEnv` instances, one per episode
            (reset here; episode ``i`` plays problem ``i // G``).
        problems: the B problems (e.g. ``BatchedEnv.reset(B)``).
        params: per-turn sampling (``max_new_tokens`` is a turn's limit; ``n`` is G).
            With vLLM and ``seed`` set, episode ``i``'s turn ``t`` is seeded with
            ``derive_seed(seed, i, t)``.
        max_turns: policy turns per episode (None: the environments' own ``max_turns``).
        max_total_tokens: tokens after the prompt per episode, policy and environment
            together; an episode that reaches it ends with ``"length"`` (a turn is cut
            there, an observation that does not fit is not appended).
        chat_template: render with the tokenizer's chat template.
        autocast: the dtype to autocast sampling to (``transformers`` only).
        on_turn: called as ``on_turn(episode, turn, text, info)`` after each step.

    Returns:
        :class:`EpisodeRollouts` on the CPU.

    Raises:
        ValueError: a count that does not match, stop strings, a non-appending
            template, or (vLLM) a prompt plus ``max_total_tokens`` above ``max_model_len``.
    """
    g = params.n
    if len(envs) != len(problems) * g:
        raise ValueError(f"{len(envs)} environments for {len(problems)} problems x {g} episodes")
    if params.stop:
        raise ValueError("stop strings are not supported in episodes: a turn ends at EOS or max_new_tokens")
    if max_total_tokens < 1:
        raise ValueError(f"max_total_tokens must be >= 1, got {max_total_tokens}")
    tok = tokenizer
    eos_ids = tok.eos_token_id if isinstance(tok.eos_token_id, list) else [tok.eos_token_id]
    first = [env.reset(options={"problem": problems[i // g]})[0] for i, env in enumerate(envs)]
    tools = [t.spec() for t in getattr(getattr(envs[0], "unwrapped", envs[0]), "tools", None) or []]
    renderer = ObservationRenderer(tok, chat_template, tools)
    prompt_rows = [_encode(tok, renderer.prompt(first[b * g])) for b in range(len(problems))]
    n = len(envs)
    contexts = [list(prompt_rows[i // g]) for i in range(n)]
    kinds: list[list[int]] = [[] for _ in range(n)]  # 1 policy, 0 environment, per completion token
    logps: list[list[float]] = [[] for _ in range(n)]
    turn_texts, turn_rewards, turn_ends, infos = ([[] for _ in range(n)] for _ in range(4))
    reasons = [""] * n
    limit = max_turns if max_turns is not None else max(getattr(e.unwrapped, "max_turns", 1) for e in envs)
    if isinstance(model, nn.Module):
        sampler = _transformers_turns(model, tok, params, eos_ids, g, autocast)
    else:
        sampler = _vllm_turns(model, params, eos_ids, max(map(len, prompt_rows)) + max_total_tokens)
    with sampler as sample:
        for turn in range(limit):
            active = [i for i in range(n) if not reasons[i]]
            if not active:
                break
            rooms = [max_total_tokens - (len(contexts[i]) - len(prompt_rows[i // g])) for i in active]
            sampled = sample(turn, active, [contexts[i] for i in active], rooms)
            for i, (tokens, logprobs) in zip(active, sampled, strict=True):
                _play_turn(
                    i, turn, tokens, logprobs, envs[i], renderer, tok, eos_ids, contexts[i],
                    len(prompt_rows[i // g]), kinds[i], logps[i], turn_texts[i], turn_rewards[i], turn_ends[i],
                    infos[i], reasons, max_total_tokens, turn + 1 == limit, on_turn,
                )  # fmt: skip
    return _layout(prompt_rows, contexts, kinds, logps, turn_texts, turn_rewards, turn_ends, infos, reasons, g, tok)


@contextlib.contextmanager
def _transformers_turns(model, tok, params, eos_ids, group, autocast) -> Iterator[TurnSampler]:
    """Turns from :func:`rlvr.sampler.sample_tokens`, in eval mode, on torch's RNG seeded once with ``params.seed``."""
    device = next(model.parameters()).device

    def sample(turn, episodes, contexts, rooms):  # each turn samples up to max_new_tokens; _play_turn cuts
        if turn == 0:  # every row starts from its group's prompt: prefill each prompt once
            ids, mask, reps = *_left_pad(contexts[::group], tok.pad_token_id), group
        else:
            ids, mask, reps = *_left_pad(contexts, tok.pad_token_id), 1
        tokens, logprobs = sample_tokens(
            model, ids.to(device), mask.to(device), n=reps, max_new_tokens=params.max_new_tokens,
            eos_ids=eos_ids, pad_id=tok.pad_token_id, temperature=params.temperature,
            top_k=params.top_k, top_p=params.top_p, greedy=params.greedy,
        )  # fmt: skip
        return list(zip(tokens.tolist(), logprobs.tolist(), strict=True))

    was_training = model.training
    model.eval()
    seeded = torch.random.fork_rng(devices=[]) if params.seed is not None else contextlib.nullcontext()
    try:
        with seeded, autocast_ctx(model, autocast):
            if params.seed is not None:
                torch.manual_seed(params.seed)
            yield sample
    finally:
        model.train(was_training)


@contextlib.contextmanager
def _vllm_turns(engine, params, eos_ids, longest) -> Iterator[TurnSampler]:
    """Turns from vLLM: one token-ids request per active episode, capped at the tokens it has left.

    ``longest`` (the longest prompt plus ``max_total_tokens``) must fit vLLM's
    ``max_model_len``, or a late turn's context would be refused mid-batch.
    """
    if longest > engine.max_model_len:
        raise ValueError(
            f"a prompt plus max_total_tokens is {longest} tokens, above the vLLM engine's "
            f"max_model_len={engine.max_model_len}: lower max_total_tokens or raise max_model_len"
        )

    def sample(turn, episodes, contexts, rooms):
        seeds = None if params.seed is None else [derive_seed(params.seed, i, turn) for i in episodes]
        limits = [min(params.max_new_tokens, room) for room in rooms]
        out = engine.sample_ids(contexts, params, seeds, max_tokens=limits, stop_token_ids=eos_ids)
        return [(s.token_ids, s.logprobs) for s in out]

    yield sample


def _play_turn(
    i, turn, row, row_logps, env, renderer, tok, eos_ids, context, prompt_len, kinds, logps,
    texts, rewards, ends, infos, reasons, max_total_tokens, last_turn, on_turn,
) -> None:  # fmt: skip
    """Append episode ``i``'s sampled turn, step its environment, append the observation's tokens."""
    end = next((k + 1 for k, t in enumerate(row) if t in eos_ids), len(row))
    ended_with_eos = end <= len(row) and row[end - 1] in eos_ids
    room = max_total_tokens - (len(context) - prompt_len)
    cut = end > room
    end = min(end, room)
    ended_with_eos = ended_with_eos and not cut
    context.extend(row[:end])
    kinds.extend([1] * end)
    logps.extend(row_logps[:end])
    text = tok.decode(row[:end], skip_special_tokens=True)
    observation, reward, terminated, truncated, info = env.step(text)
    texts.append(text)
    rewards.append(float(reward))
    ends.append(len(context) - prompt_len - 1)
    infos.append(info)
    if on_turn is not None:
        on_turn(i, turn, text, info)
    if terminated:
        reasons[i] = "stop"
        return
    if truncated or cut or last_turn:
        reasons[i] = "length"
        return
    obs_ids = _encode(tok, renderer.after_turn(observation, ended_with_eos))
    if len(context) - prompt_len + len(obs_ids) >= max_total_tokens:
        reasons[i] = "length"  # no room left for another turn
        return
    context.extend(obs_ids)
    kinds.extend([0] * len(obs_ids))
    logps.extend([0.0] * len(obs_ids))


def _layout(prompt_rows, contexts, kinds, logps, turn_texts, turn_rewards, turn_ends, infos, reasons, g, tok):
    """The episodes as tensors: prompts left-padded ``[N, P]``, the rest right-padded ``[N, T]``."""
    n, pad = len(contexts), tok.pad_token_id
    prompts = [prompt_rows[i // g] for i in range(n)]
    prompt_ids, prompt_mask = _left_pad(prompts, pad)
    width = max(1, max(len(k) for k in kinds))
    completion_ids = torch.full((n, width), pad, dtype=torch.long)
    policy = torch.zeros(n, width, dtype=torch.long)
    environment = torch.zeros(n, width, dtype=torch.long)
    sampler = torch.zeros(n, width)
    for i in range(n):
        rest, k = contexts[i][len(prompts[i]) :], torch.tensor(kinds[i], dtype=torch.long)
        completion_ids[i, : len(rest)] = torch.tensor(rest, dtype=torch.long)
        policy[i, : len(rest)] = k
        environment[i, : len(rest)] = 1 - k
        sampler[i, : len(rest)] = torch.tensor(logps[i]) * k
    return EpisodeRollouts(
        prompt_ids=prompt_ids,
        prompt_mask=prompt_mask,
        completion_ids=completion_ids,
        completion_mask=policy,
        sampler_logprobs=sampler,
        texts=["\n".join(t) for t in turn_texts],
        finish_reasons=list(reasons),
        group=torch.arange(n // g).repeat_interleave(g),
        observation_mask=environment,
        turn_texts=turn_texts,
        turn_rewards=turn_rewards,
        turn_ends=turn_ends,
        infos=infos,
    )


def episode_metrics(episodes: EpisodeRollouts) -> dict[str, float]:
    """Per-batch episode figures for logging (docs/metrics.md).

    ``episode/return_mean``, ``episode/turns_mean``, ``episode/solved_fraction``
    (the last turn's status is ``correct``), ``episode/truncated_fraction``,
    ``episode/env_tokens_mean``; with tools, ``tool/calls_per_episode`` and
    ``tool/success_rate`` (calls that ran without error, over all calls; NaN with none).
    """
    n = max(len(episodes.infos), 1)
    calls = sum(info.get("tool_calls", 0) for infos in episodes.infos for info in infos)
    errors = sum(info.get("tool_errors", 0) for infos in episodes.infos for info in infos)
    return {
        "episode/return_mean": float(episodes.returns.mean()) if episodes.infos else 0.0,
        "episode/turns_mean": sum(len(t) for t in episodes.turn_texts) / n,
        "episode/solved_fraction": sum(bool(i) and i[-1].get("status") == "correct" for i in episodes.infos) / n,
        "episode/truncated_fraction": sum(r == "length" for r in episodes.finish_reasons) / n,
        "episode/env_tokens_mean": float(episodes.observation_mask.sum()) / n,
        "tool/calls_per_episode": calls / n,
        "tool/success_rate": (calls - errors) / calls if calls else float("nan"),
    }
