"""News quality bench: the task's models against TF-IDF (1-2-gram) + logistic regression on the same split.

Each model is trained through the project's own pipeline (the composed Hydra config, `fit_and_test`), and the
baseline is fitted on the very same training articles and scored on the same validation and test articles,
in one process. Accuracy is reported per split next to the baseline's, with the project's goal.

    HW2LAB_DATA_DIR=../shared/data python bench/news.py --text title --models lstm,bag,transformer
    HW2LAB_DATA_DIR=../shared/data python bench/news.py --text full --models lstm,bag --epochs lstm=10
    HW2LAB_DATA_DIR=../shared/data python bench/news.py --text full --models lstm --epochs lstm=12 --folds 7 --override experiment=news_lstm_full

With `--folds K` every model trains K times, once per fold of a grouped, stratified K-fold split (the fold is
the test split, the other folds are split into train and validation), and the pooled accuracy of the K test
folds, every article tested once, is reported next to the baseline's on the same folds.
`--predictions FILE` writes every article's category and each model's answer on its test fold, and counts
the errors the models share with TF-IDF. `--jobs N` trains N folds at once, each in a process of its own
with OMP_NUM_THREADS torch threads (the same figures as one fold at a time, checked on 3 folds of the bag
model and on the 7 folds of the full-text LSTM):

    HW2LAB_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python bench/news.py --text full --models transformer --folds 7 --jobs 2 --override experiment=news_transformer_full

The tables are printed and written as JSON (`--out`, default under bench/results/).
"""

from __future__ import annotations

import argparse
import csv
import ctypes
import logging
import multiprocessing
import os
import signal
import statistics
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from hw2lab.compose import bench_config, write_bench_result
from hw2lab.pipeline import build, fit_and_test
from lightning_modules.news.baselines import tfidf_baseline

# The project's goals (test accuracy) per text field and model: the title Transformer must beat the course's
# best report (BERT + LSTM head, 0.95).
GOALS = {"title": {"lstm": 0.85, "transformer": 0.95}, "full": {"lstm": 0.97, "transformer": 0.98}}
DEFAULT_EPOCHS = {"lstm": 15, "bag": 15, "transformer": 4}


def compose_news(overrides: list[str], output_dir: Path):
    """The news config `python run.py task=news <overrides>` runs, without logger, bar or model summary."""
    return bench_config(["task=news", *overrides], output_dir)


def model_overrides(name: str, args: argparse.Namespace, epochs: dict[str, int]) -> list[str]:
    return [
        f"model={name}",
        f"text={args.text}",
        f"seed={args.seed}",
        f"trainer.max_epochs={epochs[name]}",
        *args.override,
    ]


def goal_verdict(text: str, name: str, accuracy: float) -> tuple[str, str]:
    goal = GOALS.get(text, {}).get(name)
    if goal is None:
        return "-", "-"
    return str(goal), "yes" if accuracy >= goal else f"no ({accuracy - goal:+.3f})"


def single_split(args: argparse.Namespace, epochs: dict[str, int]) -> dict:
    rows = []
    baseline = None
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            cfg = compose_news(model_overrides(name, args, epochs), Path(tmp) / name)
            if baseline is None:
                seeds = f"split seeded {cfg.data.seed}, model seed {cfg.seed}"
                started = time.perf_counter()
                baseline = tfidf_baseline(build(cfg.data), cross_validate=not args.no_cv)
                baseline["seconds"] = time.perf_counter() - started
            started = time.perf_counter()
            result = fit_and_test(cfg, Path(tmp) / name)
            metrics = result["metrics"]
            rows.append((name, epochs[name], metrics, time.perf_counter() - started))

    print(f"\nnews bench: text={args.text}, split 70/15/15 (stratified, {seeds}, duplicates grouped)")
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
        goal, met = goal_verdict(args.text, name, test)
        print(
            f"| {name} | {n_epochs} | {metrics.get('val/acc', float('nan')):.4f} | {test:.4f} | "
            f"{metrics.get('test/f1', float('nan')):.4f} | {baseline['test']:.4f} | {test - baseline['test']:+.4f} | "
            f"{goal} | {met} | {seconds:.0f} |"
        )
    return {
        "text": args.text,
        "split": seeds,
        "baseline": baseline,
        "models": [
            {"model": name, "epochs": n_epochs, "metrics": metrics, "wall_s": seconds}
            for name, n_epochs, metrics, seconds in rows
        ],
    }


def quiet() -> None:
    """Bench output only: no per-epoch chatter from Lightning (also run in each --jobs worker)."""
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")


def start_worker(parent_pid: int) -> None:
    """A --jobs worker: bench output only, and it ends when the bench process ends, however that ends.
    (Lightning handles SIGTERM inside each worker's fit, so a worker would otherwise train on after its
    parent was killed.) Linux only: elsewhere Ctrl-C, which reaches the whole process group, stops them."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
        if os.getppid() != parent_pid:  # the parent died before the call above
            os._exit(1)
    quiet()


def train_fold(overrides: list[str], workdir: str) -> tuple[dict[str, float], float]:
    """(test metrics, seconds) of one fold's run; module-level so that a --jobs worker process can run it."""
    cfg = compose_news(overrides, Path(workdir))
    started = time.perf_counter()
    metrics = fit_and_test(cfg, Path(workdir))["metrics"]
    return {key: float(value) for key, value in metrics.items()}, time.perf_counter() - started


def cross_validation(args: argparse.Namespace, epochs: dict[str, int]) -> dict:
    """Every model on each of the K folds (test = that fold), the baseline on the same folds; the K test
    folds hold every article once, so their pooled accuracy is the whole set's. With --jobs N, N folds train
    at once, each in a process of its own (torch threads per process: OMP_NUM_THREADS)."""
    folds = args.folds
    rows: dict[str, list[tuple[int, dict, float, int, dict]]] = {}
    baselines: dict[int, dict] = {}
    # Per article id: its category, its fold, and each model's answer (for --predictions).
    truth: dict[str, str] = {}
    fold_of: dict[str, int] = {}
    answers: dict[str, dict[str, str]] = {"tfidf": {}}
    with tempfile.TemporaryDirectory() as tmp:
        runs = []
        for name in args.models.split(","):
            for fold in range(folds):
                overrides = [*model_overrides(name, args, epochs), f"data.folds={folds}", f"data.fold={fold}"]
                workdir = str(Path(tmp) / f"{name}_{fold}")
                cfg = compose_news(overrides, Path(workdir))
                seeds = f"folds seeded {cfg.data.seed}, model seed {cfg.seed}"
                train_val = ":".join(f"{share:g}" for share in cfg.data.split[:2])
                if fold not in baselines:
                    datamodule = build(cfg.data)
                    baselines[fold] = tfidf_baseline(datamodule, False, answers["tfidf"])
                    baselines[fold]["size"] = len(datamodule.labels("test"))
                    for id_, label in zip(datamodule.ids("test"), datamodule.labels("test")):
                        truth[id_], fold_of[id_] = datamodule.classes[label], fold
                runs.append((name, fold, overrides, workdir))

        def record(name: str, fold: int, metrics: dict, seconds: float) -> None:
            baseline = baselines[fold]
            rows.setdefault(name, []).append((fold, metrics, seconds, baseline["size"], baseline))
            if args.predictions:
                with open(Path(tmp) / f"{name}_{fold}" / "predictions.csv", newline="") as handle:
                    answers.setdefault(name, {}).update(
                        (row["id"], row["category"]) for row in csv.DictReader(handle)
                    )
            print(
                f"{name} fold {fold}: test acc {metrics.get('test/acc', float('nan')):.4f}, "
                f"baseline {baseline['test']:.4f}",
                flush=True,
            )

        if args.jobs > 1:
            # A fresh interpreter per worker: no torch threads or state inherited through fork.
            spawn = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(
                args.jobs, mp_context=spawn, initializer=start_worker, initargs=(os.getpid(),)
            ) as pool:
                futures = {
                    pool.submit(train_fold, overrides, workdir): (name, fold)
                    for name, fold, overrides, workdir in runs
                }
                for future in as_completed(futures):
                    record(*futures[future], *future.result())
        else:
            for name, fold, overrides, workdir in runs:
                record(name, fold, *train_fold(overrides, workdir))
        for runs_of_model in rows.values():
            runs_of_model.sort(key=lambda run: run[0])

    print(
        f"\nnews bench: text={args.text}, {folds}-fold cross-validation (grouped, stratified, {seeds}; "
        f"each fold the test split once, the others train:val at {train_val})"
    )
    print(
        "| model | fold | epochs | val acc (last epoch) | test acc (best val ckpt) | test articles | baseline test acc | test - baseline | wall s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, runs in rows.items():
        for fold, metrics, seconds, size, baseline in runs:
            test = metrics.get("test/acc", float("nan"))
            print(
                f"| {name} | {fold} | {epochs[name]} | {metrics.get('val/acc', float('nan')):.4f} | {test:.4f} | "
                f"{size} | {baseline['test']:.4f} | {test - baseline['test']:+.4f} | {seconds:.0f} |"
            )
    print(
        "\n| model | pooled test acc | mean (sd) over folds | articles | baseline pooled | model - baseline | goal | met |"
    )
    print("|---|---|---|---|---|---|---|---|")
    pooled_rows = {}
    for name, runs in rows.items():
        accuracies = [metrics.get("test/acc", float("nan")) for _, metrics, _, _, _ in runs]
        sizes = [size for *_, size, _ in runs]
        total = sum(sizes)
        pooled = sum(a * n for a, n in zip(accuracies, sizes)) / total
        base = sum(baseline["test"] * size for *_, size, baseline in runs) / total
        goal, met = goal_verdict(args.text, name, pooled)
        print(
            f"| {name} | {pooled:.4f} | {statistics.mean(accuracies):.4f} ({statistics.stdev(accuracies):.4f}) | "
            f"{total} | {base:.4f} | {pooled - base:+.4f} | {goal} | {met} |"
        )
        pooled_rows[name] = {"pooled_test_acc": pooled, "articles": total, "baseline_pooled": base}
    if args.predictions:
        write_answers(Path(args.predictions), truth, fold_of, answers)
    return {
        "text": args.text,
        "folds": folds,
        "split": seeds,
        "models": pooled_rows,
        "per_fold": {
            name: [
                {
                    "fold": fold,
                    "metrics": metrics,
                    "wall_s": seconds,
                    "test_articles": size,
                    "baseline": baseline,
                }
                for fold, metrics, seconds, size, baseline in runs
            ]
            for name, runs in rows.items()
        },
    }


def write_answers(
    path: Path, truth: dict[str, str], fold_of: dict[str, int], answers: dict[str, dict[str, str]]
) -> None:
    """Every article's category and each model's answer on its test fold, and which errors the models share:
    errors every model makes point at articles whose label the text does not settle."""
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(answers)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "fold", "category", *names])
        for id_ in sorted(truth, key=lambda i: (fold_of[i], i)):
            writer.writerow([id_, fold_of[id_], truth[id_], *(answers[n].get(id_, "") for n in names)])
    wrong = {name: {i for i in truth if answers[name].get(i) != truth[i]} for name in names}
    everyone = set.intersection(*wrong.values())
    print(f"\nper-article answers: {path}")
    print("| model | articles wrong | also wrong for TF-IDF | wrong for every model and TF-IDF |")
    print("|---|---|---|---|")
    for name in names:
        shared = "-" if name == "tfidf" else len(wrong[name] & wrong["tfidf"])
        print(f"| {name} | {len(wrong[name])} | {shared} | {len(everyone)} |")
    shown = sorted(everyone, key=lambda i: (fold_of[i], i))
    if shown:
        listed = ", ".join(f"{i} ({truth[i]} -> {answers['tfidf'][i]})" for i in shown[:40])
        more = f", and {len(shown) - 40} more (in the CSV)" if len(shown) > 40 else ""
        print(f"wrong for all (category -> TF-IDF's answer): {listed}{more}")


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
    parser.add_argument(
        "--folds",
        type=int,
        default=0,
        help="K >= 2: train and test each model on every fold of a grouped, stratified K-fold split "
        "(data.folds=K, data.fold=0..K-1) and pool the K test folds: every article is tested once",
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="with --folds: train this many folds at once, a process each"
    )
    parser.add_argument(
        "--predictions",
        default=None,
        help="with --folds: a CSV of every article's category and each model's (and TF-IDF's) answer, "
        "and a table of the errors they share",
    )
    parser.add_argument("--override", nargs="*", default=[], help="extra Hydra overrides for every model")
    parser.add_argument("--out", default=None, help="the result's JSON file (default: under bench/results/)")
    args = parser.parse_args()
    if (args.predictions or args.jobs > 1) and not args.folds:
        parser.error("--predictions and --jobs go with --folds K")
    epochs = {**DEFAULT_EPOCHS, **{k: int(v) for k, v in (e.split("=") for e in args.epochs)}}
    quiet()
    result = cross_validation(args, epochs) if args.folds else single_split(args, epochs)
    write_bench_result("news", result, args.out)


if __name__ == "__main__":
    main()
