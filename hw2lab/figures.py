"""Writing figures once: a PNG under the run's figures/ and the same picture in TensorBoard."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI; set before pyplot is imported anywhere
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from hw2lab.run_files import read_history  # noqa: E402


def tensorboard_writers(trainer) -> list:
    """The SummaryWriters of the trainer's TensorBoard loggers (none when logging is off)."""
    from lightning.pytorch.loggers import TensorBoardLogger

    if trainer is None:
        return []
    return [lg.experiment for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]


def save_figure(fig: plt.Figure, figures_dir: str | Path, name: str, trainer=None, step: int = 0) -> Path:
    """Save `fig` as figures_dir/name.png, add it to TensorBoard as image `name`, and close it."""
    path = Path(figures_dir) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    for writer in tensorboard_writers(trainer):
        writer.add_figure(name, fig, global_step=step, close=False)
    plt.close(fig)
    return path


def log_image(trainer, tag: str, image: torch.Tensor, step: int) -> None:
    """Add a CHW float image in [0, 1] to TensorBoard."""
    for writer in tensorboard_writers(trainer):
        writer.add_image(tag, image.clamp(0, 1).float().cpu(), global_step=step)


def save_image(image: torch.Tensor, figures_dir: str | Path, name: str) -> Path:
    """Save a CHW float image in [0, 1] as figures_dir/name.png at its native resolution."""
    from PIL import Image

    path = Path(figures_dir) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    array = (image.clamp(0, 1).float().cpu().numpy() * 255).round().astype(np.uint8)
    array = array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)
    Image.fromarray(array).save(path)
    return path


def plot_confusion_matrix(
    matrix: np.ndarray, class_names: list[str], title: str | None = None, axis: plt.Axes | None = None
) -> plt.Figure:
    """Counts (rows: true class, columns: predicted), coloured by the share of each true class.

    The title defaults to the accuracy and the number of examples; `axis` draws into an existing panel.
    """
    matrix = np.asarray(matrix)
    size = len(class_names)
    if axis is None:
        _, axis = plt.subplots(figsize=(1.6 + 0.6 * size, 1.2 + 0.5 * size))
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    fontsize = 7 if size > 6 else 9
    for row in range(size):
        for column in range(size):
            colour = "white" if shares[row, column] > 0.6 else "black"
            axis.text(
                column,
                row,
                str(int(matrix[row, column])),
                ha="center",
                va="center",
                fontsize=fontsize,
                color=colour,
            )
    axis.set_xticks(
        range(size),
        class_names,
        rotation=45 if size > 2 else 0,
        ha="right" if size > 2 else "center",
        fontsize=fontsize,
    )
    axis.set_yticks(range(size), class_names, fontsize=fontsize)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    if title is None:
        accuracy = np.trace(matrix) / max(int(matrix.sum()), 1)
        title = f"accuracy {accuracy:.3f} (n={int(matrix.sum())})"
    axis.set_title(title, fontsize=10)
    axis.figure.tight_layout()
    return axis.figure


def overlay_curves(axis: plt.Axes, jobs: list, metric: str, splits: tuple[str, ...] = ("val",)) -> None:
    """Each job's `<split>/<metric>` by epoch, read from its history.csv, in one panel: one colour per job
    (labelled by what sets it apart, with its test value when it has one), validation solid, training dashed."""
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, job in enumerate(jobs):
        history = Path(job.dir) / "history.csv"
        if not history.exists():
            continue
        rows = read_history(history)
        epochs = [r["epoch"] + 1 for r in rows]
        colour = colours[index % len(colours)]
        test = job.metrics.get(f"test/{metric}")
        label = job.label + (f" (test {test:.3g})" if isinstance(test, int | float) else "")
        for split in splits:
            values = [r.get(f"{split}/{metric}") for r in rows]
            if split == "val":
                axis.plot(epochs, values, "-o", ms=3, color=colour, label=label)
            else:
                axis.plot(epochs, values, "--", color=colour, alpha=0.8)
    shown = (
        " and ".join(f"{s} ({'solid' if s == 'val' else 'dashed'})" for s in splits)
        if len(splits) > 1
        else splits[0]
    )
    axis.set_title(f"{metric} by epoch: {shown}", fontsize=10)
    axis.set_xlabel("epoch")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)


def plot_validation_curves(
    jobs: list, metrics: list[str], sweep_dir: str | Path, name: str = "comparison"
) -> Path:
    """The sweep comparison most tasks draw: one panel per metric with every job's validation curve (see
    `overlay_curves`). Saved as sweep_dir/<name>.png (and to nothing else: a sweep has no TensorBoard run)."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.0 * len(metrics), 3.8), squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        overlay_curves(axis, jobs, metric)
    fig.tight_layout()
    return save_figure(fig, sweep_dir, name)
