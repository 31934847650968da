r"""RLHF with a synthetic gold standard: verifier-labelled pairs -> reward model -> RL against it, gold watched.

    python examples/rlhf_overoptimisation.py --out runs/rlhf \
        --pairs-models smollm2-135m-instruct runs/main/checkpoints/step-000080 --betas 0.01 0.05 0.2

1. Pairs: each ``--pairs-models`` policy samples ``--pairs-n`` completions for
   ``--pairs-prompts`` training problems; the environment's verifier ranks them.
   A policy that is sometimes right gives pairs that rank right sums over wrong
   ones; the untrained model's pairs mostly rank a box over none. With
   ``--counterfactuals K``, up to K right samples per problem are also paired with
   a copy whose boxed answer is moved (a near miss the verifier scores lower), so
   some pairs differ only in the sum; ``--counterfactual-copies C`` makes C such
   copies of each, and ``--counterfactual-kind rewrite`` moves the answer to the
   kinds of wrong answer hacked policies wrote (a digit added, any small integer). With ``--pairs-pool`` every pairs model
   samples the same problems and each problem's samples are pooled before they
   are ranked, so one model's right answer is paired with another's wrong one.
2. A Bradley-Terry reward model on those pairs (held-out pairs from test problems);
   with ``--rm-ensemble K``, K of them from seeds 0 to K - 1
   (``rm/``, ``rm-1/``, ...), and the reward is their normalised mean less
   ``--uncertainty-penalty`` times their spread (:mod:`rlvr.preference.reward_ensemble`).
   ``--reward-model-only`` stops here, to read the reward models' held-out
   accuracy by kind of pair before any RL.
3. For each ``--betas`` value, a fresh copy of ``--model`` trained with
   ``--algorithm`` (PPO with the KL penalty in the reward, or GRPO with it in the
   loss) against the reward model, normalised and clipped; with ``--ceiling``, one
   more run against the verifier itself. PPO's critic starts as ``--critic-init``
   and can first take ``--critic-warmup`` batches of critic-only steps. Every ``--measure-every`` steps the KL to
   the reference, the proxy (reward-model) score and the gold (verifier) score are
   measured on held-out problems (:mod:`rlvr.preference.overoptimisation`); with an
   ensemble the proxy is the first member's raw score, so that runs against it
   and against the ensemble share one proxy axis.
   With ``--save-policies`` each run's final policy is kept in ``policies/``: a
   hacked one can sample pairs for the next reward model, whose verifier labels
   then rank its favourite answer below a right one (the "refresh" study in
   docs/preference.md).
4. ``plots/overoptimisation.png``: proxy and gold against sqrt(KL), the gold peak
   marked where a run went past it, and a table. Every update's metrics are in
   ``metrics.jsonl`` (``explained_variance`` among them), and at every measurement
   the first group of that step's batch, with the rewards it trained on, in
   ``samples.jsonl``.

Each stage's output is kept in ``--out`` and reused, and a run whose last point is
in ``points.jsonl`` is skipped, so the study can grow across invocations.
"""

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
import yaml

import rlvr
from rlvr.agents import GRPO, PPO, Experience, GRPOConfig, PPOConfig
from rlvr.agents.critic import Critic
from rlvr.models import DEFAULT_MODEL, load_model_and_tokenizer
from rlvr.policy import Policy
from rlvr.precision import pick_autocast
from rlvr.preference.overoptimisation import Point, gold_peak, measure, plot_overoptimisation, read_points, write_point
from rlvr.preference.pairs import (
    counterfactual_pairs,
    load_pairs,
    pairs_from_scored,
    rewrite_boxed_integer,
    save_pairs,
    shift_boxed_integer,
)
from rlvr.preference.rejection import Scored, sample_and_score
from rlvr.preference.reward_ensemble import RewardEnsembleVerifier
from rlvr.preference.reward_model import (
    RewardModel,
    load_reward_model,
    pairwise_accuracy,
    save_reward_model,
    score,
    train_reward_model,
)
from rlvr.preference.reward_verifier import RewardModelVerifier
from rlvr.rollout import SamplingParams, TransformersEngine, derive_seed
from rlvr.tokens import default_system_prompt
from rlvr.train import pick_system_prompt

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--out", required=True, help="folder for pairs, reward model, points and plot")
parser.add_argument("--model", default=DEFAULT_MODEL, help="the policy trained, and the reward model's trunk")
parser.add_argument("--env", default="rlvr/Arithmetic-v0")
parser.add_argument(
    "--option", action="append", default=[], metavar="KEY=VALUE", help="environment option, e.g. digits=1"
)
parser.add_argument("--pairs-models", nargs="+", default=[DEFAULT_MODEL], help="policies that sample the pairs")
parser.add_argument("--pairs-prompts", type=int, default=100, help="training problems per pairs model")
parser.add_argument("--pairs-n", type=int, default=8)
parser.add_argument("--pairs-temperature", type=float, default=0.7)
parser.add_argument(
    "--pairs-pool",
    action="store_true",
    help="every pairs model samples the same problems, pooled per problem before pairing: "
    "one model's right answer is ranked over another's wrong one",
)
parser.add_argument(
    "--counterfactuals", type=int, default=0, help="per problem: right samples paired with their boxed answer moved"
)
parser.add_argument(
    "--counterfactual-copies", type=int, default=1, help="distinct moved copies of each of those right samples"
)
parser.add_argument(
    "--counterfactual-kind",
    choices=["shift", "rewrite"],
    default="shift",
    help="shift: the answer moved by 1, 2 or 10; rewrite: also a digit added or dropped, or any small integer",
)
parser.add_argument("--rm-epochs", type=int, default=2)
parser.add_argument("--rm-lr", type=float, default=3e-5)
parser.add_argument("--rm-ensemble", type=int, default=1, help="reward models, from consecutive seeds")
parser.add_argument(
    "--uncertainty-penalty",
    type=float,
    default=1.0,
    help="with --rm-ensemble >= 2: the reward is the members' mean less this many of their standard deviations",
)
parser.add_argument("--reward-model-only", action="store_true", help="stop once the reward models are trained")
parser.add_argument("--algorithm", choices=["ppo", "grpo"], default="ppo")
parser.add_argument("--betas", type=float, nargs="+", default=[0.01, 0.05, 0.2])
parser.add_argument("--ceiling", action="store_true", help="also train against the verifier (the middle beta)")
parser.add_argument("--steps", type=int, default=30)
parser.add_argument("--prompts", type=int, default=4)
parser.add_argument("--group", type=int, default=8)
parser.add_argument("--max-new-tokens", type=int, default=48)
parser.add_argument("--temperature", type=float, default=0.5)
parser.add_argument("--lr", type=float, default=1e-5)
parser.add_argument("--ppo-epochs", type=int, default=2, help="PPO's passes over each batch")
parser.add_argument("--critic-lr", type=float, default=None, help="PPO: the critic's learning rate (default: --lr)")
parser.add_argument(
    "--value-clip",
    type=float,
    default=0.2,
    help="PPO: how far one batch may move a value from the value that sampled it; 0: unclipped",
)
parser.add_argument(
    "--critic-warmup", type=int, default=0, help="PPO: batches of critic-only steps before the first policy step"
)
parser.add_argument(
    "--critic-init",
    choices=["reward-model", "reward-model-trunk", "policy"],
    default="reward-model",
    help="PPO against the reward model: its critic starts as the reward model (trunk and head, InstructGPT), "
    "its trunk with a zero head, or the policy's trunk with a zero head (as against the verifier)",
)
parser.add_argument("--measure-every", type=int, default=5)
parser.add_argument("--measure-problems", type=int, default=32)
parser.add_argument("--measure-n", type=int, default=4, help="samples per held-out problem at each measurement")
parser.add_argument("--no-chat-template", action="store_true")
parser.add_argument(
    "--system-prompt",
    default="auto",
    help="auto: the environment's suggestion (as rlvr train), none: the chat template's own, or the text",
)
parser.add_argument(
    "--save-policies",
    action="store_true",
    help="keep each run's final policy in OUT/policies/<run>, e.g. to sample the next reward model's pairs",
)
parser.add_argument("--seed", type=int, default=0, help="the RL runs' seed (reward model k is trained from seed k)")
args = parser.parse_args()
if args.measure_every < 1 or args.steps < 1 or not args.betas or min(args.betas) < 0:
    parser.error("--steps and --measure-every must be >= 1 and every beta >= 0")
if args.ppo_epochs < 1 or args.critic_warmup < 0 or args.value_clip < 0:
    parser.error("--ppo-epochs must be >= 1, --critic-warmup and --value-clip >= 0")
if args.critic_lr is not None and args.critic_lr <= 0:
    parser.error("--critic-lr must be > 0")
if args.counterfactuals < 0 or args.counterfactual_copies < 1:
    parser.error("--counterfactuals must be >= 0 and --counterfactual-copies >= 1")
if args.rm_ensemble < 1 or args.uncertainty_penalty < 0:
    parser.error("--rm-ensemble must be >= 1 and --uncertainty-penalty >= 0")
if args.rm_ensemble > 1 and args.algorithm == "ppo" and args.critic_init == "reward-model":
    parser.error(
        "--critic-init reward-model rescales one reward model's head: with --rm-ensemble use reward-model-trunk"
    )
try:
    options = {k: yaml.safe_load(v) for k, _, v in (o.partition("=") for o in args.option)}
except yaml.YAMLError as err:
    parser.error(f"--option: {err}")
if any(k == "" for k in options):
    parser.error("--option takes KEY=VALUE")
out = Path(args.out)
start = time.monotonic()


def minutes() -> str:
    """Wall time since the start of this invocation (stages reused from ``--out`` cost nothing)."""
    return f"{(time.monotonic() - start) / 60:.1f} min"


chat = not args.no_chat_template
mixed = pick_autocast("auto")
train_env = rlvr.BatchedEnv(rlvr.make(args.env, split="train", **options))
test_env = rlvr.BatchedEnv(rlvr.make(args.env, split="test", **options))
if not chat and args.system_prompt not in ("auto", "none"):
    parser.error("--system-prompt TEXT needs the chat template (drop --no-chat-template)")
setting = None if args.system_prompt == "none" or not chat else args.system_prompt
system = pick_system_prompt(setting, train_env.env.unwrapped)
# the stages kept in --out are reused only for the same task, rendered the same way
study = {"env": args.env, "options": options, "chat_template": chat, "system_prompt": system}
if (out / "study.json").exists() and json.loads((out / "study.json").read_text()) != study:
    parser.error(f"{out} holds a study of another task or system prompt ({out / 'study.json'}): use another --out")
out.mkdir(parents=True, exist_ok=True)
(out / "study.json").write_text(json.dumps(study, indent=2) + "\n")


def load(name: str):
    """A model and its tokenizer, the tokenizer rendering prompts with this study's system prompt.

    Every stage renders prompts alike: the pairs' samplers, the reward model (its
    tokenizer is saved with it) and the trained policy.
    """
    model, tokenizer = load_model_and_tokenizer(name)
    if system is not None:
        default_system_prompt(tokenizer, system)
    return model, tokenizer


# 1. Pairs, ranked by the verifier: training problems for training, test problems held out.
def ranked_pairs(env, scored: Scored, seed: int) -> list:
    """Pairs of each problem's samples ranked by the verifier, and near misses with ``--counterfactuals``."""
    pairs = pairs_from_scored(scored, seed=seed)
    if args.counterfactuals:
        perturb = rewrite_boxed_integer if args.counterfactual_kind == "rewrite" else shift_boxed_integer
        pairs += counterfactual_pairs(
            env, scored, perturb, pairs_per_prompt=args.counterfactuals, copies=args.counterfactual_copies, seed=seed
        )
    return pairs


def pooled(a: Scored | None, b: Scored) -> Scored:
    """The samples of two models for the same problems, side by side."""
    if a is None:
        return b
    texts = [x + y for x, y in zip(a.texts, b.texts, strict=True)]
    return Scored(a.problems, texts, np.hstack([a.rewards, b.rewards]), np.hstack([a.correct, b.correct]))


if not (out / "pairs_test.jsonl").exists():
    pairs = {"train": [], "test": []}
    pool: dict[str, Scored | None] = {"train": None, "test": None}
    for i, name in enumerate(args.pairs_models):
        sampler, tokenizer = load(name)
        engine = TransformersEngine(sampler, tokenizer, chat_template=chat, autocast=mixed)
        for split, env, n_problems in (
            ("train", train_env, args.pairs_prompts),
            ("test", test_env, max(args.pairs_prompts // 4, 1)),
        ):
            seed = (0 if args.pairs_pool else 2 * i) + (split == "test")  # pooled: every model, the same problems
            scored = sample_and_score(
                engine, env, env.distinct_problems(n_problems, seed=seed), n=args.pairs_n,
                max_new_tokens=args.max_new_tokens, temperature=args.pairs_temperature, seed=seed,
            )  # fmt: skip
            if args.pairs_pool:
                pool[split] = pooled(pool[split], scored)
            else:
                pairs[split] += ranked_pairs(env, scored, seed)
        print(f"sampled from {name} ({minutes()})", flush=True)
        del sampler, engine
    if args.pairs_pool:
        for split, env in (("train", train_env), ("test", test_env)):
            pairs[split] = ranked_pairs(env, pool[split], seed=int(split == "test"))
    print(f"pairs: {len(pairs['train'])} training, {len(pairs['test'])} held out", flush=True)
    save_pairs(pairs["train"], out / "pairs_train.jsonl")
    save_pairs(pairs["test"], out / "pairs_test.jsonl")
train_pairs, test_pairs = load_pairs(out / "pairs_train.jsonl"), load_pairs(out / "pairs_test.jsonl")


# 2. The reward model (the proxy), or an ensemble of them from consecutive seeds.
def rm_folder(member: int) -> Path:
    return out / ("rm" if member == 0 else f"rm-{member}")


def train_member(member: int) -> None:
    """One reward model; members differ in the head's initial weights and the order of the pairs."""
    torch.manual_seed(member)
    trunk, tokenizer = load(args.model)
    rm = RewardModel(trunk, autocast=mixed)
    train_reward_model(
        rm, tokenizer, train_pairs, epochs=args.rm_epochs, lr=args.rm_lr, chat_template=chat, seed=member
    )
    held = pairwise_accuracy(rm, tokenizer, test_pairs, chat_template=chat)
    # by kind of pair: a right box over a wrong one asks the reward model to check the answer, a box
    # over none only to see the format; the first is what lifts the gold above the format's share
    kinds: dict[str, list] = {}
    for p in test_pairs:
        kind = f"{p.meta['chosen_reward']:g} over {p.meta['rejected_reward']:g}"
        kinds.setdefault(kind + (", near miss" if p.meta.get("counterfactual") else ""), []).append(p)
    by_kind = {k: pairwise_accuracy(rm, tokenizer, v, chat_template=chat)["accuracy"] for k, v in sorted(kinds.items())}
    info = {"held_out_accuracy": held["accuracy"], "held_out_by_kind": by_kind, "pairs": len(train_pairs)}
    save_reward_model(rm, tokenizer, rm_folder(member), info | {"seed": member})
    print(
        f"reward model {rm_folder(member).name}: held-out pairwise accuracy {held['accuracy']:.3f} "
        f"on {len(test_pairs)} pairs ({minutes()})"
    )
    for kind, acc in by_kind.items():
        print(f"  rewards {kind}: {acc:.3f} on {len(kinds[kind])} pairs", flush=True)


for member in range(args.rm_ensemble):
    if not rm_folder(member).exists():
        train_member(member)
    trained = json.loads((rm_folder(member) / "reward_model.json").read_text()).get("seed", member)
    if trained != member:  # members are told apart by their seeds: a rerun must not swap them
        parser.error(f"{rm_folder(member)} was trained with seed {trained}, not {member}: use another --out")
if args.reward_model_only:
    raise SystemExit(0)
members = [load_reward_model(rm_folder(m), autocast=mixed) for m in range(args.rm_ensemble)]
rm, rm_tokenizer = members[0]


def proxy_scores(texts: list[str], problems: list) -> list[float]:
    """The raw score of the (first) reward model: with an ensemble, the model a single-model run here optimises."""
    return score(rm, rm_tokenizer, [p.prompt for p in problems], texts, chat_template=chat).tolist()


def make_reward():
    """The reward a run against the reward model trains on: normalised and clipped."""
    if len(members) == 1:
        return RewardModelVerifier((rm, rm_tokenizer), normalize=True, clip=3.0)
    return RewardEnsembleVerifier(members, penalty=args.uncertainty_penalty, clip=3.0)


held_out = test_env.distinct_problems(args.measure_problems, seed=1)
points_file = out / "points.jsonl"
metrics_file = out / "metrics.jsonl"
samples_file = out / "samples.jsonl"


def log(run: str, step: int, metrics: dict) -> None:
    """Each update's metrics (docs/metrics.md, and ``rm_spread``), warm-up steps at negative ``step``."""
    with metrics_file.open("a") as f:
        f.write(json.dumps({"run": run, "step": step, **metrics}) + "\n")
    keys = ("reward_mean", "kl_ref", "explained_variance", "explained_variance_last", "value_loss", "rm_spread")
    shown = {k: metrics[k] for k in keys if k in metrics}
    print(
        f"{run:24} {'warm-up' if step < 0 else 'update'} {step:4d}  "
        + "  ".join(f"{k} {v:.3f}" for k, v in shown.items()),
        flush=True,
    )


def train_one(run: str, beta: float, against_verifier: bool) -> None:
    """One run from a fresh copy of the model; a point every ``--measure-every`` steps."""
    torch.manual_seed(args.seed)
    model, tokenizer = load(args.model)
    if tokenizer.get_vocab() != rm_tokenizer.get_vocab():
        raise SystemExit("the reward model's tokenizer differs from the policy's")
    policy = Policy(model, temperature=args.temperature, autocast=mixed)
    reference = Policy(copy.deepcopy(model).eval().requires_grad_(False), temperature=args.temperature, autocast=mixed)
    engine = TransformersEngine(model, tokenizer, chat_template=chat, autocast=mixed)
    reward = None if against_verifier else make_reward()
    env = rlvr.BatchedEnv(rlvr.make(args.env, split="train", reward=reward, **options))
    env.reset(1, seed=args.seed)

    def sample_batch(seed: int):
        problems = env.reset(args.prompts)
        params = SamplingParams(
            n=args.group, max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=seed
        )
        rollouts = engine.generate([p.prompt for p in problems], params)
        return problems, rollouts, env.step(problems, rollouts.groups(), on_error="record")

    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    if args.algorithm == "grpo":
        agent = GRPO(policy, optimizer, GRPOConfig(beta=beta), reference if beta > 0 else None)
    else:
        if reward is None or args.critic_init == "policy":
            critic = Critic(copy.deepcopy(model), autocast=mixed)
        elif args.critic_init == "reward-model-trunk":  # what the reward model reads, valued from zero
            critic = Critic(copy.deepcopy(rm.trunk).requires_grad_(True), autocast=mixed)
        else:  # from the reward model (InstructGPT), rescaled to the normalised reward a first batch sets
            sample_batch(seed=derive_seed(args.seed, 0))  # training steps start at 1
            critic = Critic.from_reward_model(rm, autocast=mixed, mean=reward.moments.mean, std=reward.moments.std)
        critic_optimizer = torch.optim.AdamW(critic.parameters(), lr=args.critic_lr or args.lr)
        # lam = 1: the critic's values of prefixes are not yet fitted to returns in a short run
        config = PPOConfig(beta=beta, lam=1.0, epochs=args.ppo_epochs, value_clip_eps=args.value_clip or None)
        agent = PPO(policy, optimizer, critic, critic_optimizer, config, reference)
        for i in range(args.critic_warmup):  # batches of the untrained policy, never trained on
            _, rollouts, result = sample_batch(seed=derive_seed(args.seed, 1_000_000 + i))
            log(
                run,
                -args.critic_warmup + i,
                agent.warm_up_critic(Experience.from_rollouts(rollouts, result.rewards, result.scored)),
            )

    def point(step: int) -> None:
        m = measure(
            engine, reference, held_out, proxy_scores, test_env, n=args.measure_n,
            max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=10_000,
        )  # fmt: skip
        write_point(Point(run=run, beta=beta, step=step, **m), points_file)
        print(
            f"{run:24} step {step:3d}  kl {m['kl']:7.3f}  proxy {m['proxy']:+7.2f}  gold {m['gold']:.3f}  ({minutes()})"
        )

    point(0)
    for step in range(1, args.steps + 1):
        problems, rollouts, result = sample_batch(seed=derive_seed(args.seed, step))
        metrics = agent.update(Experience.from_rollouts(rollouts, result.rewards, result.scored))
        spreads = [i["details"]["spread"] for row in result.infos for i in row if "spread" in i.get("details", {})]
        if spreads:  # an ensemble's disagreement on what the policy writes now
            metrics["rm_spread"] = float(np.mean(spreads))
        log(run, step, metrics)
        if step % args.measure_every == 0 or step == args.steps:
            point(step)
            with samples_file.open("a") as f:  # what the policy writes: a hacked reward shows up here first
                group = {"prompt": problems[0].prompt, "completions": rollouts.groups()[0]}
                f.write(json.dumps({"run": run, "step": step, **group, "rewards": result.rewards[0].tolist()}) + "\n")
    if args.save_policies:  # a policy that found the reward model's favourite answer samples its next pairs
        folder = out / "policies" / run.replace(" ", "_").replace("=", "")
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
        print(f"{run:24} policy saved to {folder}", flush=True)


# 3. The runs, each skipped when its last point is already recorded.
CEILING = "verifier"  # in a run's name: trained on the gold itself, here or in an earlier invocation
proxy = "rm" if args.rm_ensemble == 1 else f"rm-ensemble{args.rm_ensemble} u={args.uncertainty_penalty:g}"
runs = [(f"{args.algorithm} {proxy} beta={b:g}", b, False) for b in args.betas]
if args.ceiling:
    beta = sorted(args.betas)[len(args.betas) // 2]
    runs.append((f"{args.algorithm} {CEILING} beta={beta:g}", beta, True))
for run, beta, against_verifier in runs:
    old = read_points(points_file) if points_file.exists() else []
    if any(p.run == run and p.step == args.steps for p in old):
        continue
    kept = [p for p in old if p.run != run]  # an unfinished run starts again
    points_file.unlink(missing_ok=True)
    for p in kept:
        write_point(p, points_file)
    train_one(run, beta, against_verifier)

# 4. The plot and a table: where gold peaked, and whether the proxy went on past it.
points = read_points(points_file)
# a fall of the gold counts past two standard errors of a mean of [0, 1] rewards over one measurement's samples
samples = len(held_out) * args.measure_n
min_drop = 1.0 / samples**0.5
ceilings = {p.run for p in points if p.run.split()[1:2] == [CEILING]}  # no over-optimisation verdict
plot = plot_overoptimisation(points, out / "plots" / "overoptimisation.png", min_drop, ceilings)
print(f"\n| run | gold at start | gold peak (step, KL) | gold at end | proxy at end | over-optimised |\n|{'---|' * 6}")
for run, (peak, overshot) in gold_peak(points, min_drop, ceilings).items():
    curve = sorted((p for p in points if p.run == run), key=lambda p: p.step)
    print(
        f"| {run} | {curve[0].gold:.3f} | {peak.gold:.3f} ({peak.step}, {peak.kl:.2f}) | {curve[-1].gold:.3f} "
        f"| {curve[-1].proxy:+.2f} | {'-' if overshot is None else 'yes' if overshot else 'no'} |"
    )
print(f"over-optimised: the gold fell more than {min_drop:.3f} (two standard errors of {samples} samples) below")
print(f"its peak while the proxy rose. plot: {plot} ({minutes()})")
