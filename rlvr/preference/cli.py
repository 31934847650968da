"""The preference commands of ``rlvr``.

Usage::

    rlvr make-pairs --env ID --model M --out pairs.jsonl [--prompts 200 --n 8]
    rlvr train-rm --data pairs.jsonl --out rm/ [--model M --epochs 1 --lr 1e-5]

``make-pairs`` samples from a policy and lets the environment's verifier decide
which of two completions is better; ``train-rm`` fits a Bradley-Terry reward model
and reports its pairwise accuracy on held-out pairs (split by prompt).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

__all__ = ["add_commands"]


def cmd_make_pairs(args: argparse.Namespace) -> int:
    import rlvr
    from rlvr.models import load_model_and_tokenizer
    from rlvr.precision import pick_autocast
    from rlvr.preference.pairs import pairs_from_env, save_pairs
    from rlvr.rollout import TransformersEngine

    env = rlvr.BatchedEnv(rlvr.make(args.env, split=args.split, **dict(args.option)))
    model, tokenizer = load_model_and_tokenizer(args.model, device=args.device)
    model.eval()
    engine = TransformersEngine(
        model, tokenizer, chat_template=not args.no_chat_template,
        autocast=pick_autocast("auto", next(model.parameters()).device),
    )  # fmt: skip
    problems = env.distinct_problems(args.prompts, seed=args.seed)
    start = time.monotonic()
    pairs = pairs_from_env(
        engine, env, problems, n=args.n, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
        pairs_per_prompt=args.pairs_per_prompt, seed=args.seed,
    )  # fmt: skip
    save_pairs(pairs, args.out)
    with_pairs = len({p.meta["problem_id"] for p in pairs})
    print(
        f"{len(pairs)} pairs from {with_pairs}/{len(problems)} prompts ({args.env}, split {args.split}) "
        f"in {time.monotonic() - start:.0f} s -> {args.out}"
    )
    return 0


def cmd_train_rm(args: argparse.Namespace) -> int:
    import torch

    from rlvr.models import load_model_and_tokenizer
    from rlvr.precision import pick_autocast
    from rlvr.preference.pairs import load_pairs, split_pairs
    from rlvr.preference.reward_model import RewardModel, pairwise_accuracy, save_reward_model, train_reward_model

    pairs = load_pairs(args.data, split=args.split)
    if args.eval_data:
        train, held_out = pairs, load_pairs(args.eval_data, split=args.split)
    else:
        train, held_out = split_pairs(pairs, args.eval_fraction, seed=args.seed)
    if not train or not held_out:
        raise ValueError(f"{len(train)} training and {len(held_out)} held-out pairs: both must be non-empty")
    torch.manual_seed(args.seed)
    model, tokenizer = load_model_and_tokenizer(args.model, device=args.device)
    rm = RewardModel(model, autocast=pick_autocast("auto", next(model.parameters()).device))
    options: dict[str, Any] = {"chat_template": not args.no_chat_template, "max_length": args.max_length}
    before = pairwise_accuracy(rm, tokenizer, held_out, **options)
    print(f"{len(train)} training pairs, {len(held_out)} held out; held-out accuracy before: {before['accuracy']:.3f}")

    def report(step: int, stats: dict[str, float]) -> None:
        if step % args.log_every == 0:
            print(
                f"step {step:4d}  loss {stats['loss']:.4f}  batch accuracy {stats['rewards/accuracy']:.2f}", flush=True
            )

    start = time.monotonic()
    history = train_reward_model(
        rm, tokenizer, train, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
        on_step=report, **options,
    )  # fmt: skip
    after = pairwise_accuracy(rm, tokenizer, held_out, **options)
    summary = {
        "data": args.data, "model": args.model, "train_pairs": len(train), "held_out_pairs": len(held_out),
        "steps": len(history), "seconds": round(time.monotonic() - start, 1),
        "held_out_accuracy_before": before["accuracy"], "held_out_accuracy": after["accuracy"],
        "held_out_margin": after["margin"], "held_out_loss": after["loss"],
    }  # fmt: skip
    save_reward_model(rm, tokenizer, args.out, summary)
    for key, value in summary.items():
        print(f"{key:26} {value:.4f}" if isinstance(value, float) else f"{key:26} {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    print(f"reward model: {args.out}  (use it as the 'reward-model' verifier: path={args.out})")
    return 0


def add_commands(sub: Any, option_type: Any) -> None:
    """Register ``make-pairs`` and ``train-rm`` on the ``rlvr`` sub-parser."""
    from rlvr.models import DEFAULT_MODEL

    mp = sub.add_parser(
        "make-pairs", help="preference pairs from a policy's samples, judged by an environment's verifier"
    )
    mp.add_argument("--env", default="rlvr/Arithmetic-v0", help="a registered environment id")
    mp.add_argument("--split", default="train", choices=["train", "test", "all"])
    mp.add_argument("--option", type=option_type, action="append", default=[], metavar="KEY=VALUE")
    mp.add_argument("--model", default=DEFAULT_MODEL, help="the policy that samples")
    mp.add_argument("--prompts", type=int, default=200, help="distinct problems to sample for")
    mp.add_argument("--n", type=int, default=8, help="samples per problem")
    mp.add_argument("--pairs-per-prompt", type=int, default=4)
    mp.add_argument("--max-new-tokens", type=int, default=48)
    mp.add_argument("--temperature", type=float, default=1.0)
    mp.add_argument("--seed", type=int, default=0)
    mp.add_argument("--device", default="auto")
    mp.add_argument("--no-chat-template", action="store_true")
    mp.add_argument("--out", required=True, help="JSON-lines file to write")
    mp.set_defaults(func=cmd_make_pairs)

    rm = sub.add_parser("train-rm", help="train a Bradley-Terry reward model on preference pairs")
    rm.add_argument("--data", required=True, help="pairs: a .jsonl/.json/.parquet/.csv file or a hub dataset id")
    rm.add_argument("--split", default="train", help="the split of a hub dataset")
    rm.add_argument("--eval-data", help="held-out pairs (default: --eval-fraction of --data's prompts)")
    rm.add_argument("--eval-fraction", type=float, default=0.2)
    rm.add_argument("--model", default=DEFAULT_MODEL, help="the trunk: Hugging Face id or local folder")
    rm.add_argument("--out", required=True, help="folder to write the reward model to")
    rm.add_argument("--epochs", type=int, default=1)
    rm.add_argument("--lr", type=float, default=1e-5)
    rm.add_argument("--batch-size", type=int, default=8)
    rm.add_argument("--max-length", type=int, default=512)
    rm.add_argument("--seed", type=int, default=0)
    rm.add_argument("--device", default="auto")
    rm.add_argument("--log-every", type=int, default=10)
    rm.add_argument("--no-chat-template", action="store_true")
    rm.add_argument("--json", help="also write the summary to this file")
    rm.set_defaults(func=cmd_train_rm)
