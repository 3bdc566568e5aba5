"""A recurrent classifier (RNN, LSTM or GRU) that reads L days of new cases and predicts whether the
next day goes up: one logit per window, trained with BCE-with-logits."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import BinaryAccuracy, BinaryAUROC, BinaryF1Score

from datamodules.covid.windows import FEATURES
from hw2lab.errors import check
from hw2lab.training import RECURRENT_CELLS, TaskModule, eval_mode


class RecurrentClassifier(nn.Module):
    """(batch, L) new cases, or (batch, L, 1 + channels) with the data's `features` (names the datamodule
    has checked), -> (batch,) logits, from the last step's top-layer hidden state."""

    def __init__(
        self,
        cell: str = "lstm",
        hidden_size: int = 32,
        num_layers: int = 1,
        dropout: float = 0.0,
        features: list[str] | tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        check(cell in RECURRENT_CELLS, f"cell must be one of {tuple(RECURRENT_CELLS)}, got {cell!r}")
        check(hidden_size >= 1 and num_layers >= 1, "model.net hidden_size and num_layers must be >= 1")
        check(0 <= dropout < 1, f"model.net.dropout must be in [0, 1), got {dropout}")
        self.cell = cell
        # PyTorch applies dropout between stacked layers only, so one layer takes none.
        self.input_size = 1 + sum(FEATURES[name] for name in features or ())
        self.rnn = RECURRENT_CELLS[cell](
            self.input_size,
            hidden_size,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.rnn(windows.unsqueeze(-1) if windows.dim() == 2 else windows)
        return self.head(self.dropout(outputs[:, -1])).squeeze(-1)


def fit_logit_offset(logits: np.ndarray, labels: np.ndarray) -> float:
    """The offset b that minimises the BCE of sigmoid(logits + b) against 0/1 labels: the model's bias
    refitted to a later block's rate of rises (the mean of sigmoid(logits + b) equals the rate there;
    found by bisection, the mean being monotone in b). AUROC does not move. 0 for one-class labels."""
    logits, labels = np.asarray(logits, np.float64), np.asarray(labels, np.float64)
    if len(labels) == 0 or labels.min() == labels.max():
        return 0.0
    rate = labels.mean()
    low, high = -60.0, 60.0
    for _ in range(100):
        middle = (low + high) / 2
        if np.mean(1.0 / (1.0 + np.exp(-np.clip(logits + middle, -500, 500)))) < rate:
            low = middle
        else:
            high = middle
    return float((low + high) / 2)


def binary_metrics() -> MetricCollection:
    """Accuracy, F1 and AUROC of logits against 0/1 labels (torchmetrics applies the sigmoid)."""
    return MetricCollection({"acc": BinaryAccuracy(), "f1": BinaryF1Score(), "auroc": BinaryAUROC()})


class CovidModule(TaskModule):
    """Trains the classifier; logs loss, accuracy, F1 and AUROC per epoch for train, val and test.

    During fitting the validation loop also runs over the test windows (dataloader 1) so the learning
    curves show test by epoch as the course asked; the checkpoint is chosen on val only.

    With `recalibrate`, at test time (after the best checkpoint is loaded) the logits get an offset fitted
    on the validation windows (`fit_logit_offset`): the rate of rises moves with time, and val is the
    labelled block closest to test. It changes accuracy, F1 and Brier, not AUROC; `test/logit_offset`.

    `net`: a partial taking the data's `features` (see TaskModule), or a net built already.
    """

    def __init__(
        self,
        net: Callable[..., nn.Module] | nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        recalibrate: bool = False,
    ) -> None:
        super().__init__(optimizer, scheduler, net=net)
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"], logger=False)
        self.recalibrate = recalibrate
        self.register_buffer("logit_offset", torch.zeros(()), persistent=False)
        self.add_stage_metrics(binary_metrics)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.net(windows) + self.logit_offset

    def predict_proba(self, windows: torch.Tensor) -> torch.Tensor:
        """P(the next day goes up) for each window, in evaluation mode, on the module's device."""
        with eval_mode(self):
            return torch.sigmoid(self(windows.to(self.device)).float())

    def on_test_start(self) -> None:
        self.logit_offset.zero_()
        if not self.recalibrate:
            return
        windows, labels = self.trainer.datamodule.split_tensors["val"]
        with eval_mode(self):
            logits = self.net(windows.to(self.device)).float().cpu().numpy()
        self.logit_offset.fill_(fit_logit_offset(logits, labels.numpy()))

    def on_test_epoch_end(self) -> None:
        self.log_epoch("test", logit_offset=self.logit_offset.item())

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        windows, labels = batch
        logits = self(windows)
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        self.stage_metrics(stage).update(logits.detach(), labels.long())  # torchmetrics applies the sigmoid
        self.accumulate(stage, labels.shape[0], loss=loss)
        return loss

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self._step(batch, "val" if dataloader_idx == 0 else "test")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "test")

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        self.log_epoch("test")  # the test windows the validation loop also ran (dataloader 1)
