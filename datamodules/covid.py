"""COVID-19 confirmed cases as labelled windows of daily new cases, for the RNN / LSTM / GRU task.

The pipeline, each step a plain function so tests can check it on hand-made series:
read a case file (JHU CSSE time series or the course's Excel pivot) -> one cumulative series per country
-> a date window -> daily differences (new cases) -> the correlation of every pair of countries -> the set C
of countries correlated above `corr_threshold` with at least `min_partners` others -> every run of
`interval` consecutive differences of every country in C, labelled by the next day -> optional per-window
normalisation and duplicate removal -> a train/val/test split (by time with a gap of L days, rolling
origins; seeded random; or held-out countries) -> optional extra input channels per day (day of week,
per-country scale, the country's history beyond the window) -> tensors.

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
SPLITS = ("random", "time", "country")
# Extra input channels per day of a window, and how many channels each adds (the new cases are channel 0).
FEATURES = {"dow": 2, "scale": 1, "lag7": 1, "lastweek": 1, "mean7": 1}
# Days of history before a window that the extra channels and the baselines may read (zero-padded before
# the first day of the date window).
HISTORY = 14
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
    labels = apply_label_rule(windows[:, :, -1], diffs[:, interval:], label_rule)
    row_index = np.repeat(np.arange(rows), starts)
    target_day = np.tile(np.arange(interval, days), rows)
    return windows.reshape(-1, interval).copy(), labels.reshape(-1).astype(np.float32), row_index, target_day


def apply_label_rule(previous: np.ndarray, following: np.ndarray, label_rule: str) -> np.ndarray:
    """The label of `following` new cases after a day of `previous` ones: `increase` is following >
    previous, `new_cases` is following > 0 (previous unused). Boolean."""
    check(label_rule in LABEL_RULES, f"data.label_rule must be one of {LABEL_RULES}, got {label_rule!r}")
    return following > previous if label_rule == "increase" else following > 0


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
    target_day: np.ndarray,
    how: str,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    gap: int = 0,
    origin: int = 0,
    row_index: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Indices of train/val/test windows.

    - `random`: a seeded permutation of the windows (the course's split; windows overlap across parts).
    - `time`: blocks of labelled days, oldest to newest: train | gap | val | gap | test. The test block
      is the last `test_fraction` of the labelled days (at `origin` 0; origin k moves every block back by
      k test blocks: rolling-origin evaluation), val the `val_fraction` before it. `gap` labelled days are
      left out before val and before test: with gap = L no val or test window (its L days and the
      labelled day) shares a day with a training window, and no test window with a val window.
    - `country`: held-out countries (`row_index`): a seeded share `test_fraction` of the rows are test,
      `val_fraction` val, all their days; no country is on two sides.
    """
    check(how in SPLITS, f"data.split must be one of {SPLITS}, got {how!r}")
    check(
        0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1,
        f"data.val_fraction and data.test_fraction must be in (0, 1) and sum below 1, "
        f"got {val_fraction} and {test_fraction}",
    )
    check(gap >= 0 and origin >= 0, f"the gap and data.origin must be >= 0, got {gap} and {origin}")
    count = len(target_day)
    if how == "random":
        order = np.random.default_rng(seed).permutation(count)
        n_test, n_val = round(test_fraction * count), round(val_fraction * count)
        parts = {
            "test": order[:n_test],
            "val": order[n_test : n_test + n_val],
            "train": order[n_test + n_val :],
        }
    elif how == "country":
        check(row_index is not None, "split=country needs the country of every window")
        rows = np.unique(row_index)
        order = np.random.default_rng(seed).permutation(rows)
        n_test = max(1, round(test_fraction * len(rows)))
        n_val = max(1, round(val_fraction * len(rows)))
        check(
            len(rows) > n_test + n_val,
            f"split=country needs more countries ({len(rows)}) than val+test countries ({n_val}+{n_test})",
        )
        test_rows, val_rows = order[:n_test], order[n_test : n_test + n_val]
        parts = {
            "test": np.flatnonzero(np.isin(row_index, test_rows)),
            "val": np.flatnonzero(np.isin(row_index, val_rows)),
            "train": np.flatnonzero(~np.isin(row_index, np.concatenate([test_rows, val_rows]))),
        }
    else:
        days = np.unique(target_day)
        n_test = max(1, math.ceil(test_fraction * len(days)))
        n_val = max(1, math.ceil(val_fraction * len(days)))
        end = len(days) - origin * n_test  # one past the test block, in labelled-day positions
        first_val = end - n_test - gap - n_val
        check(
            first_val - gap >= 1,
            f"split=time at origin {origin} needs more labelled days ({len(days)}) than "
            f"{origin} earlier test blocks, test+val ({n_test}+{n_val}), two gaps of {gap} and one training day",
        )
        test_days = days[end - n_test : end]
        val_days = days[first_val : first_val + n_val]
        train_last = days[first_val - gap - 1]
        parts = {
            "train": np.flatnonzero(target_day <= train_last),
            "val": np.flatnonzero(np.isin(target_day, val_days)),
            "test": np.flatnonzero(np.isin(target_day, test_days)),
        }
    for name in SPLIT_NAMES:
        check(len(parts[name]) > 0, f"the {name} split is empty ({count} windows, split={how})")
    return {name: np.sort(parts[name]) for name in SPLIT_NAMES}


def signed_log1p(values: np.ndarray) -> np.ndarray:
    return np.sign(values) * np.log1p(np.abs(values))


def padded_history(diffs: np.ndarray) -> np.ndarray:
    """The daily differences with HISTORY zero days before the first (new cases before the date window
    are unknown; at the start of the series they were close to none)."""
    return np.concatenate([np.zeros((diffs.shape[0], HISTORY)), diffs], axis=1)


def recent_days(diffs: np.ndarray, rows: np.ndarray, target_day: np.ndarray, days: int = 8) -> np.ndarray:
    """The raw new cases of the `days` days before each labelled day (N, days), oldest first, whatever
    L is (what persistence and the seasonal naive baseline read). Zero-padded before the series."""
    check(days <= HISTORY, f"at most {HISTORY} days of history are kept")
    padded = padded_history(diffs)
    steps = target_day[:, None] - days + np.arange(days)[None, :] + HISTORY
    return padded[rows[:, None], steps]


def window_features(
    diffs: np.ndarray,
    rows: np.ndarray,
    target_day: np.ndarray,
    interval: int,
    features: list[str],
    first_weekday: int,
) -> np.ndarray:
    """The extra channels of each window's L days (N, L, channels), in the order of `features`:

    - `dow`: the day of the week of each day, as sin and cos of 2 pi weekday / 7 (reporting follows the
      week; the labelled day's weekday is the last day's plus one);
    - `scale`: sign-log1p of the country's mean |new cases| per day from the first day of the series to
      the window's last day (causal: nothing after the window), the same on every day of the window: how
      big the country is, which a per-window normalisation alone would not keep;
    - `lag7`: sign-log1p of the new cases 7 days before each day (last week's pattern, also for L < 7);
    - `lastweek`: sign-log1p of the new cases 7 days before the day after each day (day d - 6), so the
      last step holds the labelled day's count a week earlier and the step before it that of the
      window's last day: the seasonal comparison sits in the last two steps, as today's does;
    - `mean7`: sign-log1p of the mean of the 7 days ending at each day (the level beyond the window).

    `target_day` may be one past the last day (tomorrow's prediction). `diffs` are raw new cases.
    """
    unknown = [name for name in features if name not in FEATURES]
    check(not unknown, f"features must be among {tuple(FEATURES)}, got {unknown}")
    padded = padded_history(diffs)
    steps = target_day[:, None] - interval + np.arange(interval)[None, :]  # day index of each window day
    cumulative = np.concatenate([np.zeros((len(padded), 1)), np.cumsum(padded, axis=1)], axis=1)
    channels = []
    for name in features:
        if name == "dow":
            angle = 2 * np.pi * ((first_weekday + steps) % 7) / 7
            channels += [np.sin(angle), np.cos(angle)]
        elif name == "scale":
            absolute = np.cumsum(np.abs(diffs), axis=1)
            so_far = absolute[rows, target_day - 1] / target_day  # days 0 .. the window's last day
            channels.append(np.repeat(signed_log1p(so_far)[:, None], interval, axis=1))
        elif name == "lag7":
            channels.append(signed_log1p(padded[rows[:, None], steps - 7 + HISTORY]))
        elif name == "lastweek":
            channels.append(signed_log1p(padded[rows[:, None], steps - 6 + HISTORY]))
        elif name == "mean7":
            last = steps + HISTORY + 1  # one past each day in the padded array
            week = (cumulative[rows[:, None], last] - cumulative[rows[:, None], last - 7]) / 7
            channels.append(signed_log1p(week))
    if not channels:
        return np.zeros((len(rows), interval, 0))
    return np.stack(channels, axis=-1)


def first_case_day(diffs: np.ndarray) -> np.ndarray:
    """Per row, the index of the first day with new cases (> 0); the number of days if none."""
    positive = diffs > 0
    return np.where(positive.any(axis=1), np.argmax(positive, axis=1), diffs.shape[1])


def last_report_day(diffs: np.ndarray, stale_days: int | None) -> np.ndarray:
    """Per row, the last day whose label can be trusted: where a country's series ends with at least
    `stale_days` days without any change, the country is taken to have stopped reporting after its last
    change (several countries stopped long before JHU's own end on 2023-03-10), so its last change is
    the last day; otherwise (or with `stale_days` None) the last day of the series."""
    days = diffs.shape[1]
    nonzero = diffs != 0
    last_change = np.where(nonzero.any(axis=1), days - 1 - np.argmax(nonzero[:, ::-1], axis=1), -1)
    if stale_days is None:
        return np.full(len(diffs), days - 1)
    return np.where(days - 1 - last_change >= stale_days, last_change, days - 1)


# ---------------------------------------------------------------------------------------- datamodule
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
        self.rows, self.target_day = rows, target_day
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

    def split_days(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """One split's country (row of C) and labelled day index per window."""
        index = self.split_index[split]
        return self.rows[index], self.target_day[index]

    def val_dataloader(self) -> list[TensorBatches]:
        """The validation windows (checkpointing) and the test windows (the per-epoch test curves the
        course asks for; never used to pick a checkpoint)."""
        return [self.batches("val"), self.batches("test")]
