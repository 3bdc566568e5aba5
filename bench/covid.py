"""Does the recurrent model beat the forecasters' baselines? For every interval L and cell, over several
seeds (and, for split=time, rolling origins), in one process, on identical windows.

Each run goes through the real pipeline (`hw2lab.pipeline.fit_and_test`: best-val checkpoint, then test)
with the figure callbacks and the logger off; the baselines (`callbacks.covid.metrics.Baselines`: majority
class, logistic regression, persistence, reversal, seasonal naive, gradient-boosted trees) are fitted on the
same train windows and scored on the same test windows. Prints, per L x cell, test accuracy and AUROC (mean
and standard deviation over seeds x origins) of the model and of every baseline, and the model's margin
over the best baseline in points; writes every run's test metrics as JSON (`--out`, default under
bench/results/).

    HW2LAB_DATA_DIR=../shared/data python bench/covid.py [--intervals 3,5,7] [--cells rnn,lstm,gru]
        [--seeds 42,43,44] [--origins 0] [--out result.json] [extra Hydra overrides, e.g. data=covid_jhu]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from hw2lab.compose import bench_config, write_bench_result
from hw2lab.pipeline import fit_and_test
from lightning_modules.covid.baselines import BASELINES

FIGURES_OFF = [
    "~callbacks.correlation_heatmap",
    "~callbacks.world_map",
    "~callbacks.confusion_matrix",
    "~callbacks.learning_curves",
    "~callbacks.epoch_summary",
    "callbacks.reliability.figures_dir=null",
]
SCORES = ("acc", "auroc")


def run_one(overrides: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as output_dir:
        cfg = bench_config([*overrides, *FIGURES_OFF], output_dir)
        return fit_and_test(cfg, Path(output_dir))["metrics"]


def summarise(rows: list[dict[str, float]]) -> dict[str, float]:
    """Mean and standard deviation over runs of the model's and every baseline's acc and AUROC, and the
    model's margin in points over the best baseline (by its mean) of each score."""
    out: dict[str, float] = {"runs": len(rows)}
    for score in SCORES:
        model = np.array([row[f"test/{score}"] for row in rows])
        out[f"{score}"], out[f"{score} sd"] = float(model.mean()), float(model.std())
        best_name, best = None, -1.0
        for name in BASELINES:
            values = np.array([row.get(f"test/{score}_{name}", np.nan) for row in rows])
            out[f"{score}_{name}"] = float(np.mean(values))
            if np.mean(values) > best:
                best_name, best = name, float(np.mean(values))
        out[f"{score} best baseline"] = best_name
        out[f"{score} - best baseline, points"] = 100 * (out[score] - best)
    for key in ("test/brier", "test/f1", "test/f1_neg", "test/positive_rate", "train/positive_rate"):
        out[key] = float(np.mean([row[key] for row in rows if key in row]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--intervals", default="3,5,7")
    parser.add_argument("--cells", default="rnn,lstm,gru")
    parser.add_argument("--seeds", default="42,43,44")
    parser.add_argument("--origins", default="0", help="data.origin values (split=time: rolling origins)")
    parser.add_argument(
        "--out", help="where to write the JSON result (default: bench/results/covid-<time>.json)"
    )
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = parser.parse_intermixed_args()  # overrides may come before and after the options
    for name in ("lightning", "lightning.pytorch", "hw2lab"):
        logging.getLogger(name).setLevel(logging.ERROR)
    intervals = [int(v) for v in args.intervals.split(",")]
    cells, seeds = args.cells.split(","), [int(v) for v in args.seeds.split(",")]
    origins = [int(v) for v in args.origins.split(",")]

    print(f"covid bench: seeds {seeds}, origins {origins}, overrides {args.overrides or 'none'}")
    short = {"majority": "maj", "logreg": "LR", "persistence": "pers", "reversal": "rev", "seasonal": "seas"}
    names = [short.get(name, name) for name in BASELINES]
    header = (
        f"{'L':>2} {'cell':<4} | {'acc':>5} {'sd':>5} {'AUROC':>5} {'sd':>5} | "
        + " ".join(f"{n:>5}" for n in names)
        + " | "
        + " ".join(f"{n:>5}" for n in names)
        + " | acc-best AUROC-best | s/run"
    )
    print(" " * 35 + "baselines: accuracy" + " " * 23 + "baselines: AUROC")
    print(header)
    print("-" * len(header))
    settings = []
    for interval in intervals:
        for cell in cells:
            rows, seconds = [], []
            for origin in origins:
                for seed in seeds:
                    started = time.perf_counter()
                    overrides = ["task=covid", f"interval={interval}", f"cell={cell}", f"seed={seed}"]
                    rows.append(run_one([*overrides, f"data.origin={origin}", *args.overrides]))
                    rows[-1].update({"seed": seed, "origin": origin})
                    seconds.append(time.perf_counter() - started)
            summary = summarise(rows)
            settings.append(
                {"interval": interval, "cell": cell, **summary, "seconds per run": float(np.mean(seconds))}
            )
            settings[-1]["runs"] = rows
            print(
                f"{interval:>2} {cell:<4} | {summary['acc']:5.3f} {summary['acc sd']:5.3f} "
                f"{summary['auroc']:5.3f} {summary['auroc sd']:5.3f} | "
                + " ".join(f"{summary[f'acc_{name}']:5.3f}" for name in BASELINES)
                + " | "
                + " ".join(f"{summary[f'auroc_{name}']:5.3f}" for name in BASELINES)
                + f" | {summary['acc - best baseline, points']:+8.2f} "
                f"{summary['auroc - best baseline, points']:+11.2f} | {np.mean(seconds):5.1f}",
                flush=True,
            )
    print(
        "\nmean over seeds x origins; sd: standard deviation over them; acc-best / AUROC-best: the model "
        "minus the best baseline of that score, in points."
    )
    write_bench_result(
        "covid",
        {"seeds": seeds, "origins": origins, "overrides": args.overrides, "settings": settings},
        args.out,
    )


if __name__ == "__main__":
    main()
