"""COVID-19 confirmed cases as labelled windows of daily new cases, for the RNN / LSTM / GRU task.

`CovidDataModule` runs the pipeline: read a case file (`datamodules.covid.case_files`: JHU CSSE time
series or the course's Excel pivot) -> one cumulative series per country -> a date window -> daily
differences (new cases) -> the correlation of every pair of countries -> the set C of countries
correlated above `corr_threshold` with at least `min_partners` others -> every run of `interval`
consecutive differences of every country in C, labelled by the next day -> optional per-window
normalisation and duplicate removal -> a train/val/test split (by time with a gap of L days, rolling
origins; seeded random; or held-out countries) -> optional extra input channels per day (day of week,
per-country scale, the country's history beyond the window) -> tensors. Each step from the series on is
a plain function in `datamodules.covid.windows`, where the label rules are described.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from datamodules.covid.case_files import read_case_table
from datamodules.covid.windows import (
    FEATURES,
    LABEL_RULES,
    NORMALIZATIONS,
    SPLIT_NAMES,
    SPLITS,
    correlated_countries,
    correlation_matrix,
    daily_differences,
    first_case_day,
    first_occurrences,
    last_report_day,
    make_windows,
    normalize_windows,
    recent_days,
    select_dates,
    split_windows,
    window_features,
)
from datamodules.tensor_batches import InMemoryDataModule, TensorBatches
from hw2lab.data_files import require
from hw2lab.errors import HW2LabError, check

log = logging.getLogger("hw2lab")


class CovidDataModule(InMemoryDataModule):
    """Windows of daily new cases of the correlated countries, held in memory as tensors
    (`split_tensors`; `split_arrays` gives the same inputs in float64 for the classical baselines,
    `split_recent` the raw new cases of the 8 days before each labelled day for persistence and the
    seasonal naive forecast). Inputs are (N, L) without `features`, (N, L, 1 + channels) with them."""

    def __init__(
        self,
        data_dir: str,
        file: str,
        interval: int = 5,
        start_date: str | None = "2020-01-22",
        end_date: str | None = "2020-04-12",
        label_rule: str = "increase",
        normalize: str = "max",
        drop_duplicates: bool = False,
        corr_threshold: float = 0.5,
        min_partners: int = 1,
        split: str = "random",
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        origin: int = 0,
        features: list[str] | tuple[str, ...] = (),
        stale_days: int | None = None,
        from_first_case: bool = False,
        batch_size: int = 64,
        seed: int = 42,
        url: str | None = None,
        sha256: str | None = None,
        download: bool = False,
    ) -> None:
        super().__init__(batch_size, seed)
        check(
            isinstance(interval, int) and interval >= 1, f"interval must be an integer >= 1, got {interval!r}"
        )
        check(label_rule in LABEL_RULES, f"data.label_rule must be one of {LABEL_RULES}, got {label_rule!r}")
        check(
            normalize in NORMALIZATIONS, f"data.normalize must be one of {NORMALIZATIONS}, got {normalize!r}"
        )
        check(split in SPLITS, f"data.split must be one of {SPLITS}, got {split!r}")
        check(-1 <= corr_threshold < 1, f"data.corr_threshold must be in [-1, 1), got {corr_threshold}")
        check(min_partners >= 0, f"data.min_partners must be >= 0, got {min_partners}")
        check(isinstance(origin, int) and origin >= 0, f"data.origin must be an integer >= 0, got {origin!r}")
        features = list(features or [])
        unknown = [name for name in features if name not in FEATURES]
        check(not unknown, f"features must be among {tuple(FEATURES)}, got {unknown}")
        check(
            stale_days is None or stale_days >= 1, f"data.stale_days must be >= 1 or null, got {stale_days}"
        )
        for name, value in (("start_date", start_date), ("end_date", end_date)):
            if value is not None:
                try:
                    pd.Timestamp(str(value))
                except ValueError:
                    raise HW2LabError(
                        f"data.{name} must be an ISO date (YYYY-MM-DD) or null, got {value!r}"
                    ) from None
        self.data_dir, self.file, self.url, self.sha256, self.download = data_dir, file, url, sha256, download
        self.interval = interval
        self.start_date = str(start_date) if start_date is not None else None
        self.end_date = str(end_date) if end_date is not None else None
        self.label_rule, self.normalize, self.drop_duplicates = label_rule, normalize, drop_duplicates
        self.corr_threshold, self.min_partners = corr_threshold, min_partners
        self.split, self.val_fraction, self.test_fraction = split, val_fraction, test_fraction
        self.origin, self.features, self.stale_days = origin, features, stale_days
        self.from_first_case = from_first_case
        self.split_index: dict[str, np.ndarray] = {}
        self.label_balance: dict[str, float] = {}

    def net_inputs(self) -> dict[str, list[str]]:
        """What the net is built for: the input channels besides the new cases."""
        return {"features": list(self.features)}

    def inputs(self, diffs: np.ndarray, rows: np.ndarray, target_day: np.ndarray) -> np.ndarray:
        """The model's input for each (row, labelled day): the normalised window of the L days before
        it, and the `features` channels of those days when configured. float64."""
        steps = target_day[:, None] - self.interval + np.arange(self.interval)[None, :]
        windows = normalize_windows(diffs[rows[:, None], steps], self.normalize)
        if not self.features:
            return windows
        first_weekday = self.table.columns[1].weekday()  # day 0 of the differences
        extra = window_features(diffs, rows, target_day, self.interval, self.features, first_weekday)
        return np.concatenate([windows[..., None], extra], axis=-1)

    def setup(self, stage: str | None = None) -> None:
        if self.split_tensors:
            return
        path = require(self.data_dir, self.file, url=self.url, sha256=self.sha256, download=self.download)
        self.table = select_dates(read_case_table(path), self.start_date, self.end_date)
        self.diffs = daily_differences(self.table)
        self.correlation = correlation_matrix(self.diffs)
        self.countries = correlated_countries(self.correlation, self.corr_threshold, self.min_partners)
        check(
            bool(self.countries),
            f"no country has {self.min_partners} partners correlated above {self.corr_threshold} "
            f"(of {len(self.diffs)} countries, {self.start_date}..{self.end_date}); "
            "lower data.corr_threshold or data.min_partners",
        )
        diffs = self.diffs.loc[self.countries].to_numpy()
        _, labels, rows, target_day = make_windows(diffs, self.interval, self.label_rule)
        # Labels after a country stopped reporting are not observations: drop those windows; with
        # from_first_case, also the windows that end before the country's first new case.
        self.last_report = last_report_day(diffs, self.stale_days)
        reported = target_day <= self.last_report[rows]
        stale = int(np.sum(~reported))
        if self.from_first_case:
            reported &= target_day - 1 >= first_case_day(diffs)[rows]
        before = int(np.sum(~reported)) - stale
        labels, rows, target_day = labels[reported], rows[reported], target_day[reported]
        windows = self.inputs(diffs, rows, target_day)
        before_duplicates = len(windows)
        if self.drop_duplicates:
            keep = first_occurrences(windows.reshape(len(windows), -1))
            windows, labels, rows, target_day = windows[keep], labels[keep], rows[keep], target_day[keep]
        parts = split_windows(
            target_day,
            self.split,
            self.val_fraction,
            self.test_fraction,
            self.seed,
            gap=self.interval,
            origin=self.origin,
            row_index=rows,
        )
        self.windows, self.labels, self.split_index = windows, labels, parts
        self.recent = recent_days(diffs, rows, target_day)
        self.split_tensors = {
            name: (torch.tensor(windows[index], dtype=torch.float32), torch.tensor(labels[index]))
            for name, index in parts.items()
        }
        self.label_balance = {
            f"{name}/positive_rate": float(labels[parts[name]].mean()) for name in SPLIT_NAMES
        }
        dates = self.table.columns
        day_one = dates[1]  # day index 0 of the differences
        spans = {
            name: f"{(day_one + pd.Timedelta(days=int(target_day[index].min()))).date()}.."
            f"{(day_one + pd.Timedelta(days=int(target_day[index].max()))).date()}"
            for name, index in parts.items()
        }
        log.info(
            "covid: %s, %s..%s, %d countries, %d in C (corr > %g with >= %d partners); L=%d, %d windows"
            "%s%s; split %s%s train/val/test = %s (labelled days %s); label '%s' positive rate %s",
            Path(self.file).name,
            dates[0].date(),
            dates[-1].date(),
            len(self.diffs),
            len(self.countries),
            self.corr_threshold,
            self.min_partners,
            self.interval,
            len(windows),
            f" ({stale} after a country stopped reporting, {before} before its first case dropped)"
            if stale or before
            else "",
            f" ({before_duplicates - len(windows)} duplicates dropped)" if self.drop_duplicates else "",
            self.split,
            f" origin {self.origin}" if self.split == "time" else "",
            "/".join(str(len(parts[name])) for name in SPLIT_NAMES),
            " / ".join(spans[name] for name in SPLIT_NAMES),
            self.label_rule,
            "/".join(f"{self.label_balance[f'{name}/positive_rate']:.3f}" for name in SPLIT_NAMES),
        )

    def latest_windows(self) -> tuple[list[str], torch.Tensor]:
        """Every country of the file (not only C) with its last `interval` differences (and features),
        prepared as in training: the input for the prediction of the day after the last day."""
        diffs = self.diffs.to_numpy()
        rows = np.arange(len(diffs))
        tomorrow = np.full(len(diffs), diffs.shape[1])
        return list(self.diffs.index), torch.tensor(self.inputs(diffs, rows, tomorrow), dtype=torch.float32)

    def split_arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """One split's model inputs (float64, before the cast to the model's float32) and labels."""
        index = self.split_index[split]
        return self.windows[index], self.labels[index]

    def split_recent(self, split: str) -> np.ndarray:
        """One split's raw new cases of the 8 days before each labelled day (N, 8), oldest first."""
        return self.recent[self.split_index[split]]

    def val_dataloader(self) -> list[TensorBatches]:
        """The validation windows (checkpointing) and the test windows (the per-epoch test curves the
        course asks for; never used to pick a checkpoint)."""
        return [self.batches("val"), self.batches("test")]
