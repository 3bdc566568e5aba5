"""Writing figures once: a PNG under the run's figures/ and the same picture in TensorBoard."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI; set before pyplot is imported anywhere
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


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
