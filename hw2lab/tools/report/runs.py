"""The runs a report shows: each finished run's metrics.json, and the runs of the committed records."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hw2lab.run_files import PROVENANCE, read_run

# Smoke runs are not results.
SMOKE_OVERRIDES = re.compile(r"^(trainer=debug|trainer\.limit_\w+=|trainer\.fast_dev_run=)")


@dataclass
class Run:
    """One finished run, from its metrics.json or from a committed record."""

    task: str
    command: str
    date: str
    machine: dict[str, Any]
    overrides: list[str]
    metrics: dict[str, float]
    hparams: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # the metrics.json or record it came from
    figures: list[Path] = field(default_factory=list)
    record: str = ""  # a committed record's path in results/ without `.json` (e.g. `vae/kl_tibetan`)
    provenance: dict[str, Any] = field(default_factory=dict)  # run_files.PROVENANCE: wall times, epochs, ...
    notes: dict[str, Any] = field(default_factory=dict)  # what the data and callbacks noted (run_notes)

    def value(self, key: str) -> Any:
        """A row's metric: a logged one (`test/acc`), or a note by its path (`notes.split_sizes.test`);
        None where the run has neither."""
        if key in self.metrics:
            return self.metrics[key]
        if not key.startswith("notes."):
            return None
        found: Any = self.notes
        for part in key.split(".")[1:]:
            found = found.get(part) if isinstance(found, dict) else None
        return found

    @property
    def settings(self) -> dict[str, str]:
        """Overrides as {key: value}, Hydra's backslash escapes removed (`00\\:15` is `00:15`)."""
        pairs = (o.lstrip("+~").split("=", 1) for o in self.overrides if "=" in o)
        return {key: re.sub(r"\\(.)", r"\1", value) for key, value in pairs}

    def lookup(self, key: str) -> tuple[bool, Any]:
        """A setting by the name a row uses: an override as typed, `task`, or a hyper-parameter (its full
        flattened name, or the last part of it when only one hyper-parameter ends so)."""
        if key == "task":
            return True, self.task
        if key in self.settings:
            return True, self.settings[key]
        if key in self.hparams:
            return True, self.hparams[key]
        ending = [value for name, value in self.hparams.items() if name.endswith("." + key)]
        return (True, ending[0]) if len(ending) == 1 else (False, None)

    def matches(self, where: dict[str, Any]) -> bool:
        """True for exactly the row's configuration: every `where` key as wanted, and no other override that
        changes what is computed (seeds, loggers, threads, devices and Hydra's own settings do not)."""
        if any(key not in where and not _incidental(key) for key in self.settings):
            return False
        for key, wanted in where.items():
            if wanted is None:  # not overridden
                if key in self.settings:
                    return False
                continue
            found, value = self.lookup(key)
            choices = wanted if isinstance(wanted, list) else [wanted]  # a list: any of (folds, split seeds)
            if not found or not any(same_value(value, choice) for choice in choices):
                return False
        return True


INCIDENTAL = {
    "seed",
    "logger",
    "num_threads",
    "download",
    "test",
    "resume",
    "matmul_precision",
    "trainer",
    "trainer.accelerator",
    "trainer.devices",
    "trainer.precision",
    "trainer.enable_progress_bar",
}
INCIDENTAL_PREFIXES = ("hydra.", "hydra/", "paths.")


def _incidental(key: str) -> bool:
    return key in INCIDENTAL or key.startswith(INCIDENTAL_PREFIXES)


def same_value(value: Any, wanted: Any) -> bool:
    try:
        return math.isclose(float(value), float(wanted))
    except (TypeError, ValueError):
        return str(value) == str(wanted)


def run_from_metrics(path: Path) -> Run | None:
    """A finished, non-smoke run's metrics.json as a Run with its figures; None for any other."""
    record = read_run(path)
    if not record.ok or any(SMOKE_OVERRIDES.match(o) for o in record.overrides):
        return None
    return Run(
        task=record.task,
        command=record.command,
        date=record.date[:10],
        machine=record.machine,
        overrides=record.overrides,
        metrics=record.metrics,
        hparams=record.hparams,
        source=str(path),
        figures=sorted((path.parent / "figures").glob("*.png")),
        provenance=record.provenance,
        notes=record.notes,
    )


def record_key(path: Path, records: Path) -> str:
    """A record's name as rows and runs give it: its path in results/ without `.json`."""
    return path.relative_to(records).with_suffix("").as_posix()


def collect_runs(roots: list[Path], records: Path) -> list[Run]:
    """Every finished, non-smoke run below `roots` (outputs/, multirun/, reproduce/), and every run of the
    committed records (each with its record's figure, `<record>.png`, where one is committed)."""
    runs = []
    for root in roots:
        for path in sorted(root.glob("**/metrics.json")) if root.is_dir() else []:
            run = run_from_metrics(path)
            if run is not None:
                runs.append(run)
    seen = {(r.command, r.date, json.dumps(r.metrics, sort_keys=True)) for r in runs}
    for path in sorted(records.glob("**/*.json")) if records.is_dir() else []:
        figure = path.with_suffix(".png")
        for item in json.loads(path.read_text()).get("runs", []):
            run = Run(
                **{k: item[k] for k in ("task", "command", "date", "machine", "overrides", "metrics")},
                hparams=item.get("hparams", {}),
                source=str(path),
                figures=[figure] if figure.is_file() else [],
                record=record_key(path, records),
                provenance={key: item[key] for key in PROVENANCE if key in item},
                notes=item.get("notes", {}),
            )
            if (run.command, run.date, json.dumps(run.metrics, sort_keys=True)) not in seen:
                runs.append(run)  # a run also found in the outputs is shown once, from there
    return runs
