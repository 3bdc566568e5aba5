"""The results each task declares in `conf/results/<task>.yaml`: its runs (a command as typed, what each budget
changes, the record it lands in) and its rows (what README, the report and the task's doc show).

Read by the report (which rows, filled from which records) and by reproduce (which commands, per budget); a
new task adds its own file, there is no shared list. The format is in docs/developing.md.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DECLARATIONS = REPO_ROOT / "conf" / "results"
BUDGETS = ("smoke", "cpu", "full")
# What a budget adds to a `python run.py` command unless the run says otherwise (cpu: nothing).
RUN_PY_BUDGETS: dict[str, tuple[str, ...]] = {
    "smoke": ("trainer=debug",),
    "cpu": (),
    "full": ("trainer=gpu",),
}
# Tokens that change where or how fast a run goes, never what it computes (compared away by `same_settings`).
INCIDENTAL_KEYS = {"trainer", "num_threads", "logger", "hydra/launcher"}


def token_key(token: str) -> str:
    """What a token sets: `key` of `[+~]key=value`, `--flag` of `--flag=value`, else the token itself."""
    if token.startswith("--"):
        return token.split("=", 1)[0]
    return token.lstrip("+~").split("=", 1)[0] if "=" in token else token


def units(tokens: list[str]) -> list[list[str]]:
    """The tokens in units that one key sets: `key=value`, `--flag=value`, `--flag value`, or a lone token."""
    grouped: list[list[str]] = []
    for token in tokens:
        previous = grouped[-1] if grouped else None
        if (
            previous is not None
            and len(previous) == 1
            and previous[0].startswith("--")
            and "=" not in previous[0]
            and not token.startswith("-")
            and "=" not in token
        ):
            previous.append(token)
        else:
            grouped.append([token])
    return grouped


def merge(command: list[str], changes: list[str]) -> list[str]:
    """`command` with each of `changes` in place of the unit setting the same key, or appended."""
    merged = units(command)
    for change in units(changes):
        key = token_key(change[0])
        at = [i for i, unit in enumerate(merged) if token_key(unit[0]) == key]
        if at:
            merged[at[0]] = change
        else:
            merged.append(change)
    return [token for unit in merged for token in unit]


@dataclass(frozen=True)
class RunSpec:
    """A declared run: one command (a `run.py` run or sweep, or a bench script) and its settings per budget."""

    task: str
    name: str
    command: str
    record: str  # results/<task>/<name>.json: where the full budget's record goes
    budgets: dict[str, tuple[str, ...] | None]  # tokens each budget adds; None: not in that budget
    why: str = ""  # why the cpu budget changes what it changes
    minutes: float | None = None  # a job's wall time, course's settings, one core of a 2-core CPU
    minutes_source: str = ""

    @property
    def id(self) -> str:
        return f"{self.task}/{self.name}"

    @property
    def is_bench(self) -> bool:
        return not self.tokens_as_typed[1:2] == ["run.py"]

    @property
    def tokens_as_typed(self) -> list[str]:
        return shlex.split(self.command)

    def tokens(self, budget: str) -> list[str] | None:
        """The command that budget runs, or None where the run is not in it."""
        changes = self.budgets.get(budget)
        if changes is None:
            return None
        tokens = self.tokens_as_typed
        if budget == "smoke":
            # trainer=debug makes one short epoch, but epochs set on the command line would win over it
            changes = (
                tuple(f"{t.split('=')[0]}=1" for t in tokens if token_key(t) == "trainer.max_epochs")
                + changes
            )
        return merge(tokens, list(changes))

    def command_for(self, budget: str) -> str | None:
        tokens = self.tokens(budget)
        return None if tokens is None else " ".join(tokens)

    def changed(self, budget: str) -> list[str]:
        """The tokens of `budget` that change what is computed (not the trainer preset, threads, logger)."""
        return [t for t in self.budgets.get(budget) or () if token_key(t) not in INCIDENTAL_KEYS]

    def same_settings(self, budget: str, other: str) -> bool:
        """True when both budgets compute the same thing (they differ at most in incidental tokens)."""
        a, b = self.tokens(budget), self.tokens(other)
        if a is None or b is None:
            return False

        def essential(tokens: list[str]) -> list[str]:
            return [t for t in tokens if token_key(t) not in INCIDENTAL_KEYS]

        return essential(a) == essential(b)

    def record_key(self, budget: str) -> str | None:
        """The record's path inside results/ without `.json`: `<task>/<name>` for full, `<task>/cpu/<name>`
        for cpu; smoke is never recorded."""
        if budget == "smoke":
            return None
        stem = Path(self.record).stem
        return f"{self.task}/{stem}" if budget == "full" else f"{self.task}/cpu/{stem}"

    def record_keys(self, budget: str) -> list[str]:
        """The records that hold this budget's figure: its own, and the other budget's where both compute
        the same thing."""
        keys = [self.record_key(budget)]
        other = {"cpu": "full", "full": "cpu"}.get(budget)
        if other and self.same_settings(budget, other):
            keys.append(self.record_key(other))
        return [key for key in keys if key]


@dataclass
class TaskResults:
    """One task's declaration file."""

    task: str
    figure: str  # a single run's key figure (file name under figures/); a sweep's is comparison.png
    runs: dict[str, RunSpec]
    rows: list[dict[str, Any]] = field(default_factory=list)
    order: int = 0  # where the task comes in README and the report (the course's order)

    def runs_of(self, row: dict[str, Any]) -> list[RunSpec]:
        names = row["run"] if isinstance(row["run"], list) else [row["run"]]
        return [self.runs[name] for name in names]


def load_declarations(folder: Path = DECLARATIONS) -> dict[str, TaskResults]:
    """Every `<folder>/<task>.yaml`, by task, in the files' `order` (then by name)."""
    tasks = [load_task(path) for path in sorted(folder.glob("*.yaml"))]
    return {t.task: t for t in sorted(tasks, key=lambda t: t.order)}


def load_task(path: Path) -> TaskResults:
    task = path.stem
    data = yaml.safe_load(path.read_text()) or {}
    unknown = set(data) - {"order", "figure", "runs", "rows", "bench_budgets"}
    if unknown:
        raise ValueError(f"{path}: unknown top-level keys {sorted(unknown)}")
    bench_budgets = data.get("bench_budgets") or {}
    runs = {}
    for name, entry in (data.get("runs") or {}).items():
        command = entry["command"]
        run_py = shlex.split(command)[1:2] == ["run.py"]
        budgets: dict[str, tuple[str, ...] | None] = {}
        for budget in BUDGETS:
            value = entry.get(budget, RUN_PY_BUDGETS[budget] if run_py else bench_budgets.get(budget, ()))
            budgets[budget] = None if value == "skip" else tuple(value)
        record = entry["record"]
        if not (record.startswith(f"results/{task}/") and record.endswith(".json")):
            raise ValueError(f"{path}: run {name}'s record must be results/{task}/<name>.json, got {record}")
        runs[name] = RunSpec(
            task=task,
            name=name,
            command=command,
            record=record,
            budgets=budgets,
            why=entry.get("why", ""),
            minutes=entry.get("minutes"),
            minutes_source=entry.get("minutes_source", ""),
        )
    rows = list(data.get("rows") or [])
    result = TaskResults(task, data.get("figure", "learning_curves.png"), runs, rows, data.get("order", 0))
    for row in rows:
        missing = [n for n in (row["run"] if isinstance(row["run"], list) else [row["run"]]) if n not in runs]
        if missing:
            raise ValueError(f"{path}: row {row['label']!r} names no declared run {missing}")
    return result
