r"""GRPO on tool-use episodes: products such as 347 * 58, with a sandboxed Python tool.

    python examples/tool_use.py                                  # SmolLM2-135M-Instruct, CPU
    python examples/tool_use.py --steps 2 --model path/to/tiny --no-chat-template   # smoke run

Each episode is a conversation: the policy may call the `python` tool
(<tool_call>{"name": "python", "arguments": {"code": "print(347 * 58)"}}</tool_call>),
gets the sandbox's output back as a message, and answers in \boxed{}. Episodes are
sampled turn by turn with token ids kept as sampled; the environment's tokens are
context, never loss (docs/multiturn.md). Each step logs the tool calls per episode
and their success rate.
"""

import argparse
import copy

import torch

import rlvr
from rlvr.agents import GRPO, Experience, GRPOConfig
from rlvr.episode_rollout import episode_metrics, generate_episodes
from rlvr.evaluation import evaluate_episodes
from rlvr.models import DEFAULT_MODEL, load_model_and_tokenizer
from rlvr.policy import Policy
from rlvr.precision import pick_autocast
from rlvr.rollout import SamplingParams, derive_seed

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--model", default=DEFAULT_MODEL)
parser.add_argument("--steps", type=int, default=8)
parser.add_argument("--prompts", type=int, default=4, help="problems per step (B)")
parser.add_argument("--group", type=int, default=6, help="episodes per problem (G)")
parser.add_argument("--max-new-tokens", type=int, default=64, help="per turn")
parser.add_argument("--max-total-tokens", type=int, default=256, help="per episode, after the prompt")
parser.add_argument("--max-turns", type=int, default=3)
parser.add_argument("--temperature", type=float, default=0.7)
parser.add_argument("--lr", type=float, default=2e-5)
parser.add_argument("--beta", type=float, default=0.0, help="KL to the starting model (0: no reference copy)")
parser.add_argument("--eval-problems", type=int, default=30)
parser.add_argument("--no-chat-template", action="store_true")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--save", help="write the trained model and tokenizer here (for rlvr eval --model)")
args = parser.parse_args()
torch.manual_seed(args.seed)

# The model, a frozen reference for the KL term when beta > 0, and the agent.
model, tokenizer = load_model_and_tokenizer(args.model)
mixed = pick_autocast("auto")
policy = Policy(model, autocast=mixed)
reference = Policy(copy.deepcopy(model).eval().requires_grad_(False), autocast=mixed) if args.beta > 0 else None
agent = GRPO(policy, torch.optim.AdamW(model.parameters(), lr=args.lr), GRPOConfig(beta=args.beta), reference)

# Problems come from one environment; each episode plays in an environment of its own.
env_kwargs = dict(max_turns=args.max_turns)
train_env = rlvr.BatchedEnv(rlvr.make("rlvr/ToolMath-v0", split="train", **env_kwargs))
test_env = rlvr.BatchedEnv(rlvr.make("rlvr/ToolMath-v0", split="test", **env_kwargs))
B, G = args.prompts, args.group
envs = [rlvr.make("rlvr/ToolMath-v0", **env_kwargs) for _ in range(max(B * G, args.eval_problems))]
held_out = test_env.reset(args.eval_problems, seed=1)  # held-out problems, drawn from the test split


def play(problems, params):
    return generate_episodes(
        model, tokenizer, envs[: len(problems) * params.n], problems, params,
        max_total_tokens=args.max_total_tokens, chat_template=not args.no_chat_template, autocast=mixed,
    )  # fmt: skip


def evaluate(when: str) -> None:
    report = evaluate_episodes(
        model, tokenizer, lambda: rlvr.make("rlvr/ToolMath-v0", **env_kwargs), held_out,
        max_new_tokens=args.max_new_tokens, max_total_tokens=args.max_total_tokens,
        chat_template=not args.no_chat_template, autocast=mixed,
    )  # fmt: skip
    c = report.components
    print(
        f"held-out {when}: solved {report.accuracy:.2f}  tool calls/episode {c['tool/calls_per_episode']:.2f}  "
        f"tool success {c.get('tool/success_rate', float('nan')):.2f}  turns {c['episode/turns_mean']:.2f}"
    )


evaluate("before training")
train_env.reset(1, seed=args.seed)
for step in range(args.steps):
    problems = train_env.reset(B)
    params = SamplingParams(
        n=G, temperature=args.temperature, max_new_tokens=args.max_new_tokens, seed=derive_seed(args.seed, step)
    )
    episodes = play(problems, params)
    metrics = agent.update(Experience.from_rollouts(episodes, episodes.returns, episodes.scored))
    m = episode_metrics(episodes)
    print(
        f"step {step:3d}  return {m['episode/return_mean']:.3f}  solved {m['episode/solved_fraction']:.2f}  "
        f"tool calls/episode {m['tool/calls_per_episode']:.2f}  tool success {m['tool/success_rate']:.2f}  "
        f"turns {m['episode/turns_mean']:.2f}  kl {metrics.get('kl_ref', 0.0):.4f}"
    )
evaluate(f"after {args.steps} steps")
if args.save:
    model.save_pretrained(args.save)
    tokenizer.save_pretrained(args.save)
    print(
        f"saved to {args.save}: rlvr eval --model {args.save} --env rlvr/ToolMath-v0 --max-new-tokens {args.max_new_tokens}"
    )
