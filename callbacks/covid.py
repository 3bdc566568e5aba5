"""COVID figures and reports: correlation heatmap, confusion matrices, the pygal world map of tomorrow's
predictions, the label balance, the reliability figure with the Brier score, the forecasters' baselines
(majority class, logistic regression, persistence, seasonal naive, gradient-boosted trees) and the
L x cell sweep comparison.

The callbacks ask the module and the datamodule only for what `WindowClassifier` and `CovidData` declare.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Protocol, runtime_checkable

import lightning as L
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from torchmetrics.functional.classification import binary_confusion_matrix

from hw2lab.errors import HW2LabError
from hw2lab.figures import plot_confusion_matrix, save_figure

log = logging.getLogger("hw2lab")


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
    if not isinstance(pl_module, WindowClassifier):
        raise HW2LabError(
            f"the covid callbacks need a module with predict_proba(windows); {type(pl_module).__name__} has none"
        )
    return pl_module


# JHU / course country names that differ from pygal's names, as ISO 3166 alpha-2 codes (pygal's keys).
COUNTRY_CODES = {
    "US": "us",
    "Korea, South": "kr",
    "Korea South": "kr",
    "Korea, North": "kp",
    "Taiwan*": "tw",
    "Congo (Kinshasa)": "cd",
    "Congo (Brazzaville)": "cg",
    "Burma": "mm",
    "Cote d'Ivoire": "ci",
    "Holy See": "va",
    "Iran": "ir",
    "Russia": "ru",
    "Syria": "sy",
    "Vietnam": "vn",
    "Laos": "la",
    "Bolivia": "bo",
    "Venezuela": "ve",
    "Tanzania": "tz",
    "Moldova": "md",
    "Brunei": "bn",
    "Czechia": "cz",
    "North Macedonia": "mk",
    "Eswatini": "sz",
    "Cabo Verde": "cv",
    "Libya": "ly",
    "West Bank and Gaza": "ps",
    "Micronesia": "fm",
    "Kosovo": "xk",
    # ISO codes of countries that pygal's world map has no shape for (small states, islands).
    "Antigua and Barbuda": "ag",
    "Bahamas": "bs",
    "Barbados": "bb",
    "Comoros": "km",
    "Dominica": "dm",
    "Fiji": "fj",
    "Grenada": "gd",
    "Kiribati": "ki",
    "Marshall Islands": "mh",
    "Nauru": "nr",
    "Palau": "pw",
    "Qatar": "qa",
    "Saint Kitts and Nevis": "kn",
    "Saint Lucia": "lc",
    "Saint Vincent and the Grenadines": "vc",
    "Samoa": "ws",
    "Solomon Islands": "sb",
    "South Sudan": "ss",
    "Tonga": "to",
    "Trinidad and Tobago": "tt",
    "Tuvalu": "tv",
    "Vanuatu": "vu",
}
# Rows of the JHU file that are not countries.
NOT_COUNTRIES = {"Diamond Princess", "MS Zaandam", "Summer Olympics 2020", "Winter Olympics 2022"}


def map_country(name: str) -> tuple[str | None, str]:
    """(pygal code, "") for a country on pygal's world map, else (None, why it cannot be drawn)."""
    from pygal_maps_world.i18n import COUNTRIES

    if name in NOT_COUNTRIES:
        return None, "not a country (a ship or an event)"
    by_name = {country.lower(): code for code, country in COUNTRIES.items()}
    code = COUNTRY_CODES.get(name) or by_name.get(name.lower())
    if code is None:
        return None, "no ISO code known for this name"
    if code not in COUNTRIES:
        return None, f"pygal's world map has no shape for {code!r}"
    return code, ""


class CorrelationHeatmap(L.Callback):
    """The correlation of daily new cases between the `top_n` most-cased countries (upper triangle
    masked), and the full matrix of all countries as correlation.csv in the run dir."""

    def __init__(self, output_dir: str, figures_dir: str, top_n: int = 30) -> None:
        self.output_dir, self.figures_dir, self.top_n = Path(output_dir), Path(figures_dir), max(2, top_n)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        import seaborn as sns

        datamodule: CovidData = trainer.datamodule
        corr = datamodule.correlation
        self.output_dir.mkdir(parents=True, exist_ok=True)
        corr.to_csv(self.output_dir / "correlation.csv", float_format="%.4f")
        top = datamodule.table.iloc[:, -1].sort_values(ascending=False).index[: self.top_n]
        shown = corr.loc[top, top]
        size = max(6.0, 0.32 * len(top))
        fig, axis = plt.subplots(figsize=(size + 1.5, size))
        mask = np.triu(np.ones_like(shown.to_numpy(), dtype=bool))
        sns.heatmap(
            shown, mask=mask, cmap="coolwarm", vmin=-1, vmax=1, square=True, ax=axis, cbar_kws={"shrink": 0.7}
        )
        dates = datamodule.table.columns
        axis.set_title(
            f"correlation of daily new cases, {len(top)} most-cased countries, "
            f"{dates[0].date()}..{dates[-1].date()}",
            fontsize=10,
        )
        save_figure(fig, self.figures_dir, "correlation_heatmap", trainer)


class ConfusionMatrices(L.Callback):
    """Train and test confusion matrices of the tested (best) model, side by side."""

    CLASS_NAMES = ["not up (0)", "up (1)"]

    def __init__(self, figures_dir: str) -> None:
        self.figures_dir = Path(figures_dir)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        model = classifier(pl_module)
        datamodule: CovidData = trainer.datamodule
        fig, axes = plt.subplots(1, 2, figsize=(9, 4))
        for axis, split in zip(axes, ("train", "test")):
            windows, labels = datamodule.split_tensors[split]
            probabilities = model.predict_proba(windows).cpu()
            matrix = binary_confusion_matrix(probabilities, labels.long()).numpy()
            accuracy = np.trace(matrix) / max(1, matrix.sum())
            title = f"{split}: accuracy {accuracy:.3f} ({matrix.sum()} windows)"
            plot_confusion_matrix(matrix, self.CLASS_NAMES, title=title, axis=axis)
        fig.tight_layout()
        save_figure(fig, self.figures_dir, "confusion_matrix", trainer)


class WorldMap(L.Callback):
    """Tomorrow's probability of an increase for every country of the file, on pygal's world map.

    Two series: ascending (p >= 0.5) and descending (p < 0.5), each country's probability as value and
    tooltip. Countries that cannot be drawn are logged, counted in the metrics (`test/map_unmapped`)
    and listed with their reason in world_map.csv next to the drawn ones.
    """

    def __init__(self, output_dir: str, figures_dir: str) -> None:
        self.output_dir, self.figures_dir = Path(output_dir), Path(figures_dir)
        # The names themselves, for metrics.json once the pipeline gathers callbacks' `run_notes`.
        self.run_notes: dict[str, list[str]] = {}

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from pygal_maps_world.maps import World

        datamodule: CovidData = trainer.datamodule
        names, windows = datamodule.latest_windows()
        probabilities = classifier(pl_module).predict_proba(windows).cpu().tolist()
        ascending, descending, rows, unmapped = {}, {}, [], []
        for name, probability in zip(names, probabilities):
            code, why = map_country(name)
            rows.append([name, code or "", f"{probability:.4f}", why])
            if code is None:
                unmapped.append(f"{name} ({why})")
                continue
            series = ascending if probability >= 0.5 else descending
            # pygal maps take {"value": (code, value), "label": tooltip text}.
            point = {
                "value": (code, round(probability, 4)),
                "label": f"{name}: P(increase) = {probability:.2f}",
            }
            previous = series.get(code)  # two names, one shape: keep the more confident one
            if previous is None or abs(probability - 0.5) > abs(previous["value"][1] - 0.5):
                series[code] = point
        pl_module.log("test/map_unmapped", float(len(unmapped)))
        self.run_notes = {"map_unmapped": unmapped}
        if not trainer.is_global_zero:
            return
        if unmapped:
            log.warning("world map: %d names not drawn: %s", len(unmapped), "; ".join(unmapped))
        last_day = datamodule.table.columns[-1].date()
        chart = World(
            title=f"P(new cases rise on the day after {last_day}), L={datamodule.interval}",
            show_legend=True,
        )
        chart.add("ascending (p >= 0.5)", list(ascending.values()))
        chart.add("descending (p < 0.5)", list(descending.values()))
        self.figures_dir.mkdir(parents=True, exist_ok=True)
        chart.render_to_file(str(self.figures_dir / "world_map.svg"))
        with open(self.output_dir / "world_map.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["country", "pygal_code", "p_increase", "not_drawn_because"])
            writer.writerows(rows)


class DataReport(L.Callback):
    """Adds to the test metrics what tells a result apart from chance: the label balance of each split
    and the size of C."""

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule: CovidData = trainer.datamodule
        values = {**datamodule.label_balance, "test/countries": float(len(datamodule.countries))}
        pl_module.log_dict(values, add_dataloader_idx=False)


def binary_scores(predicted: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Accuracy and F1 (of class 1) of 0/1 predictions."""
    predicted, labels = predicted.astype(bool), labels.astype(bool)
    true_pos = float(np.sum(predicted & labels))
    denominator = float(predicted.sum() + labels.sum())
    return float(np.mean(predicted == labels)), 2 * true_pos / denominator if denominator else 0.0


def probability_scores(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """acc and F1 of both classes (`f1` of 1, `f1_neg` of 0) at p >= 0.5, AUROC (a constant
    forecast scores 0.5; a 0/1 forecast its balanced accuracy) and the Brier score (mean squared error
    of the probability; a 0/1 forecast scores its error rate). AUROC is left out when the labels hold
    one class only."""
    from sklearn.metrics import roc_auc_score

    probabilities, labels = np.asarray(probabilities, np.float64), np.asarray(labels, np.float64)
    predicted = probabilities >= 0.5
    acc, f1 = binary_scores(predicted, labels)
    _, f1_neg = binary_scores(~predicted, labels == 0)
    out = {"acc": acc, "f1": f1, "f1_neg": f1_neg, "brier": float(np.mean((probabilities - labels) ** 2))}
    if len(np.unique(labels)) == 2:
        out["auroc"] = float(roc_auc_score(labels, probabilities))
    return out


BASELINES = ("majority", "logreg", "persistence", "reversal", "seasonal", "hgb")


def baseline_probabilities(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_recent: np.ndarray,
    label_rule: str,
    seed: int,
    val: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Each baseline's P(label 1) for the test windows:

    - `majority`: the train majority class;
    - `logreg`: logistic regression on the model's inputs (flattened: the window, and its feature
      channels where configured), fitted on the train windows;
    - `persistence`: the label rule applied one day back: tomorrow's change has the sign of today's
      (`increase`: 1 if today's new cases exceed yesterday's), from `test_recent` (raw new cases of the
      8 days before the labelled day, oldest first);
    - `reversal`: the opposite of persistence, 1 if today's new cases are below yesterday's (ties, such
      as 0 then 0, are 0 as in the label; with `new_cases`, 1 - persistence). Daily counts are noisy: a
      day above its predecessor is more often followed by one below it, so this rule is a baseline to
      beat as well;
    - `seasonal`: the label rule applied 7 days back (the labelled day's weekday a week earlier:
      reporting follows the week), from the same 8 days, so also for L < 8;
    - `hgb`: scikit-learn's HistGradientBoostingClassifier on the same inputs as logistic regression.

    A one-class train split makes logistic regression and the trees the majority class. With `val`
    (inputs, labels), the two learned baselines' logits get an offset fitted on the val windows, as the
    model's do with `model.recalibrate` (`lightning_modules.covid.fit_logit_offset`).
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    from datamodules.covid import apply_label_rule
    from lightning_modules.covid import fit_logit_offset

    def logit(p: np.ndarray) -> np.ndarray:
        p = np.clip(p, 1e-7, 1 - 1e-7)
        return np.log(p / (1 - p))

    train_x, test_x = train_x.reshape(len(train_x), -1), test_x.reshape(len(test_x), -1)
    majority = float(train_y.mean() >= 0.5)
    out = {"majority": np.full(len(test_x), majority)}
    if len(np.unique(train_y)) == 2:
        logreg = LogisticRegression(max_iter=2000, random_state=seed).fit(train_x, train_y)
        trees = HistGradientBoostingClassifier(random_state=seed).fit(train_x, train_y)
        for name, model in (("logreg", logreg), ("hgb", trees)):
            logits = logit(model.predict_proba(test_x)[:, 1])
            if val is not None:
                val_x, val_y = val
                val_logits = logit(model.predict_proba(val_x.reshape(len(val_x), -1))[:, 1])
                logits = logits + fit_logit_offset(val_logits, val_y)
            out[name] = 1.0 / (1.0 + np.exp(-logits))
    else:
        out["logreg"] = out["hgb"] = out["majority"]
    out["persistence"] = apply_label_rule(test_recent[:, -2], test_recent[:, -1], label_rule).astype(float)
    if label_rule == "increase":  # 1 if today is below yesterday; a tie (e.g. 0 then 0) is 0 as the label
        out["reversal"] = (test_recent[:, -1] < test_recent[:, -2]).astype(float)
    else:
        out["reversal"] = 1.0 - out["persistence"]
    out["seasonal"] = apply_label_rule(test_recent[:, 0], test_recent[:, 1], label_rule).astype(float)
    return {name: out[name] for name in BASELINES}


def fit_baselines(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    seed: int,
    test_recent: np.ndarray | None = None,
    label_rule: str = "increase",
    val: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, float]:
    """The baselines fitted on the train windows, scored on the test windows: `test/<score>_<name>` for
    every score of `probability_scores` (acc, f1, f1_neg, auroc, brier). Without `test_recent`,
    persistence, reversal and the seasonal forecast are left out."""
    recent = test_recent if test_recent is not None else np.zeros((len(test_x), 8))
    predictions = baseline_probabilities(train_x, train_y, test_x, recent, label_rule, seed, val)
    out = {}
    for name, probabilities in predictions.items():
        if test_recent is None and name in ("persistence", "reversal", "seasonal"):
            continue
        for score, value in probability_scores(probabilities, test_y).items():
            out[f"test/{score}_{name}"] = value
    return out


class Baselines(L.Callback):
    """The forecasters' baselines (`BASELINES`, see `baseline_probabilities`) fitted on the same train
    windows and scored on the same test windows as the recurrent model, logged with the test metrics:
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


class Reliability(L.Callback):
    """The tested model's probabilities on the test windows: `test/f1_neg` (F1 of class 0) and
    `test/brier` in the metrics, and `figures/reliability.png`: the observed rate of increases per bin
    of predicted probability against the diagonal, with how many windows fall in each bin."""

    def __init__(self, figures_dir: str | None = None, bins: int = 10) -> None:
        self.figures_dir = Path(figures_dir) if figures_dir else None
        self.bins = bins

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule: CovidData = trainer.datamodule
        windows, labels = datamodule.split_tensors["test"]
        probabilities = classifier(pl_module).predict_proba(windows).cpu().double().numpy()
        labels = labels.double().numpy()
        scores = probability_scores(probabilities, labels)
        pl_module.log_dict(
            {"test/f1_neg": scores["f1_neg"], "test/brier": scores["brier"]}, add_dataloader_idx=False
        )
        if self.figures_dir is None or not trainer.is_global_zero:
            return
        edges = np.linspace(0, 1, self.bins + 1)
        which = np.clip(np.digitize(probabilities, edges[1:-1]), 0, self.bins - 1)
        counts = np.bincount(which, minlength=self.bins)
        observed = np.bincount(which, weights=labels, minlength=self.bins) / np.maximum(counts, 1)
        predicted = np.bincount(which, weights=probabilities, minlength=self.bins) / np.maximum(counts, 1)
        fig, (axis, hist) = plt.subplots(
            2, 1, figsize=(5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
        )
        axis.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfectly calibrated")
        shown = counts > 0
        axis.plot(predicted[shown], observed[shown], "o-", label="model")
        axis.set_ylabel("observed rate of increases")
        axis.set_title(
            f"reliability on {len(labels)} test windows (Brier {scores['brier']:.3f})", fontsize=10
        )
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
        hist.bar((edges[:-1] + edges[1:]) / 2, counts, width=1 / self.bins, edgecolor="white")
        hist.set_xlabel("predicted P(increase)")
        hist.set_ylabel("windows")
        fig.tight_layout()
        save_figure(fig, self.figures_dir, "reliability", trainer)


def baseline_lines(jobs: list) -> list[str]:
    """summary.md's section: per job the model's test accuracy and AUROC beside every baseline's, and the
    margin over the best baseline of each (points)."""
    rows = [job for job in jobs if "test/acc" in job.metrics and "test/acc_majority" in job.metrics]
    if not rows:
        return []
    header = ["job", "overrides"]
    for score in ("acc", "auroc"):
        header += [f"{score} model", *(f"{score} {name}" for name in BASELINES), f"{score} − best (points)"]
    lines = [
        "",
        "## The model against the baselines (same test windows)",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for job in rows:
        cells = [str(job.number), f"`{job.label}`"]
        for score in ("acc", "auroc"):
            baselines = [job.metrics.get(f"test/{score}_{name}") for name in BASELINES]
            model = job.metrics.get(f"test/{score}")
            best = max((value for value in baselines if value is not None), default=None)
            cells += [f"{model:.3f}" if model is not None else ""]
            cells += [f"{value:.3f}" if value is not None else "" for value in baselines]
            cells += [f"{100 * (model - best):+.2f}" if model is not None and best is not None else ""]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def compare_interval_cell(jobs: list, sweep_dir: Path) -> Path:
    """Test accuracy and F1 by interval L (x) and cell (bars), with the majority and logistic-regression
    baselines of each L as markers; jobs with the same L and cell (e.g. seeds) are averaged."""
    table: dict[tuple[int, str], list[dict[str, float]]] = {}
    for job in jobs:
        key = (int(job.hparams.get("data.interval", 0)), str(job.hparams.get("model.net.cell", "?")))
        table.setdefault(key, []).append(job.metrics)
    intervals = sorted({key[0] for key in table})
    order = ["rnn", "lstm", "gru"]
    cells = sorted(
        {key[1] for key in table}, key=lambda cell: (order.index(cell) if cell in order else 9, cell)
    )
    width = 0.8 / max(1, len(cells))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for axis, metric in zip(axes, ("acc", "f1")):
        for i, cell in enumerate(cells):
            xs, ys = [], []
            for j, interval in enumerate(intervals):
                runs = table.get((interval, cell), [])
                values = [m[f"test/{metric}"] for m in runs if f"test/{metric}" in m]
                if values:
                    xs.append(j + (i - (len(cells) - 1) / 2) * width)
                    ys.append(float(np.mean(values)))
            bars = axis.bar(xs, ys, width, label=cell)
            axis.bar_label(bars, fmt="%.3f", fontsize=7)
        shown = [bar.get_height() for container in axis.containers for bar in container]
        for name, style in (("majority", "k--"), ("logreg", "r-")):
            for position, interval in enumerate(intervals):
                values = [
                    m[f"test/{metric}_{name}"]
                    for (i, _), runs in table.items()
                    if i == interval
                    for m in runs
                ]
                if values:
                    level = float(np.mean(values))
                    shown.append(level)
                    label = name if position == 0 else None
                    axis.plot(
                        [position - 0.45, position + 0.45], [level, level], style, linewidth=2, label=label
                    )
        if metric == "acc" and shown:  # accuracies sit close together: zoom in
            axis.set_ylim(max(0.0, min(shown) - 0.05), min(1.0, max(shown) + 0.03))
        axis.set_xticks(range(len(intervals)), [f"L={interval}" for interval in intervals])
        axis.set_title(f"test {metric} by interval and cell")
        axis.grid(alpha=0.3, axis="y")
        axis.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, sweep_dir, "comparison")
