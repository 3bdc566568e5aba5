"""Look at an Optuna search, finished or running: its trials as a markdown table and Optuna's figures.

    python -m hw2lab.search_report <storage URL> <study name> [--out DIR]

writes `optuna_history.png` (optimisation history), `optuna_importances.png` (parameter importances, fANOVA),
`optuna_parallel.png` (parallel coordinates), `optuna_trials.md` (the table) and `optimization_results.yaml`
(best parameters and value) into DIR (default: the current folder). A sweep with hw2lab's Optuna sweeper
writes the same at its sweep root when it ends, and summary.md quotes the table.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from hw2lab.errors import HW2LabError
from hw2lab.tables import format_cell, markdown_table
from hw2lab.tools.optuna_study import NOT_RUN, open_storage, quiet_optuna, shown_url

log = logging.getLogger("hw2lab")

FIGURES = {
    "optuna_history.png": "plot_optimization_history",
    "optuna_importances.png": "plot_param_importances",
    "optuna_parallel.png": "plot_parallel_coordinate",
}
TRIALS_FILE = "optuna_trials.md"
RESULTS_FILE = "optimization_results.yaml"


def trials_table(study: optuna.Study, storage_url: str | None = None) -> list[str]:
    """Markdown: the study's name, storage and direction, its best trial and one row per trial."""
    trials = study.get_trials(deepcopy=False)
    names = sorted({name for t in trials for name in t.params})
    states = {state: sum(t.state == state for t in trials) for state in TrialState}
    direction = study.direction.name.lower()
    lines = [
        f"## Optuna study `{study.study_name}`",
        "",
        f"Storage `{shown_url(storage_url) if storage_url else '?'}`, direction {direction}; "
        + ", ".join(f"{count} {state.name.lower()}" for state, count in states.items() if count)
        + f" of {len(trials)} trials.",
    ]
    best = _best(study)
    if best is not None:
        lines += ["", f"Best: trial {best.number}, value {best.value:.6g}, `{_params(best)}`."]
    retried_as = {}
    for t in trials:
        history = RetryHeartbeatStaleTrialCallback.retry_history(t)
        if history:
            retried_as[history[-1]] = t.number
    rows = []
    for t in trials:
        duration = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start
            else None
        )
        note = []
        if t.number in retried_as:
            note.append(f"retried as trial {retried_as[t.number]}")
        retry_of = RetryHeartbeatStaleTrialCallback.retried_trial_number(t)
        if retry_of is not None:
            note.append(f"retry of trial {RetryHeartbeatStaleTrialCallback.retry_history(t)[-1]}")
        if t.user_attrs.get(NOT_RUN):
            note.append("not run: past n_trials")
        rows.append(
            [
                t.number,
                t.state.name.lower(),
                "" if t.value is None else f"{t.value:.6g}",
                *[format_cell(t.params.get(name), digits=4) for name in names],
                "" if duration is None else f"{duration:.1f}",
                "; ".join(note),
            ]
        )
    header = ["trial", "state", "value", *names, "duration (s)", "note"]
    return [*lines, "", *markdown_table(header, rows)]


def write_report(
    study: optuna.Study, out: Path, storage_url: str | None = None, figures: bool = True
) -> list[Path]:
    """The figures, optuna_trials.md and optimization_results.yaml in `out`; returns the files written.
    A figure Optuna cannot draw yet (e.g. importances before two trials completed) is skipped with a line."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    table = out / TRIALS_FILE
    table.write_text("\n".join(trials_table(study, storage_url)) + "\n")
    written.append(table)
    best = _best(study)
    results = {
        "name": "optuna",
        "study_name": study.study_name,
        "storage": shown_url(storage_url) if storage_url else None,
        "direction": study.direction.name.lower(),
        "best_trial": best.number if best else None,
        "best_params": dict(best.params) if best else {},
        "best_value": float(best.value) if best else None,
    }
    (out / RESULTS_FILE).write_text(yaml.safe_dump(results, sort_keys=False))
    written.append(out / RESULTS_FILE)
    if figures:
        written += write_figures(study, out)
    return written


def write_figures(study: optuna.Study, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    written = []
    for name, function in FIGURES.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = getattr(plots, function)(study)
            figure = _figure(axes)
            figure.savefig(out / name, dpi=120, bbox_inches="tight")
            plt.close(figure)
            written.append(out / name)
        except Exception as error:  # too few trials for this figure: the others and the table still come
            log.warning("Optuna figure %s skipped: %s", name, " ".join(str(error).split()))
            plt.close("all")
    return written


def _figure(axes: Any):
    if hasattr(axes, "figure"):
        return axes.figure
    return axes.flat[0].figure  # an array of axes


def _best(study: optuna.Study) -> FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:  # no completed trial yet
        return None


def _params(trial: FrozenTrial) -> str:
    return " ".join(f"{k}={format_cell(v, digits=4)}" for k, v in trial.params.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("storage", help="the study's storage URL, e.g. sqlite:///multirun/vae/.../optuna.db")
    parser.add_argument("study", help="the study name (summary.md names it; the presets use the task name)")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for the figures and the table")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # the skipped figures' lines
    quiet_optuna()
    try:
        if args.storage.startswith("sqlite:"):
            from sqlalchemy.engine import make_url

            database = make_url(args.storage).database
            if not database or not Path(database).is_file():
                raise HW2LabError(f"no such database file: {database} (from {args.storage})")
        storage = open_storage(args.storage, heartbeat_interval=None)
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        if args.study not in names:
            raise HW2LabError(
                f"no Optuna study '{args.study}' in {shown_url(args.storage)}"
                + (f" (it has: {', '.join(names)})" if names else " (it has none)")
            )
        study = optuna.load_study(study_name=args.study, storage=storage)
        written = write_report(study, args.out, storage_url=args.storage)
    except HW2LabError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print("\n".join(trials_table(study, args.storage)))
    print("\nwrote " + ", ".join(str(p) for p in written))
    return 0
