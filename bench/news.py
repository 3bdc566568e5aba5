"""News quality bench: the task's models against TF-IDF (1-2-gram) + logistic regression on the same split.

Each model is trained through the project's own pipeline (the composed Hydra config, `fit_and_test`), and the
baseline is fitted on the very same training articles and scored on the same validation and test articles,
in one process. Accuracy is reported per split next to the baseline's, with the issue's goal.

    HW2LAB_DATA_DIR=../shared/data python bench/news.py --text title --models lstm,bag,transformer
    HW2LAB_DATA_DIR=../shared/data python bench/news.py --text full --models lstm,bag --epochs lstm=10
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import warnings
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import open_dict
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline

import hw2lab  # noqa: F401  (registers the config resolvers)
from hw2lab.pipeline import build, fit_and_test

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
# The goals (test accuracy) per text field and model.
GOALS = {"title": {"lstm": 0.85, "transformer": 0.90}, "full": {"lstm": 0.97, "transformer": 0.98}}
DEFAULT_EPOCHS = {"lstm": 15, "bag": 15, "transformer": 4}


def compose_news(overrides: list[str], output_dir: Path):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["task=news", "logger=none", *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.trainer.enable_progress_bar = False
        cfg.trainer.enable_model_summary = False
    return cfg


def tfidf_baseline(datamodule, cross_validate: bool = True) -> dict[str, float]:
    """TF-IDF of 1-2-grams + logistic regression, fitted on the training split."""
    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
        LogisticRegression(C=10.0, max_iter=2000),
    )
    model.fit(datamodule.texts("train"), datamodule.labels("train"))
    scores = {s: float(model.score(datamodule.texts(s), datamodule.labels(s))) for s in ("val", "test")}
    if not cross_validate:
        scores["cv5"] = float("nan")  # printed as nan: skipped
        return scores
    everything = [t for s in ("train", "val", "test") for t in datamodule.texts(s)]
    labels = [y for s in ("train", "val", "test") for y in datamodule.labels(s)]
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    scores["cv5"] = float(cross_val_score(model, everything, labels, cv=folds).mean())
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--text", default="title", choices=["title", "body", "full"])
    parser.add_argument("--models", default="lstm,bag,transformer")
    parser.add_argument("--epochs", nargs="*", default=[], help="per model, e.g. lstm=10 transformer=3")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--no-cv", action="store_true", help="skip the baseline's 5-fold CV (slow on full text)"
    )
    parser.add_argument("--override", nargs="*", default=[], help="extra Hydra overrides for every model")
    args = parser.parse_args()
    epochs = {**DEFAULT_EPOCHS, **{k: int(v) for k, v in (e.split("=") for e in args.epochs)}}
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")

    rows = []
    baseline = None
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            overrides = [
                f"model={name}",
                f"text={args.text}",
                f"seed={args.seed}",
                f"trainer.max_epochs={epochs[name]}",
                *args.override,
            ]
            cfg = compose_news(overrides, Path(tmp) / name)
            if baseline is None:
                started = time.perf_counter()
                baseline = tfidf_baseline(build(cfg.data), cross_validate=not args.no_cv)
                baseline["seconds"] = time.perf_counter() - started
            started = time.perf_counter()
            result = fit_and_test(cfg, Path(tmp) / name)
            metrics = result["metrics"]
            rows.append((name, epochs[name], metrics, time.perf_counter() - started))

    print(
        f"\nnews bench: text={args.text}, split 70/15/15 (stratified, seeded {args.seed}, duplicates grouped)"
    )
    print(
        f"baseline TF-IDF(1-2-gram)+LogReg on the same split: val {baseline['val']:.4f}  test {baseline['test']:.4f}"
        f"  (5-fold CV on all articles, ungrouped: {baseline['cv5']:.4f}; {baseline['seconds']:.1f}s)"
    )
    print(
        "| model | epochs | val acc (last epoch) | test acc (best val ckpt) | test macro-F1 | baseline test acc | test - baseline | goal | met | wall s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, n_epochs, metrics, seconds in rows:
        test = metrics.get("test/acc", float("nan"))
        goal = GOALS.get(args.text, {}).get(name)
        met = "" if goal is None else ("yes" if test >= goal else f"no ({test - goal:+.3f})")
        print(
            f"| {name} | {n_epochs} | {metrics.get('val/acc', float('nan')):.4f} | {test:.4f} | "
            f"{metrics.get('test/f1', float('nan')):.4f} | {baseline['test']:.4f} | {test - baseline['test']:+.4f} | "
            f"{goal if goal is not None else '-'} | {met or '-'} | {seconds:.0f} |"
        )


if __name__ == "__main__":
    main()
