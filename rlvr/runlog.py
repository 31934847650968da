"""What a run leaves behind and shows: metrics as JSON lines, samples, errors, a live display.

Files in the run folder:

    config.yaml       the resolved configuration
    metrics.jsonl     one JSON object per step (and per evaluation), keys in docs/metrics.md
    samples.jsonl     completions with their reward breakdown, every ``samples_every`` steps
    errors.jsonl      verifier crashes, with the problem id

Experiment trackers (``log.report_to``, :mod:`rlvr.trackers`) get the same
metrics and samples; their files also go in the run folder.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rlvr.trackers import Tracker

__all__ = ["NullLog", "RunLog", "read_metrics"]


class RunLog:
    """The run folder's JSON-lines files (appended to, so a resumed run continues them) and the live display.

    Args:
        run_dir: the run folder; the files are opened in it.
        total_steps: the progress bar's total.
        progress: show a live progress bar (with ``rich``); otherwise messages are printed.
        start_step: steps already done (a resumed run starts its bar there).
        trackers: experiment trackers (:func:`rlvr.trackers.open_trackers`) that get
            every metric and sample too; the run log closes them.
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        total_steps: int,
        progress: bool = True,
        start_step: int = 0,
        trackers: Sequence[Tracker] = (),
    ) -> None:
        self.run_dir = run_dir
        self.trackers = list(trackers)
        self.metrics_file = (run_dir / "metrics.jsonl").open("a")
        self.samples_file = (run_dir / "samples.jsonl").open("a")
        self.errors_file = (run_dir / "errors.jsonl").open("a")
        self.progress = None
        if progress:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[status]}"),
                transient=False,
            )
            self.task = self.progress.add_task("train", total=total_steps, completed=start_step, status="")
            self.progress.start()

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """Append ``step``'s metrics (non-finite floats as null) to metrics.jsonl and update the display."""
        record = {"step": step, "time": time.time(), **{k: _clean(v) for k, v in metrics.items()}}
        self.metrics_file.write(json.dumps(record) + "\n")
        self.metrics_file.flush()
        for tracker in self.trackers:
            tracker.log_metrics(step, metrics)
        if self.progress is not None and "reward_mean" in metrics:
            status = (
                f"reward {metrics.get('reward_mean', math.nan):.3f}  kl {metrics.get('kl_ref', math.nan):.4f}  "
                f"len {metrics.get('response_length', math.nan):.1f}  {metrics.get('time/step', math.nan):.1f}s/step"
            )
            self.progress.update(self.task, completed=step + 1, status=status)

    def message(self, text: str) -> None:
        """Print ``text`` above the progress bar, or plainly without one."""
        if self.progress is not None:
            self.progress.console.print(text)
        else:
            print(text, flush=True)

    def samples(self, step: int, rows: list[dict[str, Any]]) -> None:
        """Append ``step``'s sample rows (completions and their reward breakdown) to samples.jsonl."""
        for row in rows:
            self.samples_file.write(json.dumps({"step": step, **row}, default=str) + "\n")
        self.samples_file.flush()
        for tracker in self.trackers:
            tracker.log_samples(step, rows)

    def errors(self, step: int, rows: list[dict[str, Any]]) -> None:
        """Append verifier errors to errors.jsonl and show each one.

        Each row needs ``problem_id`` and ``error``.
        """
        for row in rows:
            self.errors_file.write(json.dumps({"step": step, **row}) + "\n")
            self.message(f"[yellow]step {step}: verifier error on problem {row['problem_id']}: {row['error']}")
        self.errors_file.flush()

    def close(self) -> None:
        """Stop the display, close the files and finish the trackers."""
        if self.progress is not None:
            self.progress.stop()
        for f in (self.metrics_file, self.samples_file, self.errors_file):
            f.close()
        for tracker in self.trackers:
            tracker.close()


class NullLog:
    """A :class:`RunLog` that writes and shows nothing: the log of a data-parallel rank other than 0."""

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """Nothing: rank 0 writes the metrics, reduced over ranks."""

    def message(self, text: str) -> None:
        """Nothing: rank 0 shows the messages."""

    def samples(self, step: int, rows: list[dict[str, Any]]) -> None:
        """Nothing: rank 0 writes its own samples."""

    def errors(self, step: int, rows: list[dict[str, Any]]) -> None:
        """Nothing: rank 0 writes every rank's errors."""

    def close(self) -> None:
        """Nothing to close."""


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The records of a run's metrics.jsonl, in order.

    Raises:
        FileNotFoundError: ``run_dir`` has no metrics.jsonl.
    """
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: is {run_dir} a run folder?")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
