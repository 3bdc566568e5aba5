"""What a covid sweep adds to its summary: the model against the baselines per job in summary.md, and
the L x cell comparison figure."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from hw2lab.figures import save_figure
from lightning_modules.covid.baselines import BASELINES


def baseline_lines(jobs: list) -> list[str]:
    """summary.md's section: per job the model's test accuracy and AUROC beside every baseline's, and the
    margin over the best baseline of each (points)."""
    rows = [job for job in jobs if "test/acc" in job.metrics and "test/acc_majority" in job.metrics]
    if not rows:
        return []
    header = ["job", "overrides"]
    for score in ("acc", "auroc"):
        header += [f"{score} model", *(f"{score} {name}" for name in BASELINES), f"{score} − best (points)"]
    lines = [
        "",
        "## The model against the baselines (same test windows)",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for job in rows:
        cells = [str(job.number), f"`{job.label}`"]
        for score in ("acc", "auroc"):
            baselines = [job.metrics.get(f"test/{score}_{name}") for name in BASELINES]
            model = job.metrics.get(f"test/{score}")
            best = max((value for value in baselines if value is not None), default=None)
            cells += [f"{model:.3f}" if model is not None else ""]
            cells += [f"{value:.3f}" if value is not None else "" for value in baselines]
            cells += [f"{100 * (model - best):+.2f}" if model is not None and best is not None else ""]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def compare_interval_cell(jobs: list, sweep_dir: Path) -> Path:
    """Test accuracy and F1 by interval L (x) and cell (bars), with the majority and logistic-regression
    baselines of each L as markers; jobs with the same L and cell (e.g. seeds) are averaged."""
    table: dict[tuple[int, str], list[dict[str, float]]] = {}
    for job in jobs:
        key = (int(job.hparams.get("data.interval", 0)), str(job.hparams.get("model.net.cell", "?")))
        table.setdefault(key, []).append(job.metrics)
    intervals = sorted({key[0] for key in table})
    order = ["rnn", "lstm", "gru"]
    cells = sorted(
        {key[1] for key in table}, key=lambda cell: (order.index(cell) if cell in order else 9, cell)
    )
    width = 0.8 / max(1, len(cells))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for axis, metric in zip(axes, ("acc", "f1")):
        for i, cell in enumerate(cells):
            xs, ys = [], []
            for j, interval in enumerate(intervals):
                runs = table.get((interval, cell), [])
                values = [m[f"test/{metric}"] for m in runs if f"test/{metric}" in m]
                if values:
                    xs.append(j + (i - (len(cells) - 1) / 2) * width)
                    ys.append(float(np.mean(values)))
            bars = axis.bar(xs, ys, width, label=cell)
            axis.bar_label(bars, fmt="%.3f", fontsize=7)
        shown = [bar.get_height() for container in axis.containers for bar in container]
        for name, style in (("majority", "k--"), ("logreg", "r-")):
            for position, interval in enumerate(intervals):
                values = [
                    m[f"test/{metric}_{name}"]
                    for (i, _), runs in table.items()
                    if i == interval
                    for m in runs
                ]
                if values:
                    level = float(np.mean(values))
                    shown.append(level)
                    label = name if position == 0 else None
                    axis.plot(
                        [position - 0.45, position + 0.45], [level, level], style, linewidth=2, label=label
                    )
        if metric == "acc" and shown:  # accuracies sit close together: zoom in
            axis.set_ylim(max(0.0, min(shown) - 0.05), min(1.0, max(shown) + 0.03))
        axis.set_xticks(range(len(intervals)), [f"L={interval}" for interval in intervals])
        axis.set_title(f"test {metric} by interval and cell")
        axis.grid(alpha=0.3, axis="y")
        axis.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, sweep_dir, "comparison")
