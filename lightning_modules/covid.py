"""A recurrent classifier (RNN, LSTM or GRU) that reads L days of new cases and predicts whether the
next day goes up: one logit per window, trained with BCE-with-logits."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import BinaryAccuracy, BinaryAUROC, BinaryF1Score

from hw2lab.errors import check

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RecurrentClassifier(nn.Module):
    """(batch, L) new cases -> (batch,) logits, from the last step's top-layer hidden state."""

    def __init__(
        self, cell: str = "lstm", hidden_size: int = 32, num_layers: int = 1, dropout: float = 0.0
    ) -> None:
        super().__init__()
        check(cell in CELLS, f"cell must be one of {tuple(CELLS)}, got {cell!r}")
        check(hidden_size >= 1 and num_layers >= 1, "model.net hidden_size and num_layers must be >= 1")
        check(0 <= dropout < 1, f"model.net.dropout must be in [0, 1), got {dropout}")
        self.cell = cell
        # PyTorch applies dropout between stacked layers only, so one layer takes none.
        self.rnn = CELLS[cell](
            1,
            hidden_size,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.rnn(windows.unsqueeze(-1))
        return self.head(self.dropout(outputs[:, -1])).squeeze(-1)


def binary_metrics() -> MetricCollection:
    return MetricCollection({"acc": BinaryAccuracy(), "f1": BinaryF1Score(), "auroc": BinaryAUROC()})


class CovidModule(L.LightningModule):
    """Trains the classifier; logs loss, accuracy, F1 and AUROC per epoch for train, val and test.

    During fitting the validation loop also runs over the test windows (dataloader 1) so the learning
    curves show test by epoch as the course asked; the checkpoint is chosen on val only.
    """

    def __init__(self, net: nn.Module, lr: float = 1e-3, weight_decay: float = 0.0) -> None:
        super().__init__()
        check(lr > 0, f"model.lr must be > 0, got {lr}")
        check(weight_decay >= 0, f"model.weight_decay must be >= 0, got {weight_decay}")
        self.save_hyperparameters(ignore=["net"], logger=False)
        self.net = net
        # Not a ModuleDict keyed by split: "train" would clash with nn.Module.train.
        self.train_metrics, self.val_metrics, self.test_metrics = (
            binary_metrics(),
            binary_metrics(),
            binary_metrics(),
        )
        self._loss_sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.net(windows)

    @torch.no_grad()
    def predict_proba(self, windows: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(windows.to(self.device)).float())

    def _metrics(self, stage: str) -> MetricCollection:
        return {"train": self.train_metrics, "val": self.val_metrics, "test": self.test_metrics}[stage]

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        windows, labels = batch
        logits = self.net(windows)
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        self._metrics(stage).update(logits.detach(), labels.long())  # torchmetrics applies the sigmoid
        size = labels.shape[0]
        if stage in self._loss_sums:
            self._loss_sums[stage].add_(loss.detach(), alpha=size)
            self._counts[stage] += size
        else:
            self._loss_sums[stage], self._counts[stage] = loss.detach() * size, size
        return loss

    def _log_epoch(self, stage: str) -> None:
        if stage not in self._loss_sums:
            return
        values = {f"{stage}/loss": self._loss_sums.pop(stage) / self._counts.pop(stage)}
        metrics = self._metrics(stage)
        values.update({f"{stage}/{name}": value for name, value in metrics.compute().items()})
        metrics.reset()
        self.log_dict(values, sync_dist=True, add_dataloader_idx=False)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self._step(batch, "val" if dataloader_idx == 0 else "test")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "test")

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")
        self._log_epoch("test")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
