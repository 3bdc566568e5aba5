"""The sweep-level outputs: summary.csv, summary.md and the task's comparison figure at the sweep root.

Runs as a Hydra callback after every job of a multirun has finished, whatever the launcher. Each job left
its metrics.json (also when it failed), so the summary is read from disk, not from the launcher.
A task adds its own parts through its config: `sweep_comparison` (the comparison figure) and `sweep_sections`
(extra summary.md sections, e.g. news' pooled cross-validation figures).

What those parts may use is `__all__`: the jobs they are given (`JobRecord`), `metric_order` (how the summary
orders metric names: test, val, train, then the rest) and `is_number` (a metric value that is a real number).
"""

from __future__ import annotations

import csv
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.utils import instantiate
from omegaconf import DictConfig

from hw2lab.run_files import RunRecord, read_run
from hw2lab.tables import format_cell, markdown_table

__all__ = ["JobRecord", "SweepSummary", "collect_jobs", "is_number", "metric_order", "write_summary"]

log = logging.getLogger("hw2lab")


@dataclass
class JobRecord(RunRecord):
    """One job of a sweep: its metrics.json (`RunRecord`), its number and what sets it apart from the others."""

    number: int = 0
    label: str = ""

    @property
    def failed(self) -> bool:
        return not self.ok and not self.retried


def collect_jobs(sweep_dir: Path) -> list[JobRecord]:
    """Read every job's metrics.json below the sweep dir and label each job by what sets it apart."""
    jobs = []
    for path in sorted(sweep_dir.glob("*/metrics.json")):
        number = int(path.parent.name) if path.parent.name.isdigit() else len(jobs)
        jobs.append(JobRecord(**vars(read_run(path)), number=number))
    jobs.sort(key=lambda job: job.number)
    shared = set.intersection(*(set(job.overrides) for job in jobs)) if jobs else set()
    for job in jobs:
        own = [o for o in job.overrides if o not in shared]
        job.label = " ".join(own) or f"job {job.number}"
    return jobs


def write_summary(
    jobs: list[JobRecord], sweep_dir: Path, sections: list[Callable[[list[JobRecord]], list[str]]] = ()
) -> tuple[Path, Path]:
    """summary.csv and summary.md; each of `sections` (the task config's `sweep_sections`) adds its own
    markdown lines to summary.md, given the jobs."""
    metric_keys = sorted({key for job in jobs for key in job.metrics}, key=metric_order)
    header = ["job", "status", "overrides", *metric_keys, "error"]
    rows = [
        [job.number, job.status, " ".join(job.overrides)]
        + [format_cell(job.metrics.get(key)) for key in metric_keys]
        + [job.error]
        for job in jobs
    ]
    csv_path = sweep_dir / "summary.csv"
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    md_path = sweep_dir / "summary.md"
    shown = [key for key in metric_keys if key.startswith(("test/", "val/"))] or metric_keys
    lines = [
        f"# Sweep summary: {sweep_dir}",
        "",
        f"{sum(job.ok for job in jobs)} of {len(jobs)} jobs finished; every metric is in summary.csv.",
        "",
        *markdown_table(
            ["job", "status", "overrides", *shown],
            (
                [job.number, f"{job.status} (retried)" if job.retried else job.status, f"`{job.label}`"]
                + [format_cell(job.metrics.get(k)) for k in shown]
                for job in jobs
            ),
        ),
    ]
    study = sweep_dir / "optimization_results.yaml"  # written by the Optuna sweeper before this callback
    if study.exists():
        lines += [
            "",
            "## Hyper-parameter search: best parameters",
            "",
            "```yaml",
            study.read_text().strip(),
            "```",
        ]
    trials = sweep_dir / "optuna_trials.md"  # the study's trials (all workers, all reruns), same origin
    if trials.exists():
        lines += ["", *trials.read_text().strip().splitlines()]
    for section in sections:
        lines += section(jobs)
    failed = [job for job in jobs if job.failed]
    if failed:
        lines += ["", "## Failed jobs", ""] + [
            f"- job {job.number} (`{job.label}`): {job.error}" for job in failed
        ]
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path


def is_number(value: Any) -> bool:
    """A metric value that is an int or a float (a bool is not a number here)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def metric_order(key: str) -> tuple[int, str]:
    """Sort key for metric names: test/ first, then val/, train/ and the rest, each alphabetically."""
    order = {"test": 0, "val": 1, "train": 2}
    return order.get(key.split("/")[0], 3), key


class SweepSummary(Callback):
    """Hydra callback: after a multirun, write the summary and comparison; fail if any job failed."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        jobs = collect_jobs(sweep_dir)
        if not jobs:
            log.warning("no job of %s wrote metrics.json; nothing to summarise", sweep_dir)
            return
        sections = [instantiate(section) for section in config.get("sweep_sections") or []]
        csv_path, md_path = write_summary(jobs, sweep_dir, sections)
        log.info("sweep summary: %s", md_path)
        comparison = config.get("sweep_comparison")
        if comparison and any(job.ok for job in jobs):
            try:
                compare = instantiate(comparison)
                figure = compare([job for job in jobs if job.ok], sweep_dir)
                log.info("sweep comparison figure: %s", figure)
            except Exception as error:  # a broken figure must not hide the summary
                log.error("sweep comparison figure failed: %s: %s", type(error).__name__, error)
        failed = [job for job in jobs if job.failed]
        if failed:
            # Hydra turns exceptions raised by callbacks into warnings; SystemExit still sets the exit code.
            message = (
                f"{len(failed)} of {len(jobs)} jobs failed (first: job {failed[0].number}: {failed[0].error}); "
                f"see {md_path}"
            )
            log.error(message)
            print(f"error: {message}", file=sys.stderr)
            raise SystemExit(1)
