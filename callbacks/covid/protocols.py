"""What the covid callbacks ask of the LightningModule and the datamodule: the callbacks read only what
`WindowClassifier` and `CovidData` declare, so a new model or data source need only provide these."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import lightning as L
import numpy as np
import pandas as pd
import torch

from hw2lab.errors import HW2LabError


@runtime_checkable
class WindowClassifier(Protocol):
    """What the callbacks ask of the LightningModule (lightning_modules.covid.CovidModule)."""

    def predict_proba(self, windows: torch.Tensor) -> torch.Tensor:
        """P(the next day goes up) per window (batch, L) -> (batch,), on any device."""
        ...


class CovidData(Protocol):
    """What the callbacks ask of the datamodule (datamodules.covid.CovidDataModule), after `setup`."""

    table: pd.DataFrame  # cumulative cases, country x day, over the date window
    correlation: pd.DataFrame  # country x country correlation of daily new cases
    countries: list[str]  # the set C the windows come from
    interval: int
    label_rule: str
    label_balance: dict[str, float]  # "<split>/positive_rate"
    split_tensors: dict[str, tuple[torch.Tensor, torch.Tensor]]  # windows (float32), labels per split

    def split_arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]: ...

    def split_recent(self, split: str) -> np.ndarray: ...

    def latest_windows(self) -> tuple[list[str], torch.Tensor]: ...


def classifier(pl_module: L.LightningModule) -> WindowClassifier:
    """The module as a `WindowClassifier`, or one error naming what it lacks."""
    if not isinstance(pl_module, WindowClassifier):
        raise HW2LabError(
            f"the covid callbacks need a module with predict_proba(windows); {type(pl_module).__name__} has none"
        )
    return pl_module
