"""Experiment trackers beside the run folder's files: TensorBoard and Weights & Biases.

``log.report_to`` names the trackers of a run. Each gets the metrics under the
same names as ``metrics.jsonl`` (the ``step`` is the x-axis; the wall-clock
``time`` field is left to the tracker's own clock), the resolved configuration
as hyperparameters, and the sample rows of ``samples.jsonl`` as a table
(TensorBoard: a markdown table in the text tab; wandb: a ``wandb.Table``).

Their libraries are imported only when a tracker is opened; :func:`check_trackers`
says which extra to install before any model loads.

W&B runs offline unless ``WANDB_MODE`` is set: a run never waits on the network
and never uploads what the user did not ask to upload. ``wandb sync <run
folder>/wandb/offline-run-*`` uploads it later; ``WANDB_MODE=online`` logs live.
``WANDB_PROJECT`` names the project (default ``rlvr``); the run is named after
the run folder.
"""

from __future__ import annotations

import importlib.util
import json
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "TRACKERS",
    "TensorBoardTracker",
    "Tracker",
    "WandbTracker",
    "check_trackers",
    "flat_config",
    "open_trackers",
    "sample_table",
    "samples_key",
    "scalars",
]

# tracker name -> (the module it needs, the rlvr extra that installs it)
_REQUIREMENTS = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb")}
TRACKERS = tuple(_REQUIREMENTS)


class Tracker(Protocol):
    """What a run log needs from an experiment tracker."""

    def log_metrics(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Record ``step``'s metrics (the finite numbers among them)."""
        ...

    def log_samples(self, step: int, rows: Sequence[Mapping[str, Any]]) -> None:
        """Record ``step``'s sample rows as a table."""
        ...

    def close(self) -> None:
        """Flush and finish."""
        ...


def check_trackers(names: Sequence[str]) -> None:
    """Fail fast, before any model loads, when a tracker is unknown or its library is missing.

    Raises:
        ValueError: an unknown tracker name.
        ImportError: a tracker's library is not installed; the message names the extra.
    """
    unknown = [n for n in names if n not in _REQUIREMENTS]
    if unknown:
        raise ValueError(f"unknown trackers {unknown}; known: {', '.join(TRACKERS)}")
    for name in names:
        module, extra = _REQUIREMENTS[name]
        if importlib.util.find_spec(module) is None:
            raise ImportError(f"log.report_to={name} needs the {module} package: pip install 'rlvr[{extra}]'")


def open_trackers(names: Sequence[str], run_dir: Path, config: Mapping[str, Any]) -> list[Tracker]:
    """One tracker per name, writing inside ``run_dir``, each given ``config`` as hyperparameters."""
    check_trackers(names)
    opened: list[Tracker] = []
    try:
        for name in names:
            if name == "tensorboard":
                opened.append(TensorBoardTracker(Path(run_dir) / "tensorboard", config))
            else:
                opened.append(WandbTracker(Path(run_dir), config))
    except BaseException:
        for tracker in opened:  # a failed second tracker must not leave the first one open
            tracker.close()
        raise
    return opened


def scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers of a metrics record, as floats; other values (null, text) are left out."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, numbers.Real) and math.isfinite(float(value)):
            out[key] = float(value)
    return out


def flat_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, bool | int | float | str]:
    """A nested configuration as ``section/key`` -> a scalar (lists and None as text), for hyperparameter views."""
    out: dict[str, bool | int | float | str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_config(value, f"{name}/"))
        elif isinstance(value, bool | int | float | str):
            out[name] = value
        else:
            out[name] = json.dumps(value, default=str)
    return out


def sample_table(rows: Sequence[Mapping[str, Any]], step: int) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows of a sample table: ``step`` first, then every key in order of first appearance.

    Scalars stay as they are; prompts given as chat messages, reward
    breakdowns and other structures become JSON text; a missing key is None.
    """
    columns = ["step"]
    for row in rows:
        columns += [k for k in row if k not in columns]
    data = [[step] + [_cell(row.get(c)) for c in columns[1:]] for row in rows]
    return columns, data


def samples_key(rows: Sequence[Mapping[str, Any]]) -> str:
    """``samples/eval`` for evaluation samples, ``samples/train`` otherwise (both may come at one step)."""
    return "samples/eval" if rows and all(row.get("eval") for row in rows) else "samples/train"


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return json.dumps(value, default=str)


def _markdown(columns: Sequence[str], data: Sequence[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        # A pipe or a line break would end the markdown cell early.
        return "" if value is None else str(value).replace("|", "\\|").replace("\n", "<br>")

    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in data]
    return "\n".join(lines)


class TensorBoardTracker:
    """TensorBoard event files through ``torch.utils.tensorboard.SummaryWriter``.

    Metrics are scalars under their own names; the configuration goes to the
    HParams tab (flattened to ``section/key``) and, whole, to the text tab as
    ``config``; samples are markdown tables in the text tab.

    Args:
        log_dir: the folder of the event files (``<run folder>/tensorboard``); a
            resumed run adds a new event file there and its steps continue.
        config: the resolved configuration, as plain nested data.
    """

    def __init__(self, log_dir: Path, config: Mapping[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        self.writer = SummaryWriter(log_dir=str(log_dir))
        # Written into this run's own event file: SummaryWriter.add_hparams would start a second run.
        for summary in hparams(flat_config(config), {}):
            self.writer.file_writer.add_summary(summary)
        self.writer.add_text("config", "```\n" + json.dumps(config, indent=2, default=str) + "\n```")

    def log_metrics(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Write each metric as a scalar at ``step``."""
        for key, value in scalars(metrics).items():
            self.writer.add_scalar(key, value, global_step=step)
        self.writer.flush()

    def log_samples(self, step: int, rows: Sequence[Mapping[str, Any]]) -> None:
        """Write the rows as a markdown table in the text tab."""
        if rows:
            self.writer.add_text(samples_key(rows), _markdown(*sample_table(rows, step)), global_step=step)
            self.writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.close()


class WandbTracker:
    """A Weights & Biases run, offline unless ``WANDB_MODE`` says otherwise.

    The run's files go to ``<run folder>/wandb``; it is named after the run
    folder and grouped by it (a resumed run is a new W&B run in the same group).

    Args:
        run_dir: the run folder.
        config: the resolved configuration, as plain nested data.
        mode: ``"offline"``, ``"online"`` or ``"disabled"``; None reads
            ``WANDB_MODE`` and falls back to ``"offline"``.
        project: the W&B project; None reads ``WANDB_PROJECT`` and falls back to ``"rlvr"``.
    """

    def __init__(
        self, run_dir: Path, config: Mapping[str, Any], *, mode: str | None = None, project: str | None = None
    ) -> None:
        import wandb

        self._wandb = wandb
        run_dir = Path(run_dir).resolve()
        self.run = wandb.init(
            project=project or os.environ.get("WANDB_PROJECT", "rlvr"),
            name=run_dir.name,
            group=run_dir.name,
            dir=str(run_dir),
            config=dict(config),
            mode=mode or os.environ.get("WANDB_MODE") or "offline",
            # rlvr prints its own progress; wandb capturing the console would wrap it twice.
            settings=wandb.Settings(console="off"),
        )

    def log_metrics(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Log the metrics at ``step`` (a step's training and evaluation metrics merge)."""
        values = scalars(metrics)
        if values:
            self.run.log(values, step=step)

    def log_samples(self, step: int, rows: Sequence[Mapping[str, Any]]) -> None:
        """Log the rows as a ``wandb.Table``."""
        if rows:
            columns, data = sample_table(rows, step)
            self.run.log(
                {samples_key(rows): self._wandb.Table(columns=columns, data=data, allow_mixed_types=True)}, step=step
            )

    def close(self) -> None:
        """Finish the run (its files stay in the run folder)."""
        self.run.finish()
