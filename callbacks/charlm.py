"""Char-LM outputs beyond the learning curves: text sampled from a prime every epoch, and the cell sweep's
comparison (validation BPC by epoch per cell, a summary table, and each cell's last sample).

Samples are drawn with a generator seeded the same way every epoch, so the epochs' texts differ only by
what the model learnt; they go to figures/samples/epoch_<n>.txt and to TensorBoard text.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import lightning as L
import matplotlib.pyplot as plt
import torch
from matplotlib.ticker import MaxNLocator

from callbacks.learning_curves import read_history
from hw2lab.errors import check
from hw2lab.figures import save_figure, tensorboard_writers
from lightning_modules.charlm import check_sampling

FINAL_SAMPLE = "sample.txt"


class TextSamples(L.Callback):
    """Continue `prime` by `length` characters after every validation epoch and when training ends.

    The state is first warmed by reading `context_length` characters of the training text, ending at its
    last blank line (a speech boundary in a play), so the prime reads like the start of a new paragraph
    (see CharLMModule.sample for why).
    """

    def __init__(
        self,
        figures_dir: str,
        prime: str = "ROMEO",
        length: int = 400,
        temperature: float = 0.8,
        top_k: int | None = None,
        greedy: bool = False,
        seed: int = 0,
        context_length: int = 200,
        every_n_epochs: int = 1,
    ) -> None:
        check(bool(prime), "prime must not be empty")
        check(length >= 1, f"sample_length must be >= 1, got {length}")
        check(context_length >= 0, f"context_length must be >= 0, got {context_length}")
        check_sampling(temperature, top_k)
        self.figures_dir = Path(figures_dir)
        self.prime, self.length = str(prime), length
        self.temperature, self.top_k, self.greedy = temperature, top_k, greedy
        self.seed, self.context_length = seed, context_length
        self.context = ""
        self.every_n_epochs = max(1, every_n_epochs)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # The datamodule has read the text by now: a prime it cannot encode fails before the first epoch.
        datamodule = trainer.datamodule
        vocabulary = getattr(datamodule, "vocabulary", None)
        if vocabulary is None:
            return
        vocabulary.encode(self.prime, f"the prime {self.prime!r}")
        if self.context_length:
            tail = datamodule.splits["train"][-20 * self.context_length :]  # enough to hold a blank line
            self.context = paragraph_context(vocabulary.decode(tail), self.context_length)

    def sample(self, pl_module: L.LightningModule) -> str:
        generator = torch.Generator().manual_seed(self.seed)
        return pl_module.sample(
            self.prime,
            self.length,
            self.temperature,
            self.top_k,
            self.greedy,
            generator=generator,
            context=self.context,
        )

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        epoch = trainer.current_epoch
        if (epoch + 1) % self.every_n_epochs:
            return
        text = self.sample(pl_module)
        path = self.figures_dir / "samples" / f"epoch_{epoch + 1:03d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
        for writer in tensorboard_writers(trainer):
            # Markdown: indent by four spaces so line breaks and spacing survive.
            writer.add_text("charlm/sample", textwrap.indent(text, "    "), global_step=epoch)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self.figures_dir.mkdir(parents=True, exist_ok=True)
            (self.figures_dir / FINAL_SAMPLE).write_text(self.sample(pl_module) + "\n", encoding="utf-8")


def paragraph_context(text: str, length: int) -> str:
    """The last `length` characters of `text` up to and including its last blank line (or its end)."""
    cut = text.rfind("\n\n")
    end = cut + 2 if cut >= 0 else len(text)
    return text[max(0, end - length) : end]


def compare_cells(jobs: list, sweep_dir: Path) -> Path:
    """The cell sweep on one page: validation (and, dashed, training) BPC by epoch per job, a table of the
    final numbers, and the first lines of each job's last sample."""
    fig = plt.figure(figsize=(13, 4.2 + 1.6 * len(jobs)))
    grid = fig.add_gridspec(2, 2, height_ratios=[3, 0.4 + 1.2 * len(jobs)], width_ratios=[1.2, 1])

    curves = fig.add_subplot(grid[0, 0])
    for index, job in enumerate(jobs):
        history = job.dir / "history.csv"
        if not history.exists():
            continue
        rows = read_history(history)
        epochs = [row["epoch"] + 1 for row in rows]
        color = f"C{index}"
        curves.plot(
            epochs, [row.get("val/bpc", math.nan) for row in rows], "-o", color=color, label=job.label
        )
        curves.plot(epochs, [row.get("train/bpc", math.nan) for row in rows], "--", color=color, alpha=0.6)
    curves.set_title("validation BPC by epoch (dashed: training)")
    curves.set_xlabel("epoch")
    curves.xaxis.set_major_locator(MaxNLocator(integer=True))
    curves.set_ylabel("bits per character")
    curves.grid(alpha=0.3)
    curves.legend(fontsize=8)

    table_axis = fig.add_subplot(grid[0, 1])
    table_axis.axis("off")
    columns = ["job", "val bpc", "test bpc", "train bpc", "chars/s"]
    cells = [
        [
            job.label,
            _number(job.metrics.get("val/bpc")),
            _number(job.metrics.get("test/bpc")),
            _number(job.metrics.get("train/bpc")),
            _number(job.metrics.get("train/chars_per_s"), "{:.0f}"),
        ]
        for job in jobs
    ]
    table = table_axis.table(cellText=cells, colLabels=columns, loc="center", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.scale(1, 1.4)
    table_axis.set_title("last epoch (val), best checkpoint (test)")

    text_axis = fig.add_subplot(grid[1, :])
    text_axis.axis("off")
    blocks = []
    for job in jobs:
        sample = job.dir / "figures" / FINAL_SAMPLE
        lines = sample.read_text(encoding="utf-8").splitlines()[:6] if sample.exists() else ["(no sample)"]
        blocks.append(f"[{job.label}]\n" + "\n".join(line[:110] for line in lines))
    text_axis.text(0, 1, "\n\n".join(blocks), va="top", ha="left", family="monospace", fontsize=7.5)
    text_axis.set_title("samples after training", loc="left")
    fig.tight_layout()
    return save_figure(fig, sweep_dir, "comparison")


def _number(value: float | None, pattern: str = "{:.3f}") -> str:
    return "" if value is None else pattern.format(value)
