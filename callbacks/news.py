"""News figures and files: test predictions in Kaggle form with a confusion matrix, the last layer's
attention maps of a Transformer on fixed sentences, and the sweep comparison (accuracy per job).

The callbacks ask the module only what `NewsModel` declares."""

from __future__ import annotations

import csv
import logging
import math
import statistics
from pathlib import Path
from typing import Protocol

import lightning as L
import matplotlib.pyplot as plt
import numpy as np
import torch

from hw2lab.figures import plot_confusion_matrix, plot_validation_curves, save_figure, tensorboard_writers
from hw2lab.sweep import JobRecord, is_number, metric_order
from hw2lab.training import eval_mode

log = logging.getLogger("hw2lab")

DEFAULT_SENTENCES = ("Davenport hits out at Wimbledon", "Boeing unveils new 777 aircraft")


class NewsModel(Protocol):
    """What the news callbacks use of the LightningModule (lightning_modules.news.NewsClassifier)."""

    device: torch.device
    training: bool
    # The last test run's predicted class ids, one tensor per batch, in the test split's order.
    test_predictions: list[torch.Tensor]
    # Whether `attention_maps` can answer (a Transformer net).
    has_attention_maps: bool

    def test_confusion_matrix(self) -> np.ndarray:
        """The last test run's counts (rows: true class, columns: predicted)."""

    def predict_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int = 0) -> torch.Tensor:
        """Predicted class ids (B,) of a batch (inputs, lengths or mask, ignored labels)."""

    def eval(self) -> NewsModel: ...

    def train(self, mode: bool = True) -> NewsModel: ...

    def attention_maps(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(class probabilities (B, C), last layer's attention (B, heads, T, T)), in eval mode."""


class KagglePredictions(L.Callback):
    """After testing: `predictions.csv` (id, category) for the test split and `figures/confusion_matrix.png`."""

    def __init__(self, output_dir: str, figures_dir: str) -> None:
        self.output_dir = Path(output_dir)
        self.figures_dir = Path(figures_dir)

    def on_test_end(self, trainer: L.Trainer, pl_module: NewsModel) -> None:
        if not trainer.is_global_zero or not pl_module.test_predictions:
            return
        datamodule = trainer.datamodule
        predictions = torch.cat(pl_module.test_predictions).cpu().tolist()
        ids = datamodule.ids("test")
        if len(predictions) != len(ids):  # limit_test_batches cut the split short
            log.info(
                "predictions.csv covers %d of %d test articles (limited test batches)",
                len(predictions),
                len(ids),
            )
        # The batches may come in another order than the split's (the sub-word data sorts them by length).
        rows = datamodule.in_split_order("test", predictions)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        with open(self.output_dir / "predictions.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "category"])
            writer.writerows((ids[row], datamodule.classes[p]) for row, p in rows)
        matrix = pl_module.test_confusion_matrix()
        accuracy = np.trace(matrix) / max(matrix.sum(), 1)
        title = f"test confusion matrix (accuracy {accuracy:.3f}, n={int(matrix.sum())})"
        fig = plot_confusion_matrix(matrix, datamodule.classes, title=title)
        save_figure(fig, self.figures_dir, "confusion_matrix", trainer, step=trainer.current_epoch)


class KaggleSubmission(L.Callback):
    """With `data.predict_file` (an unlabelled CSV: an id column and the text, as Kaggle's test file):
    after testing, which the pipeline does with the best checkpoint's weights, the model predicts every row
    and the run writes `submission.csv` under the data's header (`submission_columns`: the sample
    solution's, `data.sample_submission`, else the file's id column and `Category`), one row per input row in
    the file's order, the ids as written and the training data's class names. A row with an empty text is
    predicted like any other; their count is logged and in metrics.json's notes (`predict`, from the data).
    Nothing happens without `data.predict_file` or when the run does not test (`test=false`)."""

    def __init__(self, output_dir: str, file_name: str = "submission.csv") -> None:
        self.output_dir = Path(output_dir)
        self.file_name = file_name
        self.run_notes: dict[str, object] = {}

    def on_test_end(self, trainer: L.Trainer, pl_module: NewsModel) -> None:
        datamodule = trainer.datamodule
        if not trainer.is_global_zero or not getattr(datamodule, "predict_file", None):
            return
        predictions = []
        with eval_mode(pl_module):
            for index, batch in enumerate(datamodule.predict_batches()):
                batch = tuple(t.to(pl_module.device) for t in batch)
                predictions.append(pl_module.predict_step(batch, index).cpu())
        classes = datamodule.classes
        # In the file's order (the sub-word data serves its rows sorted by length).
        rows = datamodule.in_split_order("predict", torch.cat(predictions).tolist(), whole=True)
        ids = datamodule.ids("predict")
        answers = [classes[p] for _, p in rows]
        self.output_dir.mkdir(parents=True, exist_ok=True)
        path = self.output_dir / self.file_name
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(datamodule.submission_columns)
            writer.writerows((ids[row], answer) for (row, _), answer in zip(rows, answers))
        empty = datamodule.run_notes.get("predict", {})
        counts = {name: answers.count(name) for name in classes}
        self.run_notes = {"submission": {"file": self.file_name, "rows": len(answers), "predicted": counts}}
        log.info(
            "%s: %d rows predicted from %s with the tested weights (%s)%s",
            path,
            len(answers),
            datamodule.predict_file,
            ", ".join(f"{name} {n}" for name, n in counts.items()),
            "".join(
                f"; {v} of them with an {k.replace('_', ' ')}"
                for k, v in empty.items()
                if k.startswith("empty")
            ),
        )


class AttentionMaps(L.Callback):
    """For each sentence, the last layer's attention (every head, and their mean) as labelled heatmaps with
    the predicted class: `figures/attention_<i>.png` and TensorBoard. Only for Transformer models."""

    def __init__(self, figures_dir: str, sentences: list[str] | None = None, every_n_epochs: int = 0) -> None:
        self.figures_dir = Path(figures_dir)
        self.sentences = list(sentences) if sentences is not None else list(DEFAULT_SENTENCES)
        self.every_n_epochs = every_n_epochs  # 0: only when training ends

    def _draw(self, trainer: L.Trainer, module: NewsModel, write_files: bool) -> None:
        if not module.has_attention_maps or not self.sentences:
            return
        datamodule = trainer.datamodule
        input_ids, mask = datamodule.encode(self.sentences)
        probabilities, attention = module.attention_maps(input_ids.to(module.device), mask.to(module.device))
        for index, sentence in enumerate(self.sentences):
            length = int(mask[index].sum())
            tokens = datamodule.hf_tokenizer.convert_ids_to_tokens(input_ids[index, :length].tolist())
            maps = attention[index, :, :length, :length].float().cpu().numpy()
            best = int(probabilities[index].argmax())
            label = f"{datamodule.classes[best]} ({probabilities[index, best].item():.2f})"
            fig = plot_attention(maps, tokens, f"{sentence!r} -> predicted {label}")
            name = f"attention_{index}"
            if write_files:
                save_figure(fig, self.figures_dir, name, trainer, step=trainer.current_epoch)
            else:
                for writer in tensorboard_writers(trainer):
                    writer.add_figure(name, fig, global_step=trainer.current_epoch)
                plt.close(fig)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: NewsModel) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or self.every_n_epochs <= 0:
            return
        if (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self._draw(trainer, pl_module, write_files=False)

    def on_train_end(self, trainer: L.Trainer, pl_module: NewsModel) -> None:
        if trainer.is_global_zero:
            self._draw(trainer, pl_module, write_files=True)


def plot_attention(maps: np.ndarray, tokens: list[str], title: str) -> plt.Figure:
    """maps: (heads, T, T), rows = querying token, columns = attended token. One panel per head plus the
    mean over heads, with the tokens on both axes."""
    heads = maps.shape[0]
    panels = heads + 1
    columns = min(panels, 5)
    rows = math.ceil(panels / columns)
    side = max(2.6, 0.28 * len(tokens) + 1.2)
    fig, axes = plt.subplots(rows, columns, figsize=(side * columns, side * rows), squeeze=False)
    for panel, axis in enumerate(axes.flat):
        if panel >= panels:
            axis.axis("off")
            continue
        image = maps.mean(0) if panel == 0 else maps[panel - 1]
        axis.imshow(image, cmap="viridis", vmin=0, vmax=max(image.max(), 1e-6))
        axis.set_title("mean of heads" if panel == 0 else f"head {panel}", fontsize=9)
        axis.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=7)
        axis.set_yticks(range(len(tokens)), tokens, fontsize=7)
    fig.suptitle(f"last-layer attention: {title}", fontsize=10)
    fig.tight_layout()
    return fig


def compare_news_sweep(jobs: list, sweep_dir: Path) -> Path:
    """Test and validation accuracy (and macro F1) per job as bars (`comparison.png`), and each job's
    validation accuracy by epoch (`comparison_curves.png`)."""
    plot_validation_curves(jobs, ["acc"], sweep_dir, name="comparison_curves")
    fig, bars = plt.subplots(figsize=(max(4.5, 0.8 * len(jobs) + 3), 4.2))
    labels = [job.label for job in jobs]
    positions = np.arange(len(jobs))
    width = 0.27
    for offset, key in zip((-width, 0, width), ("test/acc", "val/acc", "test/f1")):
        values = [job.metrics.get(key, math.nan) for job in jobs]
        drawn = bars.bar(positions + offset, values, width, label=key)
        bars.bar_label(drawn, fmt="%.3f", fontsize=7, rotation=90, padding=2)
    bars.set_xticks(positions, labels, rotation=20, ha="right", fontsize=8)
    bars.set_ylim(0, 1.1)
    bars.set_title("accuracy per job")
    bars.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return save_figure(fig, sweep_dir, "comparison")


# -- the sweep summary's cross-validation section (conf/task/news.yaml names it in `sweep_sections`)
FOLD_KEY = "data.fold"


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def cross_validation_groups(jobs: list[JobRecord]) -> dict[tuple[str, ...], list[JobRecord]]:
    """Finished jobs that differ only in `data.fold=k`, keyed by their other overrides (>= 2 folds each)."""
    groups: dict[tuple[str, ...], list[JobRecord]] = {}
    for job in jobs:
        if job.ok and any(_override_key(o) == FOLD_KEY for o in job.overrides):
            rest = tuple(o for o in job.overrides if _override_key(o) != FOLD_KEY)
            groups.setdefault(rest, []).append(job)
    return {rest: members for rest, members in groups.items() if len(members) >= 2}


def cross_validation_lines(jobs: list[JobRecord]) -> list[str]:
    """summary.md's section for K-fold sweeps: per configuration the mean (sd) of each metric over its folds,
    and the pooled test accuracy (every test example once) where the jobs noted their test-split sizes."""
    groups = cross_validation_groups(jobs)
    if not groups:
        return []
    shared = set.intersection(*(set(rest) for rest in groups))
    names = {key for members in groups.values() for job in members for key in job.metrics}
    keys = sorted((key for key in names if key.startswith(("test/", "val/"))), key=metric_order)
    header = ["configuration", "folds", "test examples", "test/acc pooled", *(f"{k} mean (sd)" for k in keys)]
    lines = [
        "",
        "## Cross-validation: each configuration over its folds",
        "",
        "Jobs that differ only in `data.fold`. The pooled accuracy counts every test example of the folds once "
        "(folds of one `data.folds` split are disjoint); mean (sd) is over the folds.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for rest, members in groups.items():
        label = " ".join(o for o in rest if o not in shared) or "all jobs"
        planned = members[0].hparams.get("data.folds")
        folds = f"{len(members)} of {planned}" if planned else str(len(members))
        sizes = [job.notes.get("split_sizes", {}).get("test") for job in members]
        accuracies = [job.metrics.get("test/acc") for job in members]
        total, pooled = "", ""
        if all(isinstance(n, int) and n > 0 for n in sizes):
            total = str(sum(sizes))
            if all(is_number(a) for a in accuracies):
                pooled = f"{sum(a * n for a, n in zip(accuracies, sizes)) / sum(sizes):.4f}"
        cells = [f"`{label}`", folds, total, pooled]
        for key in keys:
            values = [job.metrics[key] for job in members if is_number(job.metrics.get(key))]
            spread = f" ({statistics.stdev(values):.4f})" if len(values) >= 2 else ""
            cells.append(f"{statistics.mean(values):.4f}{spread}" if values else "")
        lines.append("| " + " | ".join(cells) + " |")
    return lines
