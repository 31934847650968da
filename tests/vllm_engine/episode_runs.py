"""Multi-turn episodes sampled by vLLM on a saved tiny model, in a process of its own.

    python tests/vllm_engine/episode_runs.py MODEL_FOLDER OUT_FILE

vLLM keeps one compiled engine per process, so ``test_vllm_episodes.py`` runs this
as a subprocess. It plays the same scripted episodes several ways and saves
(``torch.save``), for each, the episodes and every request vLLM received with
what it sampled; the checks are the test's.
"""

import os
import sys

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

import torch  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

import rlvr  # noqa: E402
from rlvr.episode_rollout import generate_episodes  # noqa: E402
from rlvr.episodes import EpisodeEnv, Response, message  # noqa: E402
from rlvr.rollout import SamplingParams  # noqa: E402
from rlvr.vllm_engine import VLLMEngine  # noqa: E402

#: Episodes per problem, sampling temperature, a turn's and an episode's token limits.
G, TEMPERATURE, MAX_NEW_TOKENS, MAX_TOTAL_TOKENS = 3, 0.7, 6, 30


class Relay(EpisodeEnv, rlvr.DatasetEnv):
    """A turn of even length (in characters) ends the episode with reward 1; any other gets 'go on'."""

    def __init__(self, **kwargs):
        problems = [rlvr.Problem(id=w, prompt=[message("user", f"story {w}")], reference="") for w in ("one", "two")]
        super().__init__(problems, reward=lambda completion, problem: 0.0, max_turns=4, **kwargs)

    def respond(self, action):
        done = len(action) % 2 == 0
        return Response(() if done else (message("user", "go on"),), float(done), done)


def record(engine, tok, calls: list, through_text: list) -> None:
    """Wrap ``engine.llm.generate`` to append each call's requests and samples to ``calls``.

    While ``through_text`` holds True, each prompt is first decoded to text and
    tokenised again, as an engine that takes text would do.
    """
    from vllm.inputs import TokensPrompt

    real = engine.llm.generate

    def retokenised(prompt):
        text = tok.decode(prompt["prompt_token_ids"])
        return TokensPrompt(prompt_token_ids=tok(text, add_special_tokens=False).input_ids)

    def entry(prompt, sampling, output):
        sample = output.outputs[0]
        return {
            "keys": sorted(prompt),
            "prompt": list(prompt["prompt_token_ids"]),
            "seed": sampling.seed,
            "max_tokens": sampling.max_tokens,
            "stop_token_ids": list(sampling.stop_token_ids or []),
            "tokens": list(sample.token_ids),
            "logprobs": [lp[t].logprob for t, lp in zip(sample.token_ids, sample.logprobs, strict=True)],
        }

    def generate(prompts, sampling, **kwargs):
        if through_text[0]:
            prompts = [retokenised(p) for p in prompts]
        outputs = real(prompts, sampling, **kwargs)
        calls.append([entry(*request) for request in zip(prompts, sampling, outputs, strict=True)])
        return outputs

    engine.llm.generate = generate


def main(folder: str, out: str) -> None:
    tok = AutoTokenizer.from_pretrained(folder)
    engine = VLLMEngine(folder, tok, chat_template=False, dtype="float32", max_model_len=256, kv_cache_gib=0.25)
    calls: list = []
    through_text = [False]
    record(engine, tok, calls, through_text)
    problems = rlvr.BatchedEnv(Relay()).reset(2, seed=0)
    runs = {}
    for name, seed, text in [("main", 0, False), ("again", 0, False), ("other_seed", 1, False), ("text", 0, True)]:
        calls.clear()
        through_text[0] = text
        envs = [Relay() for _ in range(len(problems) * G)]
        params = SamplingParams(n=G, max_new_tokens=MAX_NEW_TOKENS, temperature=TEMPERATURE, seed=seed)
        episodes = generate_episodes(
            engine, tok, envs, problems, params, chat_template=False, max_total_tokens=MAX_TOTAL_TOKENS
        )
        settings = {"seed": seed, "temperature": TEMPERATURE, "max_new_tokens": MAX_NEW_TOKENS,
                    "max_total_tokens": MAX_TOTAL_TOKENS}  # fmt: skip
        runs[name] = {"episodes": episodes, "calls": list(calls), "settings": settings}
    try:
        generate_episodes(engine, tok, envs, problems, params, chat_template=False, max_total_tokens=256)
    except ValueError as exc:
        runs["too_long"] = str(exc)
    torch.save(runs, out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
