"""The covid task: both case-file formats, windows and labels, baselines, the country-name mapping,
bad input as one-line errors, a short fit in process, and (slow) a 2-job sweep through run.py."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from datetime import date, timedelta
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import assert_run_outputs, compose_config, model_for_data, quiet_trainer
from omegaconf import open_dict

from callbacks.covid.country_codes import NOT_COUNTRIES, map_country
from callbacks.covid.figures import Reliability
from callbacks.covid.metrics import Baselines, DataReport
from callbacks.covid.protocols import WindowClassifier
from callbacks.covid.world_map import WorldMap
from datamodules.covid import CovidDataModule
from datamodules.covid.case_files import read_case_table
from datamodules.covid.windows import (
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
from hw2lab.errors import HW2LabError
from hw2lab.pipeline import build
from lightning_modules.covid import CovidModule, RecurrentClassifier
from lightning_modules.covid.baselines import BASELINES, baseline_probabilities, fit_baselines
from lightning_modules.covid.classifier import fit_logit_offset
from lightning_modules.covid.scores import probability_scores

ADAM = partial(torch.optim.Adam, lr=1e-3)

START = date(2020, 1, 22)
# Real JHU names: four need the explicit table, one is a ship, one has no shape on pygal's map.
NAMES = ["US", "Korea, South", "Taiwan*", "Congo (Kinshasa)", "France", "Italy", "Diamond Princess", "Qatar"]


def jhu_date(day: date) -> str:
    return f"{day.month}/{day.day}/{day.year % 100}"


def excel_date(day: date) -> str:
    """The course pivot's headers: Excel turned m/d/yy with d <= 12 into 200m/d/yy."""
    if day.day <= 12 and day.month >= 2:
        return f"{2000 + day.month}/{day.day}/{day.year % 100}"
    return jhu_date(day)


def synthetic_cases(countries: int, days: int, seed: int = 0) -> dict[str, list[int]]:
    """Cumulative counts: noisy exponential growth with a shared trend, so countries correlate."""
    rng = np.random.default_rng(seed)
    trend = np.exp(np.linspace(0, 4, days))
    out = {}
    for i in range(countries):
        new = rng.poisson(trend * (1 + i % 3) * rng.uniform(0.5, 1.5, days))
        out[NAMES[i]] = np.cumsum(new).tolist()
    return out


def write_jhu(path: Path, cases: dict[str, list[int]], split_provinces: bool = True) -> Path:
    """The JHU CSSE layout (CRLF); the first country is split into two provinces that must be summed."""
    days = len(next(iter(cases.values())))
    header = ["Province/State", "Country/Region", "Lat", "Long"]
    header += [jhu_date(START + timedelta(days=d)) for d in range(days)]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(header)
        for i, (name, counts) in enumerate(cases.items()):
            if i == 0 and split_provinces:
                half = [c // 2 for c in counts]
                writer.writerow(["North", name, "1.0", "2.0", *half])
                writer.writerow(["South", name, "", "", *[c - h for c, h in zip(counts, half)]])
            else:
                writer.writerow(["", name, "1.0", "2.0", *counts])
    return path


def write_course(path: Path, cases: dict[str, list[int]]) -> Path:
    """The course's pivot: a date header, a 'sum' row, a 'Country/Region' row, then one row per country."""
    days = len(next(iter(cases.values())))
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["", "Lat", "Long", *[excel_date(START + timedelta(days=d)) for d in range(days)]])
        writer.writerow(["", *["sum"] * (days + 2)])
        writer.writerow(["Country/Region", *[""] * (days + 2)])
        for name, counts in cases.items():
            writer.writerow([name, "10.5", "-3.2", *counts])
    return path


def encoded_cases(
    days: int, starts: list[int], stops: list[int | None] | None = None
) -> dict[str, list[int]]:
    """Cumulative counts whose daily new cases name their country and day: country i has 1000 (i + 1) + d
    new cases on day d of the differences from `starts[i]` to `stops[i]` and none outside, so the raw new
    cases of a window's last day (`split_recent`) tell which country and labelled day the window is."""
    stops = stops or [None] * len(starts)
    out = {}
    for i, (start, stop) in enumerate(zip(starts, stops)):
        new = [
            1000 * (i + 1) + d if start <= d and (stop is None or d <= stop) else 0 for d in range(days - 1)
        ]
        out[NAMES[i]] = [0, *np.cumsum(new).tolist()]
    return out


def encoded_data_dir(root: Path, cases: dict[str, list[int]]) -> Path:
    (root / "covid").mkdir(parents=True)
    write_course(root / "covid" / "covid_19.csv", cases)
    return root


def countries_and_days(datamodule: CovidDataModule, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The country (0, 1, ...) and the labelled day of every window of a split of `encoded_cases`."""
    last = datamodule.split_recent(split)[:, -1].astype(int)  # the new cases of the window's last day
    assert np.all(last > 0)
    return last // 1000 - 1, last % 1000 + 1


@pytest.fixture
def cases() -> dict[str, list[int]]:
    return synthetic_cases(countries=8, days=40)


@pytest.fixture
def data_dir(tmp_path, cases) -> Path:
    root = tmp_path / "data"
    (root / "covid").mkdir(parents=True)
    write_jhu(root / "covid" / "time_series_covid19_confirmed_global.csv", cases)
    write_course(root / "covid" / "covid_19.csv", cases)
    return root


# ------------------------------------------------------------------------------------------ file formats
def test_both_formats_read_to_the_same_table(data_dir, cases):
    jhu = read_case_table(data_dir / "covid" / "time_series_covid19_confirmed_global.csv")
    course = read_case_table(data_dir / "covid" / "covid_19.csv")
    assert list(jhu.index) == sorted(cases)
    assert jhu.equals(course)
    assert jhu.columns[0].date() == START and jhu.columns[-1].date() == START + timedelta(days=39)
    assert jhu.loc["US"].tolist() == cases["US"]  # the two provinces summed


def test_real_files(real_data_dir):
    jhu = read_case_table(real_data_dir / "covid" / "time_series_covid19_confirmed_global.csv")
    course = read_case_table(real_data_dir / "covid" / "covid_19.csv")
    assert jhu.shape == (201, 1143) and course.shape == (185, 82)
    assert jhu.columns[-1].date() == date(2023, 3, 9) and course.columns[-1].date() == date(2020, 4, 12)
    # The README's sanity numbers for the last day.
    assert int(jhu.iloc[:, -1].sum()) == 676_570_149
    assert int(jhu.loc["US"].iloc[-1]) == 103_802_702 and int(jhu.loc["Zimbabwe"].iloc[-1]) == 264_276
    # The course file is a pivot of the same source: cumulative counts never decrease by much.
    assert (course.diff(axis=1).iloc[:, 1:] >= 0).to_numpy().mean() > 0.99


def test_every_real_country_name_maps_or_is_listed(real_data_dir):
    names = set(read_case_table(real_data_dir / "covid" / "time_series_covid19_confirmed_global.csv").index)
    names |= set(read_case_table(real_data_dir / "covid" / "covid_19.csv").index)
    drawn, not_drawn = {}, {}
    for name in names:
        code, why = map_country(name)
        (drawn if code else not_drawn)[name] = code or why
    assert not [n for n, why in not_drawn.items() if "no ISO code" in why], not_drawn
    assert NOT_COUNTRIES <= set(not_drawn)
    assert {drawn[n] for n in ("US", "Korea, South", "Taiwan*", "Congo (Kinshasa)", "Burma", "Holy See")} == {
        "us",
        "kr",
        "tw",
        "cd",
        "mm",
        "va",
    }
    assert len(drawn) >= 175


# ------------------------------------------------------------------------------------- windows and labels
def test_windows_and_label_rules_on_a_hand_made_series():
    diffs = np.array([[0.0, 1.0, 3.0, 2.0, 5.0], [4.0, 0.0, 0.0, 0.0, 0.0]])
    windows, labels, rows, days = make_windows(diffs, 2, "increase")
    assert windows.tolist() == [[0, 1], [1, 3], [3, 2], [4, 0], [0, 0], [0, 0]]
    assert labels.tolist() == [1, 0, 1, 0, 0, 0]  # next day above the window's last day
    assert rows.tolist() == [0, 0, 0, 1, 1, 1] and days.tolist() == [2, 3, 4, 2, 3, 4]
    _, labels, _, _ = make_windows(diffs, 2, "new_cases")
    assert labels.tolist() == [1, 1, 1, 0, 0, 0]  # any new cases on the next day
    assert normalize_windows(np.array([[2.0, -4.0], [0.0, 0.0]]), "max").tolist() == [[0.5, -1.0], [0.0, 0.0]]
    assert first_occurrences(np.array([[1.0, 2.0], [0.0, 0.0], [1.0, 2.0], [0.0, 0.0]])).tolist() == [0, 1]


def test_differences_correlation_and_country_set(cases):
    table = read_case_table_from(cases)
    diffs = daily_differences(select_dates(table, "2020-01-23", None))
    assert diffs.shape == (8, 38)
    corr = correlation_matrix(diffs)
    assert np.allclose(np.diag(corr), 1) and np.allclose(corr, corr.T)
    assert correlated_countries(corr, 0.2, 1) == list(cases)  # a shared trend (table order kept)
    assert correlated_countries(corr, 0.999, 1) == []


def read_case_table_from(cases):
    import pandas as pd

    dates = pd.date_range(START, periods=len(next(iter(cases.values()))))
    return pd.DataFrame(list(cases.values()), index=list(cases), columns=dates)


def test_time_split_keeps_the_future_out_of_training():
    target_day = np.tile(np.arange(5, 45), 3)
    parts = split_windows(target_day, "time", val_fraction=0.1, test_fraction=0.2, seed=0)  # gap 0
    assert target_day[parts["train"]].max() < target_day[parts["val"]].min()
    assert target_day[parts["val"]].max() < target_day[parts["test"]].min()
    assert target_day[parts["test"]].min() == 37  # the last 8 of 40 labelled days
    random = split_windows(target_day, "random", val_fraction=0.1, test_fraction=0.2, seed=0)
    assert sorted(np.concatenate(list(random.values())).tolist()) == list(range(len(target_day)))


def window_days(target_day: np.ndarray, interval: int) -> list[set[int]]:
    """The day indices a window reads and labels: its L days and the labelled day."""
    return [set(range(day - interval, day + 1)) for day in target_day]


@pytest.mark.parametrize("origin", [0, 1, 2])
@pytest.mark.parametrize("interval", [3, 7])
def test_time_split_leaves_no_day_shared_between_parts(interval, origin):
    """Checked on the windows' day indices: no val or test window shares a day (of its L days or its
    label) with a training window, nor a test window with a val window; each origin moves back."""
    days = np.arange(interval, 120)
    target_day = np.tile(days, 4)
    parts = split_windows(target_day, "time", 0.1, 0.2, seed=0, gap=interval, origin=origin)
    spans = {name: set().union(*window_days(target_day[index], interval)) for name, index in parts.items()}
    assert not spans["train"] & spans["val"] and not spans["train"] & spans["test"]
    assert not spans["val"] & spans["test"]
    assert target_day[parts["train"]].max() < target_day[parts["val"]].min() - interval
    n_test = int(np.ceil(0.2 * len(days)))
    assert target_day[parts["test"]].max() == days[-1 - origin * n_test]
    assert len(np.unique(target_day[parts["test"]])) == n_test


def test_time_split_of_the_datamodule_and_too_many_origins(data_dir, tmp_path):
    datamodule = CovidDataModule(
        str(encoded_data_dir(tmp_path / "encoded", encoded_cases(40, [0] * 4))),
        "covid/covid_19.csv",
        interval=5,
        start_date=None,
        end_date=None,
        min_partners=1,
        split="time",
        features=["dow", "lag7"],
    )
    datamodule.setup()
    _, train_days = countries_and_days(datamodule, "train")
    _, test_days = countries_and_days(datamodule, "test")
    assert max(set().union(*window_days(train_days, 5))) < min(set().union(*window_days(test_days, 5)))
    with pytest.raises(HW2LabError, match="split=time at origin 5 needs more labelled days"):
        CovidDataModule(
            str(data_dir),
            "covid/covid_19.csv",
            start_date=None,
            end_date=None,
            min_partners=1,
            split="time",
            origin=5,
        ).setup()


def test_country_split_keeps_every_country_on_one_side(tmp_path):
    row_index = np.repeat(np.arange(20), 30)
    parts = split_windows(np.tile(np.arange(30), 20), "country", 0.1, 0.2, seed=3, row_index=row_index)
    sides = [set(row_index[parts[name]]) for name in ("train", "val", "test")]
    assert not sides[0] & sides[1] and not sides[0] & sides[2] and not sides[1] & sides[2]
    assert (len(sides[0]), len(sides[1]), len(sides[2])) == (14, 2, 4)
    assert sum(len(index) for index in parts.values()) == len(row_index)
    encoded = encoded_data_dir(tmp_path / "encoded", encoded_cases(40, [0] * 8))
    datamodule = CovidDataModule(
        str(encoded), "covid/covid_19.csv", start_date=None, end_date=None, min_partners=1, split="country"
    )
    datamodule.setup()
    countries = [set(countries_and_days(datamodule, name)[0]) for name in ("train", "val", "test")]
    assert not countries[0] & (countries[1] | countries[2]) and not countries[1] & countries[2]
    assert set().union(*countries) == set(range(8))


def test_features_read_the_right_days_and_nothing_after_the_window():
    diffs = np.arange(1.0, 31.0)[None, :] * np.array([[1.0], [10.0]])  # day d has d + 1 (x10) new cases
    rows, target_day = np.array([0, 1]), np.array([20, 30])  # 30: the day after the last (tomorrow)
    features = window_features(diffs, rows, target_day, 3, ["dow", "scale", "lag7", "mean7"], first_weekday=2)
    assert features.shape == (2, 3, 5)
    angle = 2 * np.pi * ((2 + np.array([17, 18, 19])) % 7) / 7
    assert np.allclose(features[0, :, 0], np.sin(angle)) and np.allclose(features[0, :, 1], np.cos(angle))
    assert np.allclose(np.expm1(features[0, :, 2]), np.mean(np.arange(1, 21)))  # days 0..19 only
    assert np.allclose(np.expm1(features[0, :, 3]), [11, 12, 13])  # 7 days before days 17, 18, 19
    assert np.allclose(np.expm1(features[0, -1, 4]), np.mean(np.arange(14, 21)))  # days 13..19
    lastweek = window_features(diffs, rows[:1], target_day[:1], 3, ["lastweek"], 0)
    assert np.allclose(np.expm1(lastweek[0, :, 0]), [12, 13, 14])  # days 11..13: the next days a week ago
    changed = diffs.copy()
    changed[:, 20:] = 1e6  # the future: no feature of a window ending on day 19 may move
    assert np.array_equal(
        window_features(changed, rows[:1], target_day[:1], 3, ["scale", "lag7", "mean7"], 2),
        window_features(diffs, rows[:1], target_day[:1], 3, ["scale", "lag7", "mean7"], 2),
    )
    early = window_features(diffs, np.array([0]), np.array([3]), 3, ["lag7"], 0)
    assert early[0, :, 0].tolist() == [0, 0, 0]  # before the series: zero-padded
    assert recent_days(diffs, np.array([1]), np.array([9]), 8).tolist() == [
        [10.0 * (d + 1) for d in range(1, 9)]
    ]


def test_countries_that_stopped_reporting():
    diffs = np.array([[1.0] * 10 + [0.0] * 30, [1.0] * 35 + [0.0] * 5, [0.0] * 40])
    assert last_report_day(diffs, 28).tolist() == [9, 39, -1]
    assert last_report_day(diffs, None).tolist() == [39, 39, 39]
    assert first_case_day(np.array([[0.0, 0.0, 2.0, 0.0], [0.0] * 4])).tolist() == [2, 4]


def test_windows_before_the_first_case_and_after_the_last_report_are_dropped(tmp_path):
    """New cases are never 0 between a country's first case and its last report, so a window whose last
    day has none (`split_recent`) ends before the first case or after the last report: from_first_case
    drops only the former, stale_days the latter."""
    cases = encoded_cases(70, starts=[0, 5, 10, 20, 0, 3, 0, 0], stops=[None] * 6 + [30, 30])
    data_dir = encoded_data_dir(tmp_path, cases)
    last = {}
    for name, first, stale in (("none", False, None), ("first_case", True, None), ("both", True, 28)):
        datamodule = CovidDataModule(
            str(data_dir),
            "covid/covid_19.csv",
            interval=3,
            start_date=None,
            end_date=None,
            min_partners=1,
            stale_days=stale,
            from_first_case=first,
        )
        datamodule.setup()
        assert len(datamodule.countries) == len(cases)
        last[name] = np.concatenate(
            [datamodule.split_recent(split)[:, -1] for split in ("train", "val", "test")]
        )
    zeros = {name: int(np.sum(values == 0)) for name, values in last.items()}
    assert zeros["both"] == 0 < zeros["first_case"] < zeros["none"]
    assert len(last["none"]) - len(last["first_case"]) == zeros["none"] - zeros["first_case"]


def scores_of(name: str, recent: np.ndarray, labels: np.ndarray, label_rule: str = "increase") -> dict:
    x = np.zeros((len(labels), 2))
    predictions = baseline_probabilities(x, labels, x, recent, label_rule, seed=0)
    return probability_scores(predictions[name], labels)


def series_case(diffs: np.ndarray, interval: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The 8 days before each labelled day and the `increase` label, from one hand-made series."""
    _, labels, rows, target_day = make_windows(diffs[None, :], interval, "increase")
    keep = target_day >= 8
    return recent_days(diffs[None, :], rows[keep], target_day[keep]), labels[keep]


def test_each_baseline_on_a_series_where_its_answer_is_known():
    rising = np.arange(1.0, 41.0)  # every day above the last: persistence is always right
    recent, labels = series_case(rising)
    assert scores_of("persistence", recent, labels)["acc"] == 1.0
    zigzag = np.tile([0.0, 5.0], 20)  # up, down, up: reversal always right, persistence always wrong
    recent, labels = series_case(zigzag)
    assert scores_of("reversal", recent, labels)["acc"] == 1.0
    assert scores_of("persistence", recent, labels)["acc"] == 0.0
    assert scores_of("persistence", recent, labels)["auroc"] == 0.0
    weekly = np.tile([0.0, 0.0, 3.0, 1.0, 0.0, 70.0, 2.0], 6)  # a weekly reporting pattern
    recent, labels = series_case(weekly)
    assert scores_of("seasonal", recent, labels)["acc"] == 1.0
    assert scores_of("persistence", recent, labels)["acc"] < 1.0
    # the majority class of the train labels (here 0), whatever the test windows are
    majority = scores_of("majority", np.zeros((4, 8)), np.array([0.0, 0.0, 0.0, 1.0]))
    assert majority["acc"] == 0.75 and majority["f1"] == 0.0 and majority["auroc"] == 0.5
    # trees and logistic regression on a threshold rule of the window they can both learn
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 3))
    y = (x[:, -1] > 0.3).astype(np.float32)
    predictions = baseline_probabilities(x[:400], y[:400], x[400:], np.zeros((200, 8)), "increase", seed=0)
    assert probability_scores(predictions["hgb"], y[400:])["acc"] > 0.95
    assert probability_scores(predictions["logreg"], y[400:])["auroc"] > 0.99


def test_probability_scores_on_known_answers():
    labels = np.array([0.0, 0.0, 1.0, 1.0])
    perfect = probability_scores(np.array([0.1, 0.2, 0.8, 0.9]), labels)
    assert perfect["acc"] == perfect["f1"] == perfect["f1_neg"] == perfect["auroc"] == 1.0
    assert perfect["brier"] == pytest.approx((0.01 + 0.04 + 0.04 + 0.01) / 4)
    coin = probability_scores(np.full(4, 0.5), labels)
    assert coin["brier"] == 0.25 and coin["auroc"] == 0.5 and coin["f1_neg"] == 0.0


def test_baselines_on_separable_windows():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    y = (x[:, -1] > 0.8).astype(np.float32)  # mostly 0: the majority class predicts 0
    scores = fit_baselines(x[:300], y[:300], x[300:], y[300:], seed=0)
    assert scores["test/f1_majority"] == 0.0
    assert scores["test/acc_logreg"] > scores["test/acc_majority"]


def test_datamodule_reports_balance_and_baselines_score_its_windows(data_dir):
    datamodule = CovidDataModule(
        str(data_dir), "covid/covid_19.csv", interval=4, start_date=None, end_date=None, min_partners=1
    )
    datamodule.setup()
    total = sum(len(labels) for _, labels in datamodule.split_tensors.values())
    assert total == len(datamodule.countries) * (39 - 4)
    assert datamodule.split_tensors["train"][0].shape[1] == 4
    windows, labels = datamodule.split_arrays("test")
    assert windows.dtype == np.float64 and np.allclose(windows, datamodule.split_tensors["test"][0])
    assert np.array_equal(labels, datamodule.split_tensors["test"][1].numpy())
    assert set(datamodule.label_balance) == {"train/positive_rate", "val/positive_rate", "test/positive_rate"}
    scores = Baselines(seed=0).scores(datamodule)
    assert set(scores) == {
        f"test/{score}_{name}"
        for score in ("acc", "f1", "f1_neg", "auroc", "brier")
        for name in BASELINES
        if score != "auroc" or len(np.unique(labels)) == 2
    }
    majority = float(datamodule.split_arrays("train")[1].mean() >= 0.5)
    assert scores["test/acc_majority"] == pytest.approx(np.mean(labels == majority))
    names, latest = datamodule.latest_windows()
    assert len(names) == 8 and latest.shape == (8, 4)
    assert [len(b) for b in datamodule.val_dataloader()] == [
        -(-len(datamodule.split_tensors[split][1]) // datamodule.batch_size) for split in ("val", "test")
    ]


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_model_gives_one_logit_per_window(cell):
    module = CovidModule(RecurrentClassifier(cell, hidden_size=8, num_layers=2, dropout=0.1), ADAM)
    assert isinstance(module, WindowClassifier)
    assert module(torch.randn(5, 7)).shape == (5,)
    with_features = RecurrentClassifier(cell, hidden_size=8, features=["dow", "lag7"])
    assert with_features(torch.randn(5, 7, 4)).shape == (5,)
    module.train()
    probabilities = module.predict_proba(torch.randn(3, 7))
    assert probabilities.min() >= 0 and probabilities.max() <= 1 and not probabilities.requires_grad
    assert module.training  # predict_proba evaluates in eval mode and puts the mode back


def test_fit_logs_test_curves_and_test_logs_baselines(data_dir):
    """During fitting the validation loop also runs the test windows (test/* by epoch); testing adds the
    label balance and the baselines to the metrics."""
    datamodule = CovidDataModule(
        str(data_dir), "covid/covid_19.csv", start_date=None, end_date=None, min_partners=1, batch_size=32
    )
    module = CovidModule(RecurrentClassifier("gru", hidden_size=4), ADAM, recalibrate=True)
    trainer = quiet_trainer(
        max_epochs=1,
        callbacks=[Baselines(seed=0), DataReport(), Reliability()],
    )
    trainer.fit(module, datamodule=datamodule)
    fitted = set(trainer.callback_metrics)
    for stage in ("train", "val", "test"):
        assert {f"{stage}/{name}" for name in ("loss", "acc", "f1", "auroc")} <= fitted
    tested = trainer.test(module, datamodule=datamodule, verbose=False)[0]
    assert tested["test/acc_logreg"] == pytest.approx(Baselines(seed=0).scores(datamodule)["test/acc_logreg"])
    assert {"test/loss", "test/auroc", "test/f1_majority", "train/positive_rate", "test/countries"} <= set(
        tested
    )
    assert {"test/f1_neg", "test/brier", "test/auroc_hgb", "test/acc_seasonal"} <= set(tested)
    val_windows, val_labels = datamodule.split_tensors["val"]
    with torch.no_grad():
        val_logits = module.net(val_windows).numpy()
    assert tested["test/logit_offset"] == pytest.approx(
        fit_logit_offset(val_logits, val_labels.numpy()), abs=1e-5
    )


def legend_texts(svg: Path) -> list[str]:
    """The text a pygal SVG's legend shows (not the hover titles, which pygal never cuts)."""
    ns = {"svg": "http://www.w3.org/2000/svg"}
    groups = ET.parse(svg).getroot().iterfind(".//svg:g[@class]", ns)
    return [group.find("svg:text", ns).text for group in groups if "legend" in group.get("class").split()]


def test_world_map_legend_reads_whole(data_dir, tmp_path):
    datamodule = CovidDataModule(
        str(data_dir), "covid/covid_19.csv", start_date=None, end_date=None, min_partners=1
    )
    module = CovidModule(RecurrentClassifier("gru", hidden_size=4), ADAM)
    world_map = WorldMap(output_dir=str(tmp_path), figures_dir=str(tmp_path / "figures"))
    quiet_trainer(callbacks=[world_map]).test(module, datamodule=datamodule, verbose=False)
    legend = legend_texts(tmp_path / "figures" / "world_map.svg")
    assert legend == ["ascending (p >= 0.5)", "descending (p < 0.5)"]


def test_logit_offset_matches_the_rate_of_a_later_block():
    labels = np.array([1.0, 0.0, 0.0, 0.0] * 5)
    assert fit_logit_offset(np.zeros(20), labels) == pytest.approx(np.log(0.25 / 0.75))
    assert fit_logit_offset(np.full(20, 3.0), labels) == pytest.approx(np.log(0.25 / 0.75) - 3.0)
    assert fit_logit_offset(np.zeros(4), np.ones(4)) == 0.0  # one class: nothing to fit


def test_top_level_knobs_reach_data_and_model():
    cfg = compose_config(["task=covid", "interval=7", "cell=gru", "model.optimizer.lr=0.01"])
    assert cfg.data.interval == 7 and cfg.model.net.cell == "gru"
    assert cfg.data.split == "time" and list(cfg.data.features) == list(cfg.features)
    assert model_for_data(cfg).net.input_size == 1 + len(cfg.features)
    report = compose_config(["experiment=covid_report"])
    assert report.data.split == "random" and list(report.data.features) == []
    assert not report.data.from_first_case and cfg.data.from_first_case
    assert cfg.callbacks.model_checkpoint.monitor == cfg.optimized_metric
    assert cfg.callbacks.baselines.seed == cfg.seed
    module = model_for_data(cfg)
    optimizer = module.configure_optimizers()
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.defaults["lr"] == 0.01


def test_bad_learning_rate_is_one_line():
    cfg = compose_config(["task=covid", "model.optimizer.lr=-1"])
    with pytest.raises(HW2LabError, match="bad model.optimizer: Invalid learning rate: -1"):
        build(cfg.model)


# ---------------------------------------------------------------------------------------------- bad input
def test_missing_country_column(tmp_path, cases):
    path = write_jhu(tmp_path / "bad.csv", cases, split_provinces=False)
    text = path.read_text().replace("Country/Region", "Region")
    path.write_text(text)
    with pytest.raises(HW2LabError, match="no Country/Region column.*JHU CSSE.*covid_19.csv"):
        read_case_table(path)


def test_non_numeric_count(tmp_path, cases):
    path = write_course(tmp_path / "bad.csv", cases)
    lines = path.read_text().splitlines()
    lines[4] = lines[4].rsplit(",", 1)[0] + ",many"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(HW2LabError, match="non-numeric count 'many' for 'Korea, South'"):
        read_case_table(path)


def test_threshold_that_leaves_no_country(data_dir):
    datamodule = CovidDataModule(
        str(data_dir), "covid/covid_19.csv", end_date=None, corr_threshold=0.999, min_partners=3
    )
    with pytest.raises(HW2LabError, match="no country has 3 partners correlated above 0.999"):
        datamodule.setup()


def test_date_window_outside_the_file(data_dir):
    datamodule = CovidDataModule(str(data_dir), "covid/covid_19.csv", end_date="2020-04-12")
    with pytest.raises(HW2LabError, match="outside the file's 2020-01-22..2020-03-01"):
        datamodule.setup()


def test_bad_values_fail_in_the_constructor(data_dir):
    with pytest.raises(HW2LabError, match="label_rule"):
        CovidDataModule(str(data_dir), "covid/covid_19.csv", label_rule="up")
    with pytest.raises(HW2LabError, match="cell must be one of"):
        RecurrentClassifier("transformer")


def test_interval_longer_than_the_series(data_dir):
    datamodule = CovidDataModule(
        str(data_dir), "covid/covid_19.csv", interval=60, end_date=None, min_partners=1
    )
    with pytest.raises(HW2LabError, match="interval L=60 is longer than the series: .* 39 daily differences"):
        datamodule.setup()


# ------------------------------------------------------------------------------------------ end to end
@pytest.mark.slow
def test_two_job_sweep(cli, data_dir, tmp_path):
    cli(
        [
            "-m",
            "task=covid",
            "data=covid_jhu",
            "interval=3,5",
            "cell=gru",
            "data.start_date=null",
            "data.end_date=null",
            "data.min_partners=1",
            "trainer=debug",
            "trainer.max_epochs=2",
            "callbacks.correlation_heatmap.top_n=5",
        ],
        data_dir=data_dir,
    )
    sweep = tmp_path / "sweep"
    for job in ("0", "1"):
        record = assert_run_outputs(
            sweep / job, figures=["correlation_heatmap", "learning_curves", "confusion_matrix"]
        )
        metrics = record["metrics"]
        assert {"test/acc", "test/f1", "test/auroc", "test/acc_logreg", "test/acc_majority"} <= set(metrics)
        assert metrics["test/map_unmapped"] == 2  # the ship and Qatar, listed rather than dropped
        svg = (sweep / job / "figures" / "world_map.svg").read_text()
        assert "ascending" in svg and "descending" in svg and "Korea, South: P(increase)" in svg
        with open(sweep / job / "world_map.csv") as handle:
            rows = {row["country"]: row for row in csv.DictReader(handle)}
        assert set(rows) == set(NAMES) and rows["Taiwan*"]["pygal_code"] == "tw"
        assert rows["Diamond Princess"]["not_drawn_because"] and rows["Qatar"]["not_drawn_because"]
        with open(sweep / job / "correlation.csv") as handle:
            assert len(list(csv.reader(handle))) == 9  # header + 8 countries
        with open(sweep / job / "history.csv") as handle:
            header = next(csv.reader(handle))
        assert {"train/acc", "val/acc", "test/acc"} <= set(header)
    assert json.loads((sweep / "1" / "metrics.json").read_text())["hparams"]["data.interval"] == 5
    assert (sweep / "summary.csv").is_file() and (sweep / "summary.md").is_file()
    assert "## The model against the baselines" in (sweep / "summary.md").read_text()
    assert (sweep / "comparison.png").stat().st_size > 1000


@pytest.mark.parametrize(
    "interval, windows, ups, downs", [(3, 3688, 1891, 1797), (5, 4569, 2270, 2299), (7, 5015, 2418, 2597)]
)
def test_the_first_reports_window_counts_are_reproduced_exactly(real_data_dir, interval, windows, ups, downs):
    cfg = compose_config(["experiment=covid_report_001", f"interval={interval}"])
    with open_dict(cfg):
        cfg.data.data_dir = str(real_data_dir)
    datamodule = build(cfg.data, "data")
    datamodule.setup("fit")
    labels = np.concatenate([datamodule.split_arrays(split)[1] for split in ("train", "val", "test")])
    assert (len(labels), int((labels == 1).sum()), int((labels == 0).sum())) == (windows, ups, downs)
