"""Test metrics beside the model's that tell a result apart from chance: the label balance and the size
of C, and the forecasters' baselines (`lightning_modules.covid.baselines`) on the same windows."""

from __future__ import annotations

import lightning as L

from callbacks.covid.protocols import CovidData
from lightning_modules.covid.baselines import fit_baselines


class DataReport(L.Callback):
    """Adds to the test metrics what tells a result apart from chance: the label balance of each split
    and the size of C."""

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule: CovidData = trainer.datamodule
        values = {**datamodule.label_balance, "test/countries": float(len(datamodule.countries))}
        pl_module.log_dict(values, add_dataloader_idx=False)


class Baselines(L.Callback):
    """The forecasters' baselines (`lightning_modules.covid.baselines.BASELINES`) fitted on the same
    train windows and scored on the same test windows as the recurrent model, logged with the test metrics:
    `test/acc_<name>`, `test/f1_<name>`, `test/f1_neg_<name>`, `test/auroc_<name>`, `test/brier_<name>`.
    With `recalibrate` (as the model's), logistic regression and the trees get their offset on val too."""

    def __init__(self, seed: int = 42, recalibrate: bool = False) -> None:
        self.seed, self.recalibrate = seed, recalibrate

    def scores(self, datamodule: CovidData) -> dict[str, float]:
        """The baselines' test scores on a datamodule that is set up."""
        return fit_baselines(
            *datamodule.split_arrays("train"),
            *datamodule.split_arrays("test"),
            seed=self.seed,
            test_recent=datamodule.split_recent("test"),
            label_rule=datamodule.label_rule,
            val=datamodule.split_arrays("val") if self.recalibrate else None,
        )

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pl_module.log_dict(self.scores(trainer.datamodule), add_dataloader_idx=False)
