"""Rejection-sampling fine-tuning (ref 002): sample N per prompt, keep the best, fine-tune on them.

    python examples/rejection_sampling.py                  # two-digit addition, SmolLM2-135M, CPU
    python examples/rejection_sampling.py --select top_k --k 64

1. Best-of-N on held-out problems: how much picking helps before any training.
2. Sample N completions for training prompts, score them with the environment's
   verifier, keep the top one per prompt (or the top K overall) that is correct,
   and write them as an SFT data set (``--out``).
3. Fine-tune on that set (the SFT loss: mean negative log-likelihood of the kept
   completions' tokens) and compare held-out greedy accuracy before and after.
"""

import argparse

import torch

import rlvr
from rlvr.agents.losses import aggregate
from rlvr.evaluation import evaluate
from rlvr.models import DEFAULT_MODEL, load_model_and_tokenizer
from rlvr.policy import Policy
from rlvr.precision import pick_autocast
from rlvr.preference.rejection import best_of_n, sample_and_score, select, write_sft
from rlvr.rollout import TransformersEngine
from rlvr.tokens import encode_completions

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--model", default=DEFAULT_MODEL)
parser.add_argument("--env", default="rlvr/Arithmetic-v0")
parser.add_argument("--prompts", type=int, default=64, help="training prompts to sample for")
parser.add_argument("--n", type=int, default=8, help="samples per prompt")
parser.add_argument("--select", choices=["top_per_prompt", "top_k"], default="top_per_prompt")
parser.add_argument("--k", type=int, default=None, help="for --select top_k")
parser.add_argument("--min-reward", type=float, default=1.0, help="keep only picks scoring at least this")
parser.add_argument("--temperature", type=float, default=1.0)
parser.add_argument("--max-new-tokens", type=int, default=48)
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--lr", type=float, default=1e-5)
parser.add_argument("--eval-problems", type=int, default=100)
parser.add_argument("--out", default="runs/rejection_sft.jsonl")
parser.add_argument("--no-chat-template", action="store_true")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
torch.manual_seed(args.seed)

model, tokenizer = load_model_and_tokenizer(args.model, device="auto")
mixed = pick_autocast("auto", next(model.parameters()).device)
chat = not args.no_chat_template
engine = TransformersEngine(model, tokenizer, chat_template=chat, autocast=mixed)
train_env = rlvr.BatchedEnv(rlvr.make(args.env, split="train"))
test_env = rlvr.BatchedEnv(rlvr.make(args.env, split="test"))
held_out = test_env.distinct_problems(args.eval_problems, seed=1)
sampling = {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature}

bon = best_of_n(engine, test_env, held_out, n=args.n, **sampling)
print(
    f"best-of-{args.n} on held-out: one sample correct {bon.sample_accuracy:.3f}, the pick {bon.best_accuracy:.3f}, "
    f"some sample {bon.any_correct:.3f}; mean reward {bon.mean_reward:.3f} -> best {bon.best_reward:.3f}"
)

scored = sample_and_score(
    engine, train_env, train_env.distinct_problems(args.prompts, seed=0), n=args.n, seed=args.seed, **sampling
)
picks = select(scored, args.select, k=args.k, min_reward=args.min_reward)
write_sft(scored, picks, args.out)
print(f"kept {len(picks)} of {scored.rewards.size} completions from {len(scored.problems)} prompts -> {args.out}")
if not picks:
    raise SystemExit("nothing passed the filter: raise --n or --prompts, or lower --min-reward")

before = evaluate(engine, test_env, held_out, max_new_tokens=args.max_new_tokens).accuracy
policy = Policy(model, autocast=mixed)
optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
rows = [(scored.problems[m].prompt, scored.texts[m][j]) for m, j in picks]
device = next(model.parameters()).device
for epoch in range(args.epochs):
    for start in range(0, len(rows), 8):
        batch = rows[start : start + 8]
        ids, mask, prompt_len, completion_mask = encode_completions(
            tokenizer, [p for p, _ in batch], [c for _, c in batch], chat_template=chat, device=device
        )
        logp, _ = policy(ids, mask, prompt_len)  # [b, T]
        loss = aggregate(-logp, completion_mask, "token_mean")  # SFT: mean NLL per kept token
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print(f"epoch {epoch}: last batch NLL {loss.item():.4f}", flush=True)
after = evaluate(engine, test_env, held_out, max_new_tokens=args.max_new_tokens).accuracy
print(f"held-out greedy accuracy before {before:.3f}, after fine-tuning on {len(picks)} picks {after:.3f}")
