"""The forecasters' baselines of the covid task, fitted on the model's train windows and scored on its
test windows: majority class, logistic regression, persistence, reversal, seasonal naive and
gradient-boosted trees."""

from __future__ import annotations

import numpy as np

from datamodules.covid.windows import apply_label_rule
from lightning_modules.covid.classifier import fit_logit_offset
from lightning_modules.covid.scores import probability_scores

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
    model's do with `model.recalibrate` (`lightning_modules.covid.classifier.fit_logit_offset`).
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

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
