"""Char-LM outputs beyond the learning curves: text sampled from a prime every epoch, and a sweep's
comparison (validation BPC, window and streamed, against training minutes per job) with each job's last
sample as a section of the sweep's summary.md.

Samples are drawn with a generator seeded the same way every epoch, so the epochs' texts differ only by
what the model learnt; they go to figures/samples/epoch_<n>.txt and to TensorBoard text.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Protocol

import lightning as L
import matplotlib.pyplot as plt
import torch

from datamodules.charlm import Vocabulary
from hw2lab.errors import check
from hw2lab.figures import save_figure, tensorboard_writers
from hw2lab.run_files import read_history
from lightning_modules.charlm import check_sampling

FINAL_SAMPLE = "sample.txt"
# The argmax continuation written beside it when training ends: where a greedy loop repeats itself.
FINAL_GREEDY_SAMPLE = "sample_greedy.txt"
# Lines of each job's last sample shown in the sweep summary.
SUMMARY_SAMPLE_LINES = 6
# The anchor drawn on the window panel: nanoGPT's "baby GPT" (6 x 384, context 256), best validation loss
# 1.4697 nats per character after 5,000 iterations on one A100 (its README), on its window protocol.
NANOGPT_BABY_GPT_BPC = 1.4697 / math.log(2)


class TextModel(Protocol):
    """What the sampling callback asks of the LightningModule (CharLMModule, whatever its net: the module
    knows whether its net carries a state or reads a window)."""

    def sample(
        self,
        prime: str,
        length: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        greedy: bool = False,
        generator: torch.Generator | None = None,
        context: str = "",
    ) -> str: ...


class TextSource(Protocol):
    """What it asks of the datamodule (CharTextDataModule), once the text is read: the vocabulary (None
    before) and the training split as character ids (`splits["train"]`)."""

    vocabulary: Vocabulary | None
    splits: dict[str, torch.Tensor]


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

    def setup(self, trainer: L.Trainer, pl_module: TextModel, stage: str) -> None:
        # The datamodule has read the text by now: a prime it cannot encode fails before the first epoch.
        datamodule: TextSource = trainer.datamodule
        vocabulary = getattr(datamodule, "vocabulary", None)
        if vocabulary is None:
            return
        vocabulary.encode(self.prime, f"the prime {self.prime!r}")
        if self.context_length:
            tail = datamodule.splits["train"][-20 * self.context_length :]  # enough to hold a blank line
            self.context = paragraph_context(vocabulary.decode(tail), self.context_length)

    def sample(self, pl_module: TextModel, greedy: bool | None = None) -> str:
        generator = torch.Generator().manual_seed(self.seed)
        return pl_module.sample(
            self.prime,
            self.length,
            self.temperature,
            self.top_k,
            self.greedy if greedy is None else greedy,
            generator=generator,
            context=self.context,
        )

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: TextModel) -> None:
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

    def on_train_end(self, trainer: L.Trainer, pl_module: TextModel) -> None:
        if trainer.is_global_zero:
            self.figures_dir.mkdir(parents=True, exist_ok=True)
            (self.figures_dir / FINAL_SAMPLE).write_text(self.sample(pl_module) + "\n", encoding="utf-8")
            greedy = self.sample(pl_module, greedy=True)
            (self.figures_dir / FINAL_GREEDY_SAMPLE).write_text(greedy + "\n", encoding="utf-8")


def paragraph_context(text: str, length: int) -> str:
    """The last `length` characters of `text` up to and including its last blank line (or its end)."""
    cut = text.rfind("\n\n")
    end = cut + 2 if cut >= 0 else len(text)
    return text[max(0, end - length) : end]


def compare_models(jobs: list, sweep_dir: Path) -> Path:
    """The sweep's comparison.png: each job's validation BPC against its training minutes (`train/minutes`
    of history.csv, validation excluded), nanoGPT's windows on the left, the streamed score on the right.
    The final numbers are in the sweep's summary.md / summary.csv and each job's last sample in summary.md
    (`sample_lines`)."""
    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.0), sharey=True)
    panels = (
        ("val/window_bpc", "random windows from a fresh state (nanoGPT's protocol)"),
        ("val/bpc", "streamed"),
    )
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for axis, (metric, title) in zip(axes, panels):
        for index, job in enumerate(jobs):
            history = Path(job.dir) / "history.csv"
            rows = read_history(history) if history.exists() else []
            points = [
                (r["train/minutes"], r[metric]) for r in rows if not math.isnan(r.get(metric, math.nan))
            ]
            points = [(minutes, value) for minutes, value in points if not math.isnan(minutes)]
            if points:
                minutes, values = zip(*points)
                label = f"{job.label} ({values[-1]:.3f})"
                axis.plot(minutes, values, "-o", ms=3, color=colours[index % len(colours)], label=label)
        if metric == "val/window_bpc":
            axis.axhline(NANOGPT_BABY_GPT_BPC, ls=":", color="grey", label="nanoGPT baby GPT, A100")
        axis.set_title(f"{metric}: {title}", fontsize=10)
        axis.set_xlabel("training minutes (validation excluded)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    axes[0].set_ylabel("bits per character")
    fig.tight_layout()
    return save_figure(fig, sweep_dir, "comparison")


def sample_lines(jobs: list) -> list[str]:
    """summary.md's section with the first lines of each job's sample after training (figures/sample.txt)."""
    lines = ["", "## Samples after training", ""]
    for job in jobs:
        for name, kind in ((FINAL_SAMPLE, "sampled"), (FINAL_GREEDY_SAMPLE, "greedy")):
            sample = Path(job.dir) / "figures" / name
            text = sample.read_text(encoding="utf-8").splitlines() if sample.exists() else ["(no sample)"]
            lines += [f"`{job.label}`, {kind}:", "", "```", *text[:SUMMARY_SAMPLE_LINES], "```", ""]
    return lines
