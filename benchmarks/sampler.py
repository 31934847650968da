"""The transformers engine's sampler against ``transformers``' own ``generate``, same prompts, one run.

    python benchmarks/sampler.py --repeats 5 [--variants "rlvr sampler" "rlvr sampler, growing cache"]

Each samples the default model on the main job's workload (4 two-digit addition
prompts x 8 samples with the environment's system prompt, up to 48 new tokens,
temperature 0.5, float32 unless the CPU has native bf16) with neutral settings:
no top-k, top-p 1, nothing from the model's generation config. ``generate``
prefills every row's copy of the prompt and keeps finished rows in the batch;
rlvr's sampler prefills each prompt once, drops finished rows and writes new
keys into a cache with room for them (:func:`rlvr.sampler.reserve`); the
"growing cache" variant is rlvr's sampler with ``transformers``' own cache,
which concatenates at every token. The variants alternate within each repeat
so machine noise hits them alike; the report gives median seconds per batch,
generated tokens per second (EOS counted, padding not) and the ratio to the
first variant named.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import GenerationConfig

import rlvr
import rlvr.sampler
from rlvr.models import DEFAULT_MODEL, load_model_and_tokenizer
from rlvr.precision import autocast, describe, pick_autocast
from rlvr.rollout import SamplingParams, TransformersEngine
from rlvr.tokens import default_system_prompt, encode_prompts, render_prompt

VARIANTS = ("rlvr sampler", "rlvr sampler, growing cache", "transformers generate")


def hf_generate(model, tokenizer, prompts: list[str], params: SamplingParams, mixed) -> int:
    """``transformers``' ``generate`` with neutral settings; returns the tokens generated (EOS counted)."""
    ids, mask = encode_prompts(tokenizer, [render_prompt(tokenizer, p) for p in prompts])
    config = GenerationConfig(
        do_sample=True,
        temperature=params.temperature,
        top_k=0,
        top_p=1.0,
        max_new_tokens=params.max_new_tokens,
        num_return_sequences=params.n,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with torch.no_grad(), autocast(model, mixed):
        out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
    completion = out[:, ids.shape[1] :]
    ended = completion == tokenizer.eos_token_id
    lengths = torch.where(ended.any(1), ended.int().argmax(1) + 1, torch.full((len(completion),), completion.shape[1]))
    return int(lengths.sum())


def main() -> None:
    """Alternate the two samplers and print medians and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    args = parser.parse_args()
    model, tokenizer = load_model_and_tokenizer(DEFAULT_MODEL)
    model.eval()
    mixed = pick_autocast("auto")
    print(describe("auto", "cpu", mixed), flush=True)
    engine = TransformersEngine(model, tokenizer, autocast=mixed)
    env = rlvr.make("rlvr/Arithmetic-v0")
    default_system_prompt(tokenizer, env.unwrapped.system_prompt())
    prompts = [p.prompt for p in rlvr.BatchedEnv(env).reset(4, seed=0)]
    params = SamplingParams(n=8, max_new_tokens=args.max_new_tokens, temperature=0.5)
    reserve = rlvr.sampler.reserve
    times: dict[str, list[float]] = {name: [] for name in args.variants}
    tokens: dict[str, list[int]] = {name: [] for name in times}
    for repeat in range(args.repeats + 1):
        for name in times:
            rlvr.sampler.reserve = (
                (lambda cache, room, repeats: cache.batch_repeat_interleave(repeats) or cache)
                if name == "rlvr sampler, growing cache"
                else reserve
            )
            torch.manual_seed(repeat)
            start = time.perf_counter()
            if name == "transformers generate":
                n_tokens = hf_generate(model, tokenizer, prompts, params, mixed)
            else:
                n_tokens = int(engine.generate(prompts, params).completion_mask.sum())
            if repeat > 0:  # the first round warms up kernels
                times[name].append(time.perf_counter() - start)
                tokens[name].append(n_tokens)
                print(f"repeat {repeat} {name}: {times[name][-1]:.2f} s, {n_tokens} tokens", flush=True)
    rlvr.sampler.reserve = reserve
    peer = statistics.median(times[args.variants[0]])
    for name in times:
        median = statistics.median(times[name])
        rate = sum(tokens[name]) / sum(times[name])
        print(f"{name:28} median {median:6.2f} s  {rate:6.1f} tokens/s  x{median / peer:.2f}", flush=True)


if __name__ == "__main__":
    main()
