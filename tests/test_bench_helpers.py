"""The helpers bench scripts share: the quiet config (hw2lab.compose.bench_config) and the step timer."""

from __future__ import annotations

import json
import sys

import lightning as L
import torch
from helpers import REPO_ROOT, compose_config, quiet_trainer
from torch.utils.data import DataLoader, TensorDataset

from hw2lab.compose import bench_config, write_bench_result
from hw2lab.step_timer import StepTimer


def test_bench_config_is_the_run_config_without_bar_summary_and_logger(tmp_path):
    plain = compose_config(["task=vae"], tmp_path)
    quiet = bench_config(["task=vae"], tmp_path)
    assert plain.logger and not quiet.logger
    assert quiet.trainer.enable_progress_bar is False and quiet.trainer.enable_model_summary is False
    assert quiet.model == plain.model and quiet.data == plain.data
    kept = bench_config(["task=vae"], tmp_path, logger=True)
    assert kept.logger == plain.logger and kept.trainer.enable_progress_bar is False
    assert bench_config(
        ["task=vae", "trainer.enable_progress_bar=true"], tmp_path
    ).trainer.enable_progress_bar


class Linear(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        (x,) = batch
        return self.net(x).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        (x,) = batch
        return self.net(x).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def loader(rows: int) -> DataLoader:
    return DataLoader(TensorDataset(torch.zeros(rows, 2)), batch_size=4)


def test_step_timer_times_every_epoch_and_counts_the_timed_batches_only():
    timer = StepTimer(
        warmup=3, count=lambda batch: len(batch[0])
    )  # 5 batches of 4 rows per epoch; the first 3 untimed
    trainer = quiet_trainer(max_epochs=2, callbacks=[timer])
    trainer.fit(Linear(), train_dataloaders=loader(20), val_dataloaders=loader(8))
    assert len(timer.epoch_seconds) == 2 and all(seconds > 0 for seconds in timer.epoch_seconds)
    assert timer.counted == (10 - 3) * 4
    assert timer.seconds == sum(timer.epoch_seconds)


def test_step_timer_stopped_by_max_steps_still_closes_its_epoch():
    timer = StepTimer(warmup=2, count=lambda batch: len(batch[0]))
    quiet_trainer(max_steps=4, limit_val_batches=0, callbacks=[timer]).fit(
        Linear(), train_dataloaders=loader(40)
    )
    assert len(timer.epoch_seconds) == 1 and timer.counted == 2 * 4


def test_a_bench_result_names_its_script_as_typed_in_the_clone_however_it_was_started(tmp_path, monkeypatch):
    """reproduce starts a bench by its absolute path; the record's command must read as a user types it."""
    monkeypatch.setattr(sys, "argv", [str(REPO_ROOT / "bench" / "food.py"), "--epochs", "1"])
    path = write_bench_result("food", {"rows": []}, tmp_path / "result.json")
    assert json.loads(path.read_text())["command"] == "python bench/food.py --epochs 1"
