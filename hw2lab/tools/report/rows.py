"""The rows a task shows (data/rows.yaml), each filled from the runs or bench records that hold it."""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hw2lab.tools.report.runs import Run, same_value

DATA = Path(__file__).resolve().parent / "data"


@dataclass
class Row:
    """One line of a table: a figure, what holds it (runs, or one bench record shown as a Run) and what
    stands beside it."""

    task: str
    label: str
    measured: str
    beside: dict[str, str]
    course: dict[str, Any] | None
    sources: list[Run]
    readme: bool = True

    @property
    def commands(self) -> list[str]:
        return sorted({" ".join(map(as_typed, r.command.split(" "))) for r in self.sources})

    @property
    def date(self) -> str:
        return max((r.date for r in self.sources), default="")

    @property
    def machine(self) -> str:
        machines = {machine_text(r.machine) for r in self.sources}
        return "; ".join(sorted(machines))


def _numbers(values: list[Any]) -> list[float]:
    return [
        float(v)
        for v in values
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    ]


def summarise(values: list[Any]) -> str:
    """'0.812' for one value, 'mean ± sd (n = k)' for several, 'not run' for none."""
    numbers = _numbers(values)
    if not numbers:
        return "not run"
    if len(numbers) == 1:
        return f"{numbers[0]:.4g}"
    return f"{statistics.mean(numbers):.4g} ± {statistics.stdev(numbers):.2g} (n = {len(numbers)})"


def machine_text(machine: dict[str, Any]) -> str:
    if not machine:
        return "unknown"
    text = f"{machine.get('cpu', '?')} ({machine.get('cpu_count', '?')} cores)"
    return f"{text}, {machine['gpu']}" if machine.get("gpu") else f"{text}, no GPU"


def value_at(data: Any, path: list[Any]) -> list[Any]:
    """The values at `path` in a bench result: a key, a list index, `{key: value, ...}` (the list item with
    those values) or "*" (every item: several values, summarised as mean ± sd). [] where it leads nowhere."""
    found = [data]
    for step in path:
        following = []
        for item in found:
            if step == "*" and isinstance(item, list):
                following += item
            elif isinstance(step, dict) and isinstance(item, list):
                following += [
                    x
                    for x in item
                    if isinstance(x, dict) and all(k in x and same_value(x[k], v) for k, v in step.items())
                ][:1]
            elif isinstance(step, int) and isinstance(item, list) and -len(item) <= step < len(item):
                following.append(item[step])
            elif isinstance(item, dict) and not isinstance(step, dict) and str(step) in item:
                following.append(item[str(step)])
        found = following
    return found


def _path(key: Any) -> list[Any]:
    return list(key) if isinstance(key, list) else [key]


def _named(keys: Any, short: bool = False) -> dict[str, Any]:
    """`beside` / `best_of` as {shown name: key or path}: a mapping as written, or a list named by each key
    (its last path step; `short`: only what follows its last '_', e.g. acc_reversal -> reversal)."""
    if isinstance(keys, dict):
        return dict(keys)
    named = {}
    for key in keys or []:
        name = str(_path(key)[-1])
        named[name.rsplit("_", 1)[-1] if short else name] = key
    return named


def _beside(entry: dict[str, Any], values_of) -> dict[str, str]:
    """What stands beside a figure: the best of `best_of` (highest mean), then each of `beside`."""
    shown = {}
    candidates = {
        name: _numbers(values_of(key)) for name, key in _named(entry.get("best_of"), short=True).items()
    }
    candidates = {name: numbers for name, numbers in candidates.items() if numbers}
    if candidates:
        name = max(candidates, key=lambda n: statistics.mean(candidates[n]))
        shown["best baseline"] = f"{name} {summarise(candidates[name])}"
    for name, key in _named(entry.get("beside")).items():
        text = summarise(values_of(key))
        if text != "not run":
            shown[name] = text
    return shown


def build_rows(
    runs: list[Run],
    spec: dict[str, list[dict]],
    course: dict[str, dict],
    benches: dict[str, dict[str, Any]] | None = None,
) -> list[Row]:
    rows = []
    for task, entries in spec.items():
        for entry in entries:
            row = _bench_row(task, entry, benches or {}) if "bench" in entry else _run_row(task, entry, runs)
            row.course = course.get(entry.get("course"))
            row.readme = entry.get("readme", True)
            rows.append(row)
    return rows


def _run_row(task: str, entry: dict[str, Any], runs: list[Run]) -> Row:
    """A row filled by runs of exactly its configuration; with `over: {key: [values]}` one figure per value."""
    metric, where = entry["metric"], entry.get("where", {})

    def matching(extra: dict[str, Any]) -> list[Run]:
        wanted = {**where, **extra}
        return [r for r in runs if r.task == task and metric in r.metrics and r.matches(wanted)]

    if "over" in entry:
        ((key, values),) = entry["over"].items()
        parts, sources = [], []
        for value in values:
            matched = matching({key: value})
            sources += matched
            parts.append(f"{value}: {summarise([r.metrics[metric] for r in matched])}")
        measured = " · ".join(parts) if sources else "not run"
        return Row(task, entry["label"], measured, {}, None, sources)
    matched = matching({})
    measured = summarise([r.metrics[metric] for r in matched])
    beside = _beside(entry, lambda key: [r.metrics.get(key) for r in matched]) if matched else {}
    return Row(task, entry["label"], measured, beside, None, matched)


def _bench_row(task: str, entry: dict[str, Any], benches: dict[str, dict[str, Any]]) -> Row:
    """A row filled from one bench record (`bench: <bench>/<record>`), its values at `at` + `metric`."""
    bench = benches.get(entry["bench"])
    at = _path(entry.get("at", []))
    result = bench["result"] if bench else None
    values = value_at(result, [*at, *_path(entry["metric"])]) if bench else []
    measured = summarise(values)
    if measured == "not run":
        return Row(task, entry["label"], measured, {}, None, [])
    source = Run(
        bench["bench"], bench["command"], bench["date"][:10], bench["machine"], [], {}, source=bench["source"]
    )
    beside = _beside(entry, lambda key: value_at(result, [*at, *_path(key)]))
    return Row(task, entry["label"], measured, beside, None, [source])


def load_spec() -> tuple[dict[str, list[dict]], dict[str, dict]]:
    spec = yaml.safe_load((DATA / "rows.yaml").read_text())
    course = {item["id"]: item for item in yaml.safe_load((DATA / "course_reports.yaml").read_text())}
    return spec, course


def course_text(row: Row) -> str:
    return f"{row.course['value']} ({row.course['report']})" if row.course else ""


def beside_text(row: Row) -> str:
    return "; ".join(f"{k} {v}" for k, v in row.beside.items())


def as_typed(token: str) -> str:
    """An override as a user types it: Hydra's escapes removed, except `\\,` (which stops a sweep)."""
    return re.sub(r"\\([^,\\])", r"\1", token)
