"""DPO (or SimPO) on preference pairs generated offline, with held-out implicit-reward accuracy.

    rlvr make-pairs --env rlvr/Arithmetic-v0 --prompts 200 --out runs/pairs.jsonl
    python examples/dpo.py --pairs runs/pairs.jsonl               # DPO, 1 epoch
    python examples/dpo.py --pairs runs/pairs.jsonl --loss simpo

Pairs are split by prompt; the held-out pairs' implicit-reward accuracy (the share
whose chosen completion gets the higher ``beta * log pi/pi_ref``) is printed
before and after. Before any step the policy equals its reference, every implicit
reward is 0, and the accuracy reads 0.
"""

import argparse
import copy

import torch

from rlvr.models import DEFAULT_MODEL, load_model_and_tokenizer
from rlvr.policy import Policy
from rlvr.precision import pick_autocast
from rlvr.preference.dpo import DPO, DPOConfig
from rlvr.preference.pairs import load_pairs, split_pairs

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument(
    "--pairs", required=True, help="preference pairs (.jsonl from rlvr make-pairs, or any prompt/chosen/rejected file)"
)
parser.add_argument("--model", default=DEFAULT_MODEL)
parser.add_argument("--loss", choices=["dpo", "simpo"], default="dpo")
parser.add_argument("--beta", type=float, default=None, help="default: 0.1 for DPO, 2.0 for SimPO")
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--batch-size", type=int, default=8, help="pairs per optimiser step")
parser.add_argument("--lr", type=float, default=5e-6)
parser.add_argument("--held-out", type=float, default=0.2, help="share of prompts kept for evaluation")
parser.add_argument("--eval-pairs", help="held-out pairs from their own file (instead of --held-out)")
parser.add_argument("--no-chat-template", action="store_true")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
torch.manual_seed(args.seed)

if args.eval_pairs:
    train, test = load_pairs(args.pairs), load_pairs(args.eval_pairs)
else:
    train, test = split_pairs(load_pairs(args.pairs), args.held_out, seed=args.seed)
model, tokenizer = load_model_and_tokenizer(args.model, device="auto")
mixed = pick_autocast("auto", next(model.parameters()).device)
policy = Policy(model, autocast=mixed)
reference = Policy(copy.deepcopy(model).eval().requires_grad_(False), autocast=mixed) if args.loss == "dpo" else None
agent = DPO(
    policy, torch.optim.AdamW(model.parameters(), lr=args.lr), tokenizer,
    DPOConfig(loss=args.loss, beta=args.beta), reference, chat_template=not args.no_chat_template,
)  # fmt: skip


def report(label: str) -> dict[str, float]:
    stats = agent.evaluate(test)
    print(
        f"{label}: held-out implicit-reward accuracy {stats['rewards/accuracy']:.3f}  "
        f"margin {stats['rewards/margin']:+.3f}  loss {stats['loss']:.4f}  ({len(test)} pairs)",
        flush=True,
    )
    return stats


before = report("before")
generator = torch.Generator().manual_seed(args.seed)
step = 0
for _ in range(args.epochs):
    order = torch.randperm(len(train), generator=generator).tolist()
    for start in range(0, len(order), args.batch_size):
        stats = agent.update([train[i] for i in order[start : start + args.batch_size]])
        if step % 10 == 0:
            print(
                f"step {step:4d}  loss {stats['loss']:.4f}  accuracy {stats['rewards/accuracy']:.2f}  margin {stats['rewards/margin']:+.3f}",
                flush=True,
            )
        step += 1
after = report(f"after {step} steps")
