"""PPO against a learned reward model, with the critic initialised from it (ref 002).

    rlvr make-pairs --env rlvr/Arithmetic-v0 --prompts 200 --out runs/pairs.jsonl
    rlvr train-rm --data runs/pairs.jsonl --out runs/rm
    python examples/reward_model_ppo.py --reward-model runs/rm --steps 20

The policy is rewarded only by the reward model (normalised, clipped); the
held-out accuracy before and after is read by the environment's own rule-based
verifier, which the policy never sees. The reward model and the policy must share
a tokenizer, since the critic reads the policy's tokens.

PPO learns what the pairs teach: pairs sampled from the untrained model only rank
a box over no box, and PPO against them teaches the box and no sums. Add pairs
from a policy that is sometimes right (``make-pairs --model CHECKPOINT``) for a
reward model that also prefers right sums (docs/preference.md has the figures).
"""

import argparse
import copy

import torch

import rlvr
from rlvr.agents import PPO, Experience, PPOConfig
from rlvr.agents.critic import Critic
from rlvr.evaluation import evaluate
from rlvr.models import DEFAULT_MODEL, load_model_and_tokenizer
from rlvr.policy import Policy
from rlvr.precision import pick_autocast
from rlvr.preference.reward_model import load_reward_model
from rlvr.preference.reward_verifier import RewardModelVerifier
from rlvr.rollout import SamplingParams, TransformersEngine

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--reward-model", required=True, help="a folder from rlvr train-rm")
parser.add_argument("--model", default=DEFAULT_MODEL)
parser.add_argument("--env", default="rlvr/Arithmetic-v0")
parser.add_argument("--steps", type=int, default=20)
parser.add_argument("--prompts", type=int, default=4)
parser.add_argument("--group", type=int, default=8)
parser.add_argument("--max-new-tokens", type=int, default=48)
parser.add_argument("--temperature", type=float, default=0.5)
parser.add_argument("--lr", type=float, default=1e-5)
parser.add_argument(
    "--lam", type=float, default=1.0, help="GAE trace decay (1: Monte-Carlo returns, critic as baseline)"
)
parser.add_argument("--critic", choices=["rm", "zero"], default="rm", help="start the critic from the RM, or at 0")
parser.add_argument("--eval-problems", type=int, default=100)
parser.add_argument("--out", help="save the trained policy here (a folder `rlvr eval --model` reads)")
parser.add_argument("--no-chat-template", action="store_true")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
torch.manual_seed(args.seed)

# The policy, its frozen reference, and the reward model turned into a verifier.
model, tokenizer = load_model_and_tokenizer(args.model, device="auto")
mixed = pick_autocast("auto", next(model.parameters()).device)
rm, rm_tokenizer = load_reward_model(args.reward_model, autocast=mixed)
if rm_tokenizer.get_vocab() != tokenizer.get_vocab():
    raise SystemExit("the reward model's tokenizer differs from the policy's: the critic cannot start from it")
chat = not args.no_chat_template
rm_reward = RewardModelVerifier((rm, rm_tokenizer), normalize=True, clip=3.0, chat_template=chat)
policy = Policy(model, temperature=args.temperature, autocast=mixed)
reference = Policy(copy.deepcopy(model).eval().requires_grad_(False), temperature=args.temperature, autocast=mixed)
engine = TransformersEngine(model, tokenizer, chat_template=chat, autocast=mixed)
train_env = rlvr.BatchedEnv(rlvr.make(args.env, split="train", reward=rm_reward))
test_env = rlvr.BatchedEnv(rlvr.make(args.env, split="test"))
held_out = test_env.distinct_problems(args.eval_problems, seed=1)
B, G = args.prompts, args.group


def sample_batch(problems, seed):
    params = SamplingParams(n=G, max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=seed)
    rollouts = engine.generate([p.prompt for p in problems], params)
    return rollouts, train_env.step(problems, rollouts.groups(), on_error="record")


# One batch scored before training sets the normaliser's statistics, so the critic
# copied from the RM can start on the normalised reward's scale (Critic.from_reward_model).
train_env.reset(1, seed=args.seed)
sample_batch(train_env.reset(B), seed=args.steps)  # a seed no training step uses
if args.critic == "rm":  # values start at the RM's (normalised) score of each prefix
    critic = Critic.from_reward_model(rm, autocast=mixed, mean=rm_reward.moments.mean, std=rm_reward.moments.std)
else:
    critic = Critic(copy.deepcopy(model), autocast=mixed)
# lam=1 by default: with GAE's lam < 1 the advantage of early tokens rests on the
# critic's values of prefixes, which are not yet fitted to returns in a short run.
config = PPOConfig(lam=args.lam)
agent = PPO(
    policy, torch.optim.AdamW(model.parameters(), lr=args.lr),
    critic, torch.optim.AdamW(critic.parameters(), lr=args.lr), config, reference,
)  # fmt: skip


def accuracy() -> float:
    report = evaluate(engine, test_env, held_out, max_new_tokens=args.max_new_tokens)
    parts = "  ".join(f"{k} {v:.3f}" for k, v in report.components.items())
    print(f"  rule-based verifier on {report.n} held-out problems: accuracy {report.accuracy:.3f}  {parts}", flush=True)
    for sample in report.samples[:3]:
        print(f"    {sample['prompt']!r} -> {sample['completion']!r} (reward {sample['reward']:.2f})")
    return report.accuracy


# Train against the reward model; measure with the rule-based verifier on held-out problems.
before = accuracy()
print(f"held-out accuracy (rule-based verifier) before: {before:.3f}")
for step in range(args.steps):
    rollouts, result = sample_batch(train_env.reset(B), seed=step)
    raw = [info["details"]["raw_score"] for row in result.infos for info in row if info["scored"]]
    metrics = agent.update(Experience.from_rollouts(rollouts, result.rewards, result.scored))
    print(
        f"step {step:3d}  rm score {sum(raw) / max(len(raw), 1):+.3f} (normalised {metrics['reward_mean']:+.3f})  "
        f"kl {metrics.get('kl_ref', 0.0):.4f}  value loss {metrics.get('value_loss', 0.0):.3f}  "
        f"explained var {metrics.get('explained_variance', 0.0):+.2f}  len {metrics['response_length']:.1f}",
        flush=True,
    )
print(f"held-out accuracy (rule-based verifier) before {before:.3f}, after {args.steps} steps {accuracy():.3f}")
if args.out:
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    print(f"policy saved: {args.out}")
