"""VAE figures: reconstructions, samples from the prior, latent interpolations, and the λ-sweep comparison.

Each figure is computed on the module's device with fixed inputs (the first validation images, a seeded
set of prior draws), so figures are comparable across epochs and across the jobs of a sweep. TensorBoard
gets them every `every_n_epochs`; figures/ gets the final ones when training ends.
"""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import matplotlib.pyplot as plt
import torch
from torchvision.utils import make_grid

from callbacks.learning_curves import read_history
from hw2lab.figures import log_image, save_figure, save_image


class _VAEFigure(L.Callback):
    name = "figure"

    def __init__(self, figures_dir: str, every_n_epochs: int = 1) -> None:
        self.figures_dir = Path(figures_dir)
        self.every_n_epochs = max(1, every_n_epochs)

    def render(self, trainer: L.Trainer, module: L.LightningModule) -> torch.Tensor:
        """Return one CHW image grid in [0, 1]."""
        raise NotImplementedError

    def _render_eval(self, trainer: L.Trainer, module: L.LightningModule) -> torch.Tensor:
        was_training = module.training
        module.eval()
        try:
            return self.render(trainer, module)
        finally:
            module.train(was_training)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        if (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            log_image(
                trainer, f"vae/{self.name}", self._render_eval(trainer, pl_module), trainer.current_epoch
            )

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            save_image(self._render_eval(trainer, pl_module), self.figures_dir, self.name)


class Reconstructions(_VAEFigure):
    """Rows of real validation images, each followed by a row of their reconstructions."""

    name = "reconstructions"

    def __init__(
        self, figures_dir: str, num_images: int = 32, per_row: int = 16, every_n_epochs: int = 1
    ) -> None:
        super().__init__(figures_dir, every_n_epochs)
        self.num_images, self.per_row = num_images, per_row

    def render(self, trainer: L.Trainer, module: L.LightningModule) -> torch.Tensor:
        real = trainer.datamodule.examples(self.num_images).to(module.device)
        recon = module.reconstruct(real)
        rows = []
        for start in range(0, len(real), self.per_row):
            rows += [real[start : start + self.per_row], recon[start : start + self.per_row]]
        return make_grid(torch.cat(rows), nrow=self.per_row, padding=2, pad_value=1.0)


class PriorSamples(_VAEFigure):
    """Decoded means of z ~ N(0, I), the same draws every time (seeded on the CPU, then moved)."""

    name = "prior_samples"

    def __init__(
        self, figures_dir: str, num_samples: int = 64, seed: int = 0, every_n_epochs: int = 1
    ) -> None:
        super().__init__(figures_dir, every_n_epochs)
        self.num_samples, self.seed = num_samples, seed

    def render(self, trainer: L.Trainer, module: L.LightningModule) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed)
        z = torch.randn(self.num_samples, module.net.latent_dim, generator=generator).to(module.device)
        samples = module.decode_mean(z)
        return make_grid(samples, nrow=int(math.sqrt(self.num_samples)), padding=2, pad_value=1.0)


class Interpolations(_VAEFigure):
    """One row per pair of validation images: the decoded straight line between their latent means,
    endpoints included."""

    name = "interpolations"

    def __init__(self, figures_dir: str, pairs: int = 8, steps: int = 10, every_n_epochs: int = 1) -> None:
        super().__init__(figures_dir, every_n_epochs)
        if steps < 2:
            raise ValueError("interpolation needs at least 2 steps (the endpoints)")
        self.pairs, self.steps = pairs, steps

    def render(self, trainer: L.Trainer, module: L.LightningModule) -> torch.Tensor:
        images = trainer.datamodule.examples(2 * self.pairs).to(module.device)
        pairs = len(images) // 2
        path = module.interpolate(images[:pairs], images[pairs : 2 * pairs], self.steps)
        return make_grid(path.flatten(0, 1), nrow=self.steps, padding=2, pad_value=1.0)


def compare_kl_sweep(jobs: list, sweep_dir: Path) -> Path:
    """One figure for a λ sweep: a row per job (reconstructions, prior samples, interpolations) and, below,
    the validation curves of all jobs overlaid."""
    panels = [Reconstructions.name, PriorSamples.name, Interpolations.name]
    curves = ["neg_elbo", "recon", "kl"]
    fig = plt.figure(figsize=(15, 3.2 * (len(jobs) + 1)))
    grid = fig.add_gridspec(len(jobs) + 1, len(panels))
    for row, job in enumerate(jobs):
        for column, panel in enumerate(panels):
            axis = fig.add_subplot(grid[row, column])
            path = job.dir / "figures" / f"{panel}.png"
            if path.exists():
                axis.imshow(plt.imread(path), cmap="gray")
            axis.set_xticks([])
            axis.set_yticks([])
            if column == 0:
                test_elbo = job.metrics.get("test/neg_elbo")
                suffix = f"\ntest -ELBO {test_elbo:.1f}" if test_elbo is not None else ""
                axis.set_ylabel(job.label + suffix, fontsize=9)
            if row == 0:
                axis.set_title(panel.replace("_", " "))
    for column, metric in enumerate(curves):
        axis = fig.add_subplot(grid[len(jobs), column])
        for job in jobs:
            history = job.dir / "history.csv"
            if history.exists():
                rows = read_history(history)
                axis.plot(
                    [r["epoch"] + 1 for r in rows],
                    [r.get(f"val/{metric}") for r in rows],
                    "-o",
                    ms=3,
                    label=job.label,
                )
        axis.set_title(f"val {metric} by epoch")
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, sweep_dir, "comparison")
