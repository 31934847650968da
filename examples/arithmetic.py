"""GRPO, REINFORCE or PPO on two-digit addition: the whole RL loop on one screen.

    python examples/arithmetic.py                       # GRPO on SmolLM2-135M-Instruct, CPU
    python examples/arithmetic.py --algorithm ppo --steps 20
    python examples/arithmetic.py --model HuggingFaceTB/SmolLM2-360M-Instruct   # any causal LM

`rlvr train` runs the same loop with configuration, checkpoints, evaluation and
plots; this script shows the parts it is made of.
"""

import argparse
import copy

import torch

import rlvr
from rlvr.agents import GRPO, PPO, Experience, GRPOConfig, PPOConfig, Reinforce, ReinforceConfig
from rlvr.agents.critic import Critic
from rlvr.evaluation import evaluate
from rlvr.models import DEFAULT_MODEL, load_model_and_tokenizer
from rlvr.policy import Policy
from rlvr.precision import pick_autocast
from rlvr.rollout import SamplingParams, TransformersEngine, derive_seed

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--algorithm", choices=["grpo", "reinforce", "ppo"], default="grpo")
parser.add_argument("--model", default=DEFAULT_MODEL)
parser.add_argument("--steps", type=int, default=30)
parser.add_argument("--prompts", type=int, default=4, help="prompts per step (B)")
parser.add_argument("--group", type=int, default=8, help="completions per prompt (G)")
parser.add_argument("--max-new-tokens", type=int, default=48)
parser.add_argument("--lr", type=float, default=3e-5)
parser.add_argument("--eval-problems", type=int, default=50)
parser.add_argument("--no-chat-template", action="store_true")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
torch.manual_seed(args.seed)

# The model, a frozen reference for the KL term, and an agent.
model, tokenizer = load_model_and_tokenizer(args.model)
mixed = pick_autocast("auto")  # bf16 where the CPU/GPU has it natively
policy = Policy(model, autocast=mixed)
reference = Policy(copy.deepcopy(model).eval().requires_grad_(False), autocast=mixed)
optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
if args.algorithm == "grpo":
    agent = GRPO(policy, optimizer, GRPOConfig(beta=0.04), reference)
elif args.algorithm == "reinforce":
    agent = Reinforce(policy, optimizer, ReinforceConfig(baseline="rloo", beta=0.05), reference)
else:
    critic = Critic(copy.deepcopy(model), autocast=mixed)
    agent = PPO(policy, optimizer, critic, torch.optim.AdamW(critic.parameters(), lr=args.lr), PPOConfig(), reference)

# Rollouts from the policy itself; problems and rewards from the environment.
engine = TransformersEngine(model, tokenizer, chat_template=not args.no_chat_template, autocast=mixed)
train_env = rlvr.BatchedEnv(rlvr.make("rlvr/Arithmetic-v0", split="train"))
test_env = rlvr.BatchedEnv(rlvr.make("rlvr/Arithmetic-v0", split="test"))
held_out = test_env.distinct_problems(args.eval_problems, seed=1)


def accuracy() -> float:
    return evaluate(engine, test_env, held_out, max_new_tokens=args.max_new_tokens).accuracy


print(f"{args.algorithm}: held-out greedy accuracy before training {accuracy():.2f}")
train_env.reset(1, seed=args.seed)
B, G = args.prompts, args.group
for step in range(args.steps):
    problems = train_env.reset(B)
    params = SamplingParams(n=G, max_new_tokens=args.max_new_tokens, seed=derive_seed(args.seed, step))
    rollouts = engine.generate([p.prompt for p in problems], params)
    result = train_env.step(problems, rollouts.groups(), on_error="record")
    metrics = agent.update(Experience.from_rollouts(rollouts, result.rewards, result.scored))
    print(
        f"step {step:3d}  reward {metrics['reward_mean']:.3f}  kl {metrics.get('kl_ref', 0.0):.4f}  "
        f"len {metrics['response_length']:.1f}  entropy {metrics['entropy']:.2f}"
    )
print(f"{args.algorithm}: held-out greedy accuracy after {args.steps} steps {accuracy():.2f}")
