"""PNG plots of a run: reward, accuracy, KL, entropy and length against step (``rlvr plot RUN_DIR``)."""

from __future__ import annotations

from pathlib import Path

from rlvr.runlog import read_metrics

__all__ = ["PANELS", "plot_run"]

# (file name, title, metric keys drawn in that panel)
PANELS = [
    ("reward", "reward (train batch)", ["reward_mean"]),
    ("accuracy", "held-out greedy accuracy", ["eval/accuracy", "eval/format", "eval/answer/correct"]),
    ("kl", "KL to reference (k3, per token)", ["kl_ref"]),
    ("entropy", "policy entropy (per token)", ["entropy"]),
    ("length", "completion length (tokens)", ["response_length", "eval/response_length"]),
]


def plot_run(run_dir: str | Path) -> list[Path]:
    """Write ``plots/<panel>.png`` for every panel with data; return the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    records = read_metrics(run_dir)
    out_dir = run_dir / "plots"
    out_dir.mkdir(exist_ok=True)
    written = []
    for name, title, keys in PANELS:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        drawn = False
        for key in keys:
            points = [(r["step"], r[key]) for r in records if r.get(key) is not None]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o" if len(points) < 30 else None, label=key)
                drawn = True
        if drawn:
            ax.set_title(title)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
            fig.tight_layout()
            path = out_dir / f"{name}.png"
            fig.savefig(path, dpi=100)
            written.append(path)
        plt.close(fig)
    return written
