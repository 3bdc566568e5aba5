"""VAE figures: reconstructions, samples from the prior, latent interpolations, and the λ-sweep comparison.

Each figure is computed on the module's device with fixed inputs (the first validation images, a seeded
set of prior draws), so figures are comparable across epochs and across the jobs of a sweep. TensorBoard
gets them every epoch; figures/ gets the final ones when training ends, and, with `every_n_epochs` set
(`callbacks.<figure>.every_n_epochs=5`), figures/epoch_NNN/<figure>.png every that many epochs (NNN counted
from 1), to show how they evolve.

The callbacks ask the module only what `VAEFigureModule` declares, and the datamodule only what
`ExampleImages` declares (lightning_modules.vae.VAEModule and datamodules.vae provide them).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Protocol

import lightning as L
import matplotlib.pyplot as plt
import torch
from torchvision.utils import make_grid

from hw2lab.errors import HW2LabError
from hw2lab.figures import log_image, plot_validation_curves, save_figure, save_image, tensorboard_writers
from hw2lab.training import eval_mode


class VAEFigureModule(Protocol):
    """What the figure callbacks use of the module; inputs and outputs live on `device`, images in [0, 1]."""

    @property
    def device(self) -> torch.device: ...

    @property
    def latent_dim(self) -> int: ...

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """Decoded means of the images' latent means, shaped like `images`."""
        ...

    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        """Decoded means of latent codes (N, latent_dim): (N, C, H, W)."""
        ...

    def interpolate(self, start: torch.Tensor, end: torch.Tensor, steps: int) -> torch.Tensor:
        """Decoded means along the line between the latent means of paired images: (pairs, steps, C, H, W)."""
        ...


class ExampleImages(Protocol):
    """What the figure callbacks use of the datamodule: fixed images, the same every call."""

    def examples(self, count: int, split: str = "val") -> torch.Tensor: ...


class _VAEFigure(L.Callback):
    name = "figure"

    def __init__(self, figures_dir: str, every_n_epochs: int | None = None) -> None:
        if every_n_epochs is not None and (not isinstance(every_n_epochs, int) or every_n_epochs < 1):
            raise HW2LabError(
                f"callbacks.{self.name}.every_n_epochs must be null or >= 1, got {every_n_epochs!r}"
            )
        self.figures_dir = Path(figures_dir)
        self.every_n_epochs = every_n_epochs

    def render(self, module: VAEFigureModule, data: ExampleImages) -> torch.Tensor:
        """Return one CHW image grid in [0, 1]."""
        raise NotImplementedError

    def _render_eval(self, trainer: L.Trainer, pl_module: L.LightningModule) -> torch.Tensor:
        with eval_mode(pl_module):
            return self.render(pl_module, trainer.datamodule)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        epoch = trainer.current_epoch + 1
        write_file = self.every_n_epochs is not None and epoch % self.every_n_epochs == 0
        if not write_file and not tensorboard_writers(trainer):
            return
        image = self._render_eval(trainer, pl_module)
        log_image(trainer, f"vae/{self.name}", image, trainer.current_epoch)
        if write_file:
            save_image(image, self.figures_dir / f"epoch_{epoch:03d}", self.name)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            save_image(self._render_eval(trainer, pl_module), self.figures_dir, self.name)


class Reconstructions(_VAEFigure):
    """Rows of real validation images, each followed by a row of their reconstructions."""

    name = "reconstructions"

    def __init__(
        self, figures_dir: str, num_images: int = 32, per_row: int = 16, every_n_epochs: int | None = None
    ) -> None:
        super().__init__(figures_dir, every_n_epochs)
        self.num_images, self.per_row = num_images, per_row

    def render(self, module: VAEFigureModule, data: ExampleImages) -> torch.Tensor:
        real = data.examples(self.num_images).to(module.device)
        recon = module.reconstruct(real)
        rows = []
        for start in range(0, len(real), self.per_row):
            rows += [real[start : start + self.per_row], recon[start : start + self.per_row]]
        return make_grid(torch.cat(rows), nrow=self.per_row, padding=2, pad_value=1.0)


class PriorSamples(_VAEFigure):
    """Decoded means of z ~ N(0, I), the same draws every time (seeded on the CPU, then moved)."""

    name = "prior_samples"

    def __init__(
        self, figures_dir: str, num_samples: int = 64, seed: int = 0, every_n_epochs: int | None = None
    ) -> None:
        super().__init__(figures_dir, every_n_epochs)
        self.num_samples, self.seed = num_samples, seed

    def render(self, module: VAEFigureModule, data: ExampleImages) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed)
        z = torch.randn(self.num_samples, module.latent_dim, generator=generator).to(module.device)
        samples = module.decode_mean(z)
        return make_grid(samples, nrow=int(math.sqrt(self.num_samples)), padding=2, pad_value=1.0)


def interpolation_rows(
    module: VAEFigureModule, start: torch.Tensor, end: torch.Tensor, steps: int
) -> torch.Tensor:
    """(pairs, steps + 2, C, H, W): each row the real start image, the `steps` decoded points of the
    straight line between the two latent means (its ends are the reconstructions), and the real end image."""
    path = module.interpolate(start, end, steps)
    return torch.cat([start.unsqueeze(1).to(path), path, end.unsqueeze(1).to(path)], dim=1)


class Interpolations(_VAEFigure):
    """One row per pair of validation images: the real first image, the decoded straight line between their
    latent means (endpoints included), the real second image."""

    name = "interpolations"

    def __init__(
        self, figures_dir: str, pairs: int = 8, steps: int = 10, every_n_epochs: int | None = None
    ) -> None:
        super().__init__(figures_dir, every_n_epochs)
        if steps < 2:
            raise ValueError("interpolation needs at least 2 steps (the endpoints)")
        self.pairs, self.steps = pairs, steps

    def render(self, module: VAEFigureModule, data: ExampleImages) -> torch.Tensor:
        images = data.examples(2 * self.pairs)
        if len(images) < 2:  # a validation split too small for one pair
            images = data.examples(2 * self.pairs, split="train")
        images = images.to(module.device)
        pairs = len(images) // 2
        rows = interpolation_rows(module, images[:pairs], images[pairs : 2 * pairs], self.steps)
        return make_grid(rows.flatten(0, 1), nrow=self.steps + 2, padding=2, pad_value=1.0)


def compare_kl_sweep(jobs: list, sweep_dir: Path) -> Path:
    """The figures of a λ sweep: comparison.png, a row per job (reconstructions, prior samples,
    interpolations, labelled with its test -ELBO), and comparison_curves.png, the validation curves of all
    jobs overlaid (hw2lab.figures.plot_validation_curves). Returns the path of comparison.png."""
    panels = [Reconstructions.name, PriorSamples.name, Interpolations.name]
    plot_validation_curves(jobs, ["neg_elbo", "recon", "kl"], sweep_dir, name="comparison_curves")
    fig, axes = plt.subplots(len(jobs), len(panels), figsize=(15, 3.2 * len(jobs)), squeeze=False)
    for row, job in enumerate(jobs):
        for column, panel in enumerate(panels):
            axis = axes[row, column]
            path = Path(job.dir) / "figures" / f"{panel}.png"
            if path.exists():
                axis.imshow(plt.imread(path), cmap="gray")
            axis.set_xticks([])
            axis.set_yticks([])
            if column == 0:
                test_elbo = job.metrics.get("test/neg_elbo")
                nll_iw = job.metrics.get("test/nll_iw")
                suffix = f"\ntest -ELBO {test_elbo:.1f}" if test_elbo is not None else ""
                suffix += f"\nIWAE NLL {nll_iw:.1f}" if nll_iw is not None else ""
                axis.set_ylabel(job.label + suffix, fontsize=9)
            if row == 0:
                axis.set_title(panel.replace("_", " "))
    fig.tight_layout()
    return save_figure(fig, sweep_dir, "comparison")
