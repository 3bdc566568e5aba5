"""Per-epoch bookkeeping every task shares: one-line epoch summaries, history.csv and the learning curves.

Lightning calls a callback's `on_train_epoch_end` *before* the module's own, so metrics a module logs
there (epoch aggregates of its training steps) are not yet visible. These callbacks therefore act when an
epoch is closed: at the start of the next one, at the end of training, or when `last.ckpt` is written at the
epoch's end (after the module's hook), so that the checkpoint a run continues from holds the closed epoch.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import lightning as L
import matplotlib.pyplot as plt

from hw2lab.figures import save_figure
from hw2lab.run_files import write_history

log = logging.getLogger("hw2lab")


class _ClosedEpochCallback(L.Callback):
    """Calls `on_epoch_closed(trainer, epoch, metrics)` once per finished epoch, with all its metrics."""

    def __init__(self) -> None:
        self._last_closed = -1

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close_previous(trainer, trainer.current_epoch - 1)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # After the last epoch Lightning has already advanced current_epoch past it.
        self._close_previous(trainer, trainer.current_epoch - 1)
        self.on_training_finished(trainer)

    def _close_previous(self, trainer: L.Trainer, epoch: int) -> None:
        if epoch <= self._last_closed or epoch < 0 or trainer.sanity_checking:
            return
        self._last_closed = epoch
        metrics = {key: float(value) for key, value in trainer.callback_metrics.items() if value.numel() == 1}
        self.on_epoch_closed(trainer, epoch, metrics)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        # Saved at an epoch's end (processed, not yet completed), the checkpoint is the one a run continues
        # from; close that epoch first, or a stop right after (SIGTERM is raised there) loses its metrics.
        progress = trainer.fit_loop.epoch_progress.current
        if progress.processed > progress.completed:
            self._close_previous(trainer, trainer.current_epoch)
            checkpoint["callbacks"][self.state_key] = self.state_dict()

    def on_epoch_closed(self, trainer: L.Trainer, epoch: int, metrics: dict[str, float]) -> None:
        raise NotImplementedError

    def on_training_finished(self, trainer: L.Trainer) -> None:
        """Hook for subclasses; called once after the last epoch was closed."""

    def state_dict(self) -> dict:
        return {"last_closed": self._last_closed}

    def load_state_dict(self, state_dict: dict) -> None:
        self._last_closed = state_dict.get("last_closed", -1)


class EpochSummary(_ClosedEpochCallback):
    """One readable log line per epoch, so non-interactive logs (CI, SLURM) show progress."""

    def __init__(self, keys: list[str] | None = None) -> None:
        super().__init__()
        self.keys = keys
        self._started = time.perf_counter()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        self._started = time.perf_counter()

    def on_epoch_closed(self, trainer: L.Trainer, epoch: int, metrics: dict[str, float]) -> None:
        if not trainer.is_global_zero:
            return
        keys = self.keys or sorted(k for k in metrics if k.startswith(("train/", "val/")))
        shown = "  ".join(f"{k} {metrics[k]:.4g}" for k in keys if k in metrics)
        elapsed = time.perf_counter() - self._started
        log.info("epoch %d/%d  %s  (%.1fs)", epoch + 1, trainer.max_epochs, shown, elapsed)


class LearningCurves(_ClosedEpochCallback):
    """Keeps every epoch's metrics in history.csv and draws train/val curves per metric.

    `metrics` are names without the split prefix (e.g. `neg_elbo`); each gets a panel with its
    `train/`, `val/` (and, if logged, `test/`) values by epoch.
    """

    def __init__(self, output_dir: str, metrics: list[str], figures_dir: str | None = None) -> None:
        super().__init__()
        self.output_dir = Path(output_dir)
        self.figures_dir = Path(figures_dir) if figures_dir else self.output_dir / "figures"
        self.metrics = list(metrics)
        self.rows: list[dict[str, float]] = []

    def on_epoch_closed(self, trainer: L.Trainer, epoch: int, metrics: dict[str, float]) -> None:
        self.rows.append({"epoch": epoch, **metrics})
        if trainer.is_global_zero:
            write_history(self.rows, self.output_dir / "history.csv")

    def on_training_finished(self, trainer: L.Trainer) -> None:
        if trainer.is_global_zero and self.rows:
            fig = plot_learning_curves(self.rows, self.metrics)
            save_figure(fig, self.figures_dir, "learning_curves", trainer, step=trainer.current_epoch)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "rows": self.rows}

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self.rows = list(state_dict.get("rows", []))


def plot_learning_curves(rows: list[dict[str, float]], metrics: list[str]) -> plt.Figure:
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    epochs = [row["epoch"] + 1 for row in rows]
    for axis, metric in zip(axes[0], metrics):
        for split, style in (("train", "-o"), ("val", "-s"), ("test", "-^")):
            key = f"{split}/{metric}"
            values = [row.get(key, math.nan) for row in rows]
            if any(not math.isnan(v) for v in values):
                axis.plot(epochs, values, style, markersize=3, label=split)
        axis.set_title(metric)
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        axis.legend()
    fig.tight_layout()
    return fig
