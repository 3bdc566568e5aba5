"""Do the recurrent models beat the baselines? RNN / LSTM / GRU against the majority class and logistic
regression, on identical windows, for every interval L and cell, over several seeds, in one process.

Each run goes through the real pipeline (`hw2lab.pipeline.fit_and_test`: best-val checkpoint, then test)
with the figure callbacks and the logger off; the baselines (`callbacks.covid.Baselines`, kept on) are
fitted on the same train windows and scored on the same test windows. Prints test accuracy and F1 per
L x cell (mean over seeds) and the margins model - baseline in points, with the smallest margin over the
seeds, and writes them as JSON (`--out`, default under bench/results/).

    HW2LAB_DATA_DIR=../shared/data python bench/covid.py [--intervals 3,5,7] [--cells rnn,lstm,gru]
        [--seeds 42,43,44] [--out result.json] [extra Hydra overrides, e.g. data.split=time]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from hw2lab.compose import compose_config, write_bench_result  # noqa: E402
from hw2lab.pipeline import fit_and_test  # noqa: E402

QUIET = [
    "logger=none",
    "~callbacks.correlation_heatmap",
    "~callbacks.world_map",
    "~callbacks.confusion_matrix",
    "~callbacks.learning_curves",
    "~callbacks.epoch_summary",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]


def run_one(overrides: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as output_dir:
        cfg = compose_config([*overrides, *QUIET], output_dir)
        return fit_and_test(cfg, Path(output_dir))["metrics"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--intervals", default="3,5,7")
    parser.add_argument("--cells", default="rnn,lstm,gru")
    parser.add_argument("--seeds", default="42,43,44")
    parser.add_argument(
        "--out", help="where to write the JSON result (default: bench/results/covid-<time>.json)"
    )
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = parser.parse_args()
    for name in ("lightning", "lightning.pytorch", "hw2lab"):
        logging.getLogger(name).setLevel(logging.ERROR)
    intervals = [int(v) for v in args.intervals.split(",")]
    cells, seeds = args.cells.split(","), [int(v) for v in args.seeds.split(",")]

    print(f"covid bench: seeds {seeds}, overrides {args.overrides or 'none'}")
    header = (
        f"{'L':>2} {'cell':<4} | {'acc':>6} {'F1':>6} | {'acc maj':>7} {'acc LR':>7} {'F1 LR':>6} | "
        f"{'acc-maj':>7} {'acc-LR':>6} {'min':>6} {'F1-LR':>6} {'min':>6} | {'s/run':>5}"
    )
    print(header)
    print("-" * len(header))
    all_margins, settings = [], []
    for interval in intervals:
        for cell in cells:
            rows, seconds = [], []
            for seed in seeds:
                started = time.perf_counter()
                rows.append(
                    run_one(
                        [
                            "task=covid",
                            f"interval={interval}",
                            f"cell={cell}",
                            f"seed={seed}",
                            *args.overrides,
                        ]
                    )
                )
                seconds.append(time.perf_counter() - started)

            columns = {key: np.array([row[key] for row in rows]) for key in rows[0]}
            values = columns.__getitem__
            acc_vs_majority = 100 * (values("test/acc") - values("test/acc_majority"))
            acc_vs_logreg = 100 * (values("test/acc") - values("test/acc_logreg"))
            f1_vs_logreg = 100 * (values("test/f1") - values("test/f1_logreg"))
            all_margins.append((interval, cell, acc_vs_majority.min(), acc_vs_logreg.min()))
            settings.append(
                {
                    "interval": interval,
                    "cell": cell,
                    **{
                        f"{key} (mean)": float(values(key).mean())
                        for key in (
                            "test/acc",
                            "test/f1",
                            "test/acc_majority",
                            "test/acc_logreg",
                            "test/f1_logreg",
                        )
                    },
                    "acc - majority, points (mean)": float(acc_vs_majority.mean()),
                    "acc - logreg, points (mean)": float(acc_vs_logreg.mean()),
                    "acc - logreg, points (worst seed)": float(acc_vs_logreg.min()),
                    "f1 - logreg, points (mean)": float(f1_vs_logreg.mean()),
                    "f1 - logreg, points (worst seed)": float(f1_vs_logreg.min()),
                    "seconds per run": float(np.mean(seconds)),
                }
            )
            print(
                f"{interval:>2} {cell:<4} | {values('test/acc').mean():6.3f} {values('test/f1').mean():6.3f} | "
                f"{values('test/acc_majority').mean():7.3f} {values('test/acc_logreg').mean():7.3f} "
                f"{values('test/f1_logreg').mean():6.3f} | {acc_vs_majority.mean():+7.2f} {acc_vs_logreg.mean():+6.2f} "
                f"{acc_vs_logreg.min():+6.2f} {f1_vs_logreg.mean():+6.2f} {f1_vs_logreg.min():+6.2f} | "
                f"{np.mean(seconds):5.1f}",
                flush=True,
            )
    beaten = sum(1 for _, _, vs_majority, vs_logreg in all_margins if vs_majority > 0 and vs_logreg > 0)
    print(
        f"\nmargins in accuracy points (model - baseline), mean over seeds; 'min' is the worst seed. "
        f"{beaten} of {len(all_margins)} L x cell settings beat both baselines on every seed."
    )
    write_bench_result(
        "covid",
        {
            "seeds": seeds,
            "overrides": args.overrides,
            "settings": settings,
            "settings beating both baselines on every seed": beaten,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
