"""COVID-19 confirmed cases as labelled windows of daily new cases, for the RNN / LSTM / GRU task.

The pipeline, each step a plain function so tests can check it on hand-made series:
read a case file (JHU CSSE time series or the course's Excel pivot) -> one cumulative series per country
-> a date window -> daily differences (new cases) -> the correlation of every pair of countries -> the set C
of countries correlated above `corr_threshold` with at least `min_partners` others -> every run of
`interval` consecutive differences of every country in C, labelled by the next day -> optional per-window
normalisation and duplicate removal -> a train/val/test split (seeded random, or by time) -> tensors.

Label rules (`label_rule`):
- `increase`: 1 if the next day's new cases exceed the last day's of the window (the course's "goes up").
- `new_cases`: 1 if the next day has any new cases at all.
"""

from __future__ import annotations

import csv
import logging
import math
import re
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from datamodules.tensor_batches import InMemoryDataModule, TensorBatches
from hw2lab.data_files import require
from hw2lab.errors import HW2LabError, check

log = logging.getLogger("hw2lab")

LABEL_RULES = ("increase", "new_cases")
NORMALIZATIONS = ("none", "max", "zscore", "log1p")
SPLITS = ("random", "time")
SPLIT_NAMES = ("train", "val", "test")

JHU_HEADER = "Province/State,Country/Region,Lat,Long,1/22/20,..."
COURSE_HEADER = "',Lat,Long,<dates>', then a ',sum,sum,...' row and a 'Country/Region' row"


# ----------------------------------------------------------------------------------------------- reading
def read_case_table(path: str | Path) -> pd.DataFrame:
    """Cumulative confirmed cases, one row per country (provinces summed), one column per day (dates).

    Recognises the JHU CSSE global time series and the course's covid_19.csv pivot by their headers;
    anything else is an error that names both expected layouts.
    """
    path = Path(path)
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    check(len(rows) >= 2, f"{path}: empty or header-only file; expected a COVID case table")
    header = [cell.strip() for cell in rows[0]]
    if header[:3] == ["", "Lat", "Long"] and len(rows) > 3 and rows[2][:1] == ["Country/Region"]:
        return _course_table(path, header, rows[3:])
    if "Country/Region" in header:
        return _jhu_table(path, header, rows[1:])
    found = ",".join(header[:5])
    missing = " (it has no Country/Region column)" if any(_parse_date(h) for h in header) else ""
    raise HW2LabError(
        f"{path}: not a recognised COVID case file{missing}: expected the JHU CSSE time series "
        f"(header {JHU_HEADER}) or the course's covid_19.csv pivot ({COURSE_HEADER}); "
        f"the header starts {found!r}"
    )


def _jhu_table(path: Path, header: list[str], rows: list[list[str]]) -> pd.DataFrame:
    country_column = header.index("Country/Region")
    date_columns = [i for i, name in enumerate(header) if i > country_column and _parse_date(name)]
    check(bool(date_columns), f"{path}: no date columns (m/d/yy) after Country/Region")
    dates = _consecutive_dates(path, [header[i] for i in date_columns])
    countries = [row[country_column].strip() if len(row) > country_column else "" for row in rows]
    counts = _counts(path, rows, countries, date_columns, [header[i] for i in date_columns])
    table = pd.DataFrame(counts, index=countries, columns=dates)
    return table.groupby(level=0, sort=True).sum()


def _course_table(path: Path, header: list[str], rows: list[list[str]]) -> pd.DataFrame:
    date_columns = list(range(3, len(header)))
    check(bool(date_columns), f"{path}: the course pivot has no date columns after Lat,Long")
    dates = _consecutive_dates(path, [header[i] for i in date_columns])
    countries = [row[0].strip() if row else "" for row in rows]
    counts = _counts(path, rows, countries, date_columns, [header[i] for i in date_columns])
    table = pd.DataFrame(counts, index=countries, columns=dates)
    return table.groupby(level=0, sort=True).sum()


def _counts(
    path: Path, rows: list[list[str]], countries: list[str], columns: list[int], labels: list[str]
) -> np.ndarray:
    """The count cells as int64, or one error naming the first cell that is not a whole number."""
    out = np.zeros((len(rows), len(columns)), dtype=np.int64)
    for r, row in enumerate(rows):
        check(bool(countries[r]), f"{path}: data row {r + 2} has an empty country name")
        check(
            len(row) >= columns[-1] + 1, f"{path}: row {countries[r]!r} has {len(row)} cells, expected more"
        )
        for c, column in enumerate(columns):
            cell = row[column].strip()
            try:
                value = float(cell)
            except ValueError:
                value = math.nan
            if not math.isfinite(value) or value != int(value):
                raise HW2LabError(
                    f"{path}: non-numeric count {cell!r} for {countries[r]!r} on {labels[c]}; "
                    "case counts must be whole numbers"
                )
            out[r, c] = int(value)
    return out


def _parse_date(text: str) -> date | None:
    """m/d/yy as JHU writes it, or Excel's mangled 200m/d/yy (e.g. '2002/1/20' is 2/1/20)."""
    match = re.fullmatch(r"(\d{1,4})/(\d{1,2})/(\d{2})", text.strip())
    if not match:
        return None
    month, day, year = (int(g) for g in match.groups())
    if 2001 <= month <= 2012:
        month -= 2000
    try:
        return date(2000 + year, month, day)
    except ValueError:
        return None


def _consecutive_dates(path: Path, labels: list[str]) -> pd.DatetimeIndex:
    dates = [_parse_date(label) for label in labels]
    bad = [label for label, parsed in zip(labels, dates) if parsed is None]
    check(not bad, f"{path}: date column {bad[0] if bad else ''!r} is not a date (m/d/yy)")
    for previous, current in zip(dates, dates[1:]):
        check(
            current == previous + timedelta(days=1),
            f"{path}: date columns must be consecutive days; {current} follows {previous}",
        )
    return pd.DatetimeIndex(dates)


# ------------------------------------------------------------------------------------ series and windows
def select_dates(table: pd.DataFrame, start: str | None, end: str | None) -> pd.DataFrame:
    """The columns from `start` to `end` inclusive (ISO dates); None keeps that end of the series."""
    first, last = table.columns[0].date(), table.columns[-1].date()
    lo = pd.Timestamp(start) if start else table.columns[0]
    hi = pd.Timestamp(end) if end else table.columns[-1]
    check(lo <= hi, f"data.start_date {lo.date()} is after data.end_date {hi.date()}")
    check(
        lo >= table.columns[0] and hi <= table.columns[-1],
        f"date window {lo.date()}..{hi.date()} is outside the file's {first}..{last}",
    )
    return table.loc[:, lo:hi]


def daily_differences(table: pd.DataFrame) -> pd.DataFrame:
    """New cases per day: day t minus day t-1 (one column fewer; corrections can make it negative)."""
    return table.diff(axis=1).iloc[:, 1:].astype(np.float64)


def correlation_matrix(diffs: pd.DataFrame) -> pd.DataFrame:
    """Pearson correlation of every pair of countries' daily differences; a constant series correlates 0."""
    values = diffs.to_numpy(np.float64)
    centred = values - values.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=1)
    safe = np.where(norms > 0, norms, 1.0)
    unit = centred / safe[:, None]
    corr = unit @ unit.T
    corr[norms == 0, :] = 0.0
    corr[:, norms == 0] = 0.0
    np.fill_diagonal(corr, 1.0)
    return pd.DataFrame(np.clip(corr, -1, 1), index=diffs.index, columns=diffs.index)


def correlated_countries(corr: pd.DataFrame, threshold: float, min_partners: int) -> list[str]:
    """C: countries with at least `min_partners` other countries correlated above `threshold`."""
    above = corr.to_numpy() > threshold
    np.fill_diagonal(above, False)
    partners = above.sum(axis=1)
    return [name for name, count in zip(corr.index, partners) if count >= min_partners]


def make_windows(diffs: np.ndarray, interval: int, label_rule: str) -> tuple[np.ndarray, ...]:
    """Every run of `interval` consecutive differences of every row, labelled by the next day.

    Returns windows (N, interval), labels (N,), row index (N,) and the day index of the labelled day
    (N,), country-major then by time.
    """
    check(label_rule in LABEL_RULES, f"data.label_rule must be one of {LABEL_RULES}, got {label_rule!r}")
    rows, days = diffs.shape
    check(
        days >= interval + 1,
        f"interval L={interval} is longer than the series: the date window gives {days} daily differences, "
        f"and a window needs L+1 (L days and the next)",
    )
    starts = days - interval
    windows = np.lib.stride_tricks.sliding_window_view(diffs, interval, axis=1)[:, :starts]
    following = diffs[:, interval:]
    if label_rule == "increase":
        labels = following > windows[:, :, -1]
    else:
        labels = following > 0
    row_index = np.repeat(np.arange(rows), starts)
    target_day = np.tile(np.arange(interval, days), rows)
    return windows.reshape(-1, interval).copy(), labels.reshape(-1).astype(np.float32), row_index, target_day


def normalize_windows(windows: np.ndarray, mode: str) -> np.ndarray:
    """Per-window scaling so countries of any size look alike: `max` divides by the largest |value|,
    `zscore` subtracts the mean and divides by the std, `log1p` is sign(x) log(1 + |x|); all-zero or
    constant windows map to zeros (zscore) or stay as they are."""
    check(mode in NORMALIZATIONS, f"data.normalize must be one of {NORMALIZATIONS}, got {mode!r}")
    windows = windows.astype(np.float64)
    if mode == "max":
        scale = np.abs(windows).max(axis=1, keepdims=True)
        return windows / np.where(scale > 0, scale, 1.0)
    if mode == "zscore":
        std = windows.std(axis=1, keepdims=True)
        return (windows - windows.mean(axis=1, keepdims=True)) / np.where(std > 0, std, 1.0)
    if mode == "log1p":
        return np.sign(windows) * np.log1p(np.abs(windows))
    return windows


def first_occurrences(windows: np.ndarray) -> np.ndarray:
    """Indices (ascending) of the first window of every distinct input; later copies, including those
    with a contradictory label, are dropped."""
    _, first = np.unique(windows, axis=0, return_index=True)
    return np.sort(first)


def split_windows(
    target_day: np.ndarray, how: str, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, np.ndarray]:
    """Indices of train/val/test windows. `random`: a seeded permutation. `time`: the windows whose
    labelled day is among the last days go to test, the days before those to val (no future leakage)."""
    check(how in SPLITS, f"data.split must be one of {SPLITS}, got {how!r}")
    check(
        0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1,
        f"data.val_fraction and data.test_fraction must be in (0, 1) and sum below 1, "
        f"got {val_fraction} and {test_fraction}",
    )
    count = len(target_day)
    if how == "random":
        order = np.random.default_rng(seed).permutation(count)
        n_test, n_val = round(test_fraction * count), round(val_fraction * count)
        parts = {
            "test": order[:n_test],
            "val": order[n_test : n_test + n_val],
            "train": order[n_test + n_val :],
        }
    else:
        days = np.unique(target_day)
        n_test = max(1, math.ceil(test_fraction * len(days)))
        n_val = max(1, math.ceil(val_fraction * len(days)))
        check(
            len(days) > n_test + n_val,
            f"split=time needs more labelled days ({len(days)}) than val+test days ({n_val}+{n_test})",
        )
        test_start, val_start = days[-n_test], days[-n_test - n_val]
        parts = {
            "train": np.flatnonzero(target_day < val_start),
            "val": np.flatnonzero((target_day >= val_start) & (target_day < test_start)),
            "test": np.flatnonzero(target_day >= test_start),
        }
    for name in SPLIT_NAMES:
        check(len(parts[name]) > 0, f"the {name} split is empty ({count} windows, split={how})")
    return {name: np.sort(parts[name]) for name in SPLIT_NAMES}


# ---------------------------------------------------------------------------------------- datamodule
class CovidDataModule(InMemoryDataModule):
    """Windows of daily new cases of the correlated countries, held in memory as tensors
    (`split_tensors`; `split_arrays` gives the same windows in float64 for the classical baselines)."""

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
        self.split_index: dict[str, np.ndarray] = {}
        self.label_balance: dict[str, float] = {}

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
        raw, labels, _, target_day = make_windows(
            self.diffs.loc[self.countries].to_numpy(), self.interval, self.label_rule
        )
        windows = normalize_windows(raw, self.normalize)
        total = len(windows)
        if self.drop_duplicates:
            keep = first_occurrences(windows)
            windows, labels, target_day = windows[keep], labels[keep], target_day[keep]
        parts = split_windows(target_day, self.split, self.val_fraction, self.test_fraction, self.seed)
        self.windows, self.labels, self.split_index = windows, labels, parts
        self.split_tensors = {
            name: (torch.tensor(windows[index], dtype=torch.float32), torch.tensor(labels[index]))
            for name, index in parts.items()
        }
        self.label_balance = {
            f"{name}/positive_rate": float(labels[parts[name]].mean()) for name in SPLIT_NAMES
        }
        dates = self.table.columns
        log.info(
            "covid: %s, %s..%s, %d countries, %d in C (corr > %g with >= %d partners); L=%d, %d windows"
            "%s; split %s train/val/test = %s; label '%s' positive rate %s",
            Path(self.file).name,
            dates[0].date(),
            dates[-1].date(),
            len(self.diffs),
            len(self.countries),
            self.corr_threshold,
            self.min_partners,
            self.interval,
            len(windows),
            f" ({total - len(windows)} duplicates dropped)" if self.drop_duplicates else "",
            self.split,
            "/".join(str(len(parts[name])) for name in SPLIT_NAMES),
            self.label_rule,
            "/".join(f"{self.label_balance[f'{name}/positive_rate']:.3f}" for name in SPLIT_NAMES),
        )

    def latest_windows(self) -> tuple[list[str], torch.Tensor]:
        """Every country of the file (not only C) with its last `interval` differences, normalised as
        in training: the input for tomorrow's prediction."""
        last = self.diffs.to_numpy()[:, -self.interval :]
        return list(self.diffs.index), torch.tensor(
            normalize_windows(last, self.normalize), dtype=torch.float32
        )

    def split_arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """One split's normalised windows (float64, before the cast to the model's float32) and labels."""
        index = self.split_index[split]
        return self.windows[index], self.labels[index]

    def val_dataloader(self) -> list[TensorBatches]:
        """The validation windows (checkpointing) and the test windows (the per-epoch test curves the
        course asks for; never used to pick a checkpoint)."""
        return [self.batches("val"), self.batches("test")]
