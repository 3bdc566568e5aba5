"""The rows a task shows (its `rows:` in conf/results/<task>.yaml), each filled per budget from its run's records.

A row names its run. Run rows take the finished runs of exactly their configuration (`where`, plus what the
budget's command changes) from that run's records and from run outputs; bench rows read the run's bench
record at `at` + `metric`. Each row has a cpu and a full figure: where both budgets compute the same thing,
the same records fill both.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hw2lab.tools.declared import RunSpec, TaskResults, load_declarations, token_key
from hw2lab.tools.report.runs import Run, same_value

DATA = Path(__file__).resolve().parent / "data"
SHOWN_BUDGETS = ("cpu", "full")
NOT_RUN = "not run"
NOT_IN_BUDGET = "not in this budget"


@dataclass
class Figure:
    """One budget's figure of a row: the text, what stands beside it, and the runs (or bench) behind it."""

    measured: str = NOT_RUN
    beside: dict[str, str] = field(default_factory=dict)
    sources: list[Run] = field(default_factory=list)


@dataclass
class Row:
    """One line of a table: its cpu and full figures, the runs declared for it, and the course's number."""

    task: str
    label: str
    figures: dict[str, Figure]
    course: dict[str, Any] | None = None
    specs: list[RunSpec] = field(default_factory=list)
    readme: bool = True

    @property
    def measured(self) -> str:
        """The cpu figure where measured, else the full one ("not run" where neither is)."""
        shown = [f.measured for f in self.figures.values() if f.measured not in (NOT_RUN, NOT_IN_BUDGET)]
        return shown[0] if shown else NOT_RUN

    @property
    def shown(self) -> Figure:
        """The figure whose runs "beside" describes: full where measured, else cpu."""
        for budget in ("full", "cpu"):
            figure = self.figures.get(budget)
            if figure and figure.sources:
                return figure
        return Figure()

    @property
    def beside(self) -> dict[str, str]:
        return self.shown.beside

    @property
    def sources(self) -> list[Run]:
        found: dict[int, Run] = {}
        for figure in self.figures.values():
            found.update({id(run): run for run in figure.sources})
        return list(found.values())

    @property
    def same_settings(self) -> bool:
        return bool(self.specs) and all(spec.same_settings("cpu", "full") for spec in self.specs)

    @property
    def commands(self) -> list[str]:
        """The commands of the records behind the figures (as typed)."""
        return sorted({" ".join(map(as_typed, r.command.split(" "))) for r in self.sources})

    @property
    def declared_commands(self) -> list[str]:
        """The commands that produce the row, as declared (the course's settings)."""
        return list(dict.fromkeys(spec.command for spec in self.specs))

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
    """'0.812' for one value, 'mean ± sd (n = k)' for several (the sample sd), 'not run' for none."""
    numbers = _numbers(values)
    if not numbers:
        return NOT_RUN
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
    """`beside` / `best_of` / `metrics` as {shown name: key or path}: a mapping as written, or a list named by
    each key (its last path step; `short`: only what follows its last '_', e.g. acc_reversal -> reversal)."""
    if isinstance(keys, dict):
        return dict(keys)
    named = {}
    for key in keys or []:
        name = str(_path(key)[-1])
        named[name.rsplit("_", 1)[-1] if short else name] = key
    return named


# lookup(extra, key) -> (values, the runs or bench behind them); `extra` narrows the row (an `over` value).
Lookup = Callable[[dict[str, Any], Any], tuple[list[Any], list[Run]]]


def _beside(entry: dict[str, Any], values_of: Callable[[Any], list[Any]]) -> dict[str, str]:
    """What stands beside a figure: the best of each `best_of` group (highest mean), then each of `beside`.
    `best_of` is a list of keys ("best baseline") or {shown name: list of keys}."""
    shown = {}
    groups = entry.get("best_of")
    if groups is not None and not (
        isinstance(groups, dict) and all(isinstance(v, list) for v in groups.values())
    ):
        groups = {"best baseline": groups}
    for title, keys in (groups or {}).items():
        candidates = {name: _numbers(values_of(key)) for name, key in _named(keys, short=True).items()}
        candidates = {name: numbers for name, numbers in candidates.items() if numbers}
        if candidates:
            name = max(candidates, key=lambda n: statistics.mean(candidates[n]))
            shown[title] = f"{name} {summarise(candidates[name])}"
    for name, key in _named(entry.get("beside")).items():
        text = summarise(values_of(key))
        if text != NOT_RUN:
            shown[name] = text
    return shown


def _fill(entry: dict[str, Any], lookup: Lookup) -> Figure:
    """A figure from `lookup`: each of `metrics` (or the one `metric`) joined by " / ", once per `over` value."""
    metrics = _named(entry["metrics"]) if "metrics" in entry else {"": entry["metric"]}

    def measure(extra: dict[str, Any]) -> tuple[str, list[Run]]:
        parts, sources = [], []
        for key in metrics.values():
            values, found = lookup(extra, key)
            parts.append(summarise(values))
            sources += [run for run in found if all(run is not s for s in sources)]
        text = " / ".join(parts) if any(p != NOT_RUN for p in parts) else NOT_RUN
        return text, sources

    if "over" in entry:
        ((key, values),) = entry["over"].items()
        parts, sources = [], []
        for value in values:
            text, found = measure({key: value})
            parts.append(f"{value}: {text}")
            sources += [run for run in found if all(run is not s for s in sources)]
        return Figure(" · ".join(parts) if sources else NOT_RUN, {}, sources)
    measured, sources = measure({})
    if not sources:
        return Figure()
    return Figure(measured, _beside(entry, lambda key: lookup({}, key)[0]), sources)


def _budget_where(spec: RunSpec, budget: str) -> tuple[dict[str, Any], set[str] | None]:
    """What a budget's command changes as `where` keys, and the seeds it runs (None: any)."""
    where: dict[str, Any] = {}
    seeds = None
    for token in spec.changed(budget):
        if "=" not in token or token.startswith("-"):
            continue
        key, value = token_key(token), token.split("=", 1)[1]
        if key == "seed":
            seeds = set(value.split(","))
        else:
            where[key] = value
    return where, seeds


def _run_lookup(entry: dict[str, Any], specs: list[RunSpec], budget: str, runs: list[Run]) -> Lookup:
    keys = {key for spec in specs for key in spec.record_keys(budget)}
    candidates = [r for r in runs if r.task == specs[0].task and (r.record in keys or not r.record)]
    where_of = [_budget_where(spec, budget) for spec in specs]

    def lookup(extra: dict[str, Any], key: Any) -> tuple[list[Any], list[Run]]:
        matched = []
        for budget_where, seeds in where_of:
            wanted = {**entry.get("where", {}), **budget_where, **extra}
            for run in candidates:
                if run.value(key) is None or not run.matches(wanted) or any(run is m for m in matched):
                    continue
                if seeds is not None and str(run.lookup("seed")[1]) not in seeds:
                    continue
                matched.append(run)
        return [run.value(key) for run in matched], matched

    return lookup


def _at(at: list[Any], extra: dict[str, Any]) -> list[Any]:
    """`at` narrowed by an `over` value: merged into its last `{key: value}` step, or added as one."""
    if not extra:
        return at
    steps = list(at)
    for index in range(len(steps) - 1, -1, -1):
        if isinstance(steps[index], dict):
            steps[index] = {**steps[index], **extra}
            return steps
    return [*steps, dict(extra)]


def _bench_lookup(entry: dict[str, Any], specs: list[RunSpec], budget: str, benches: dict) -> Lookup:
    records = [benches[k] for spec in specs for k in spec.record_keys(budget) if k in benches]
    at = _path(entry.get("at", []))

    def lookup(extra: dict[str, Any], key: Any) -> tuple[list[Any], list[Run]]:
        for bench in records:
            values = value_at(bench["result"], [*_at(at, extra), *_path(key)])
            if values:
                return values, [bench_run(bench)]
        return [], []

    return lookup


def bench_run(bench: dict[str, Any]) -> Run:
    """A bench record as the source of a figure (its command, date and machine)."""
    return Run(
        bench["bench"],
        bench["command"],
        bench["date"][:10],
        bench["machine"],
        [],
        {},
        source=bench["source"],
        record=bench.get("record", ""),
        figures=[Path(bench["source"]).with_suffix(".png")]
        if Path(bench["source"]).with_suffix(".png").is_file()
        else [],
    )


def build_rows(
    runs: list[Run],
    declarations: dict[str, TaskResults],
    course: dict[str, dict],
    benches: dict[str, dict[str, Any]] | None = None,
) -> list[Row]:
    """Every declared row, its cpu and full figures filled from `runs` and the bench records."""
    rows = []
    for task, declared in declarations.items():
        for entry in declared.rows:
            specs = declared.runs_of(entry)
            figures = {}
            for budget in SHOWN_BUDGETS:
                if all(spec.tokens(budget) is None for spec in specs):
                    figures[budget] = Figure(NOT_IN_BUDGET)
                elif specs[0].is_bench:
                    figures[budget] = _fill(entry, _bench_lookup(entry, specs, budget, benches or {}))
                else:
                    figures[budget] = _fill(entry, _run_lookup(entry, specs, budget, runs))
            row = Row(task, entry["label"], figures, course.get(entry.get("course")), specs)
            row.readme = entry.get("readme", True)
            rows.append(row)
    return rows


def load_spec() -> tuple[dict[str, TaskResults], dict[str, dict]]:
    """The declarations of every task and the course reports' numbers by id."""
    course = {item["id"]: item for item in yaml.safe_load((DATA / "course_reports.yaml").read_text())}
    return load_declarations(), course


def course_text(row: Row) -> str:
    return f"{row.course['value']} ({row.course['report']})" if row.course else ""


def beside_text(row: Row) -> str:
    return "; ".join(f"{k} {v}" for k, v in row.beside.items())


def as_typed(token: str) -> str:
    """An override as a user types it: Hydra's escapes removed, except `\\,` (which stops a sweep)."""
    return re.sub(r"\\([^,\\])", r"\1", token)
