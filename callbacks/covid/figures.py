"""COVID figures of the data and the tested model: the correlation heatmap, the train and test confusion
matrices, and the reliability figure with the Brier score."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import matplotlib.pyplot as plt
import numpy as np
from torchmetrics.functional.classification import binary_confusion_matrix

from callbacks.covid.protocols import CovidData, classifier
from hw2lab.figures import plot_confusion_matrix, save_figure
from lightning_modules.covid.scores import probability_scores


class CorrelationHeatmap(L.Callback):
    """The correlation of daily new cases between the `top_n` most-cased countries (upper triangle
    masked), and the full matrix of all countries as correlation.csv in the run dir."""

    def __init__(self, output_dir: str, figures_dir: str, top_n: int = 30) -> None:
        self.output_dir, self.figures_dir, self.top_n = Path(output_dir), Path(figures_dir), max(2, top_n)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        import seaborn as sns

        datamodule: CovidData = trainer.datamodule
        corr = datamodule.correlation
        self.output_dir.mkdir(parents=True, exist_ok=True)
        corr.to_csv(self.output_dir / "correlation.csv", float_format="%.4f")
        top = datamodule.table.iloc[:, -1].sort_values(ascending=False).index[: self.top_n]
        shown = corr.loc[top, top]
        size = max(6.0, 0.32 * len(top))
        fig, axis = plt.subplots(figsize=(size + 1.5, size))
        mask = np.triu(np.ones_like(shown.to_numpy(), dtype=bool))
        sns.heatmap(
            shown, mask=mask, cmap="coolwarm", vmin=-1, vmax=1, square=True, ax=axis, cbar_kws={"shrink": 0.7}
        )
        dates = datamodule.table.columns
        axis.set_title(
            f"correlation of daily new cases, {len(top)} most-cased countries, "
            f"{dates[0].date()}..{dates[-1].date()}",
            fontsize=10,
        )
        save_figure(fig, self.figures_dir, "correlation_heatmap", trainer)


class ConfusionMatrices(L.Callback):
    """Train and test confusion matrices of the tested (best) model, side by side."""

    CLASS_NAMES = ["not up (0)", "up (1)"]

    def __init__(self, figures_dir: str) -> None:
        self.figures_dir = Path(figures_dir)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        model = classifier(pl_module)
        datamodule: CovidData = trainer.datamodule
        fig, axes = plt.subplots(1, 2, figsize=(9, 4))
        for axis, split in zip(axes, ("train", "test")):
            windows, labels = datamodule.split_tensors[split]
            probabilities = model.predict_proba(windows).cpu()
            matrix = binary_confusion_matrix(probabilities, labels.long()).numpy()
            accuracy = np.trace(matrix) / max(1, matrix.sum())
            title = f"{split}: accuracy {accuracy:.3f} ({matrix.sum()} windows)"
            plot_confusion_matrix(matrix, self.CLASS_NAMES, title=title, axis=axis)
        fig.tight_layout()
        save_figure(fig, self.figures_dir, "confusion_matrix", trainer)


class Reliability(L.Callback):
    """The tested model's probabilities on the test windows: `test/f1_neg` (F1 of class 0) and
    `test/brier` in the metrics, and `figures/reliability.png`: the observed rate of increases per bin
    of predicted probability against the diagonal, with how many windows fall in each bin."""

    def __init__(self, figures_dir: str | None = None, bins: int = 10) -> None:
        self.figures_dir = Path(figures_dir) if figures_dir else None
        self.bins = bins

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule: CovidData = trainer.datamodule
        windows, labels = datamodule.split_tensors["test"]
        probabilities = classifier(pl_module).predict_proba(windows).cpu().double().numpy()
        labels = labels.double().numpy()
        scores = probability_scores(probabilities, labels)
        pl_module.log_dict(
            {"test/f1_neg": scores["f1_neg"], "test/brier": scores["brier"]}, add_dataloader_idx=False
        )
        if self.figures_dir is None or not trainer.is_global_zero:
            return
        edges = np.linspace(0, 1, self.bins + 1)
        which = np.clip(np.digitize(probabilities, edges[1:-1]), 0, self.bins - 1)
        counts = np.bincount(which, minlength=self.bins)
        observed = np.bincount(which, weights=labels, minlength=self.bins) / np.maximum(counts, 1)
        predicted = np.bincount(which, weights=probabilities, minlength=self.bins) / np.maximum(counts, 1)
        fig, (axis, hist) = plt.subplots(
            2, 1, figsize=(5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
        )
        axis.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfectly calibrated")
        shown = counts > 0
        axis.plot(predicted[shown], observed[shown], "o-", label="model")
        axis.set_ylabel("observed rate of increases")
        axis.set_title(
            f"reliability on {len(labels)} test windows (Brier {scores['brier']:.3f})", fontsize=10
        )
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
        hist.bar((edges[:-1] + edges[1:]) / 2, counts, width=1 / self.bins, edgecolor="white")
        hist.set_xlabel("predicted P(increase)")
        hist.set_ylabel("windows")
        fig.tight_layout()
        save_figure(fig, self.figures_dir, "reliability", trainer)
