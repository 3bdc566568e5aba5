"""Timing the training steps from inside the Trainer, for benches that compare Lightning with a plain loop."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import lightning as L


class StepTimer(L.Callback):
    """Wall clock of the training steps only (validation, checkpoints and start-up are not in it): per epoch,
    from its start, or from the start of batch `warmup` while the first `warmup` batches are untimed, to the
    end of its last training batch. `count(batch)` adds up what the timed batches hold (characters, images).

    `epoch_seconds` has one entry per timed epoch, `seconds` is their sum and `counted` the count's total.
    """

    def __init__(self, warmup: int = 0, count: Callable[[Any], int] | None = None) -> None:
        self.warmup, self.count = warmup, count
        self.epoch_seconds: list[float] = []
        self.counted = 0
        self._batches = 0
        self._start: float | None = None
        self._last = 0.0

    @property
    def seconds(self) -> float:
        return sum(self.epoch_seconds)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter() if self._batches >= self.warmup else None

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._batches == self.warmup and self._start is None:
            self._start = time.perf_counter()
        if self._batches >= self.warmup and self.count is not None:
            self.counted += self.count(batch)
        self._batches += 1

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._last = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._start is not None:
            self.epoch_seconds.append(self._last - self._start)
        self._start = None
