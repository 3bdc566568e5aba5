"""The files a run leaves for the tools and sweeps that read it later, written and read here once: metrics.json
(one `RunRecord`), history.csv, and JSON files in general (`write_json`)."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

# What a run's metrics.json says about how it ran (hw2lab.pipeline.run): wall time of the whole run and of
# training, epochs run and the best one (counted from 1), torch threads, the code's commit.
PROVENANCE = ("duration_s", "fit_s", "epochs", "best_epoch", "torch_threads", "git_commit", "git_dirty")


@dataclass
class RunRecord:
    """One run as its metrics.json describes it (hw2lab.pipeline.run writes one, also when the run failed)."""

    dir: Path
    task: str = ""
    status: str = "unknown"
    command: str = ""
    date: str = ""
    machine: dict[str, Any] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    hparams: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    # an Optuna trial stopped with its search and queued again as a new trial (hw2lab.tools.optuna_sweeper)
    retried: bool = False
    provenance: dict[str, Any] = field(default_factory=dict)  # the PROVENANCE keys the file holds

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def read_run(path: Path) -> RunRecord:
    """A run's metrics.json. Files older than the `command` and `date` keys get the command their overrides
    make and the file's time (it is written when the run ends)."""
    data = json.loads(path.read_text())
    overrides = list(data.get("overrides", []))
    date = data.get("date") or datetime.fromtimestamp(path.stat().st_mtime).isoformat(timespec="seconds")
    return RunRecord(
        dir=path.parent,
        task=data.get("task", ""),
        status=data.get("status", "unknown"),
        command=data.get("command") or " ".join(["python run.py", *overrides]),
        date=date,
        machine=data.get("machine") or {},
        overrides=overrides,
        metrics=data.get("metrics", {}),
        hparams=data.get("hparams", {}),
        notes=data.get("notes", {}),
        error=data.get("error", ""),
        retried=bool(data.get("retried", False)),
        provenance={key: data[key] for key in PROVENANCE if key in data},
    )


def write_json(path: Path, payload: Any, indent: int = 2, sort_keys: bool = False) -> Path:
    """`payload` as JSON in `path` (its folder made), ending in a newline; a value JSON has no type for (a
    path, a date) is written as its str."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=indent, sort_keys=sort_keys, default=str) + "\n")
    return path


def write_history(rows: list[dict[str, float]], path: Path) -> None:
    """history.csv: one row per epoch, `epoch` first, then every metric by name."""
    columns = ["epoch"] + sorted({key for row in rows for key in row if key != "epoch"})
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def read_history(path: Path) -> list[dict[str, float]]:
    """history.csv's rows as numbers; an epoch that did not log a metric has NaN there."""
    with open(path, newline="") as handle:
        return [
            {key: float(value) if value not in ("", None) else math.nan for key, value in row.items()}
            for row in csv.DictReader(handle)
        ]
