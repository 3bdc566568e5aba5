"""From cumulative case series to labelled windows, each step a plain function so tests can check it on
hand-made series: a date window -> daily differences (new cases) -> the correlation of every pair of
countries -> the set C of correlated countries -> every run of L consecutive differences, labelled by
the next day -> optional normalisation and duplicate removal -> a train/val/test split -> optional extra
input channels per day.

Label rules (`label_rule`):
- `increase`: 1 if the next day's new cases exceed the last day's of the window (the course's "goes up").
- `new_cases`: 1 if the next day has any new cases at all.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from hw2lab.errors import check

LABEL_RULES = ("increase", "new_cases")
NORMALIZATIONS = ("none", "max", "zscore", "log1p")
SPLITS = ("random", "time", "country")
# Extra input channels per day of a window, and how many channels each adds (the new cases are channel 0).
FEATURES = {"dow": 2, "scale": 1, "lag7": 1, "lastweek": 1, "mean7": 1}
# Days of history before a window that the extra channels and the baselines may read (zero-padded before
# the first day of the date window).
HISTORY = 14
SPLIT_NAMES = ("train", "val", "test")


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

    `target_day` may be one past the last day (tomorrow's prediction). `diffs` are raw new cases; the
    feature names are the datamodule's, checked when it was made.
    """
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
