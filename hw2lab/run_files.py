"""The files a run leaves for the tools and sweeps that read it later: history.csv, written and read here once."""

from __future__ import annotations

import csv
import math
from pathlib import Path


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
