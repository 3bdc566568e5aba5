"""What a reproduction runs: each declared run's jobs for a budget, and how long they take.

A `run.py` command is expanded into its jobs as Hydra's basic sweeper does (its `split_arguments`: the
preset's `hydra.sweeper.params` first, then the command's overrides, one job per combination); a bench
command is one job. The estimate per run comes from the records' own wall times where they hold them, from a bench record's
"seconds per run", or from the declaration's `minutes` (scaled to the budget's epochs), and the plan says which.
"""

from __future__ import annotations

import heapq
import json
import math
import statistics
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from hw2lab.compose import CONF_DIR
from hw2lab.tools.declared import RunSpec, token_key

# Starting a job (imports, composing, reading the data) costs 15-60 s whatever it trains (the former plan's
# figure); a smoke job is little more than that.
STARTUP_MINUTES = 0.5
SMOKE_MINUTES = 0.5


@dataclass(frozen=True)
class Job:
    """One process of a reproduction: a `run.py` run (its overrides) or a bench command (its arguments)."""

    spec: RunSpec
    budget: str
    index: int
    args: tuple[str, ...]  # run.py's overrides, or the bench script's path and arguments

    @property
    def label(self) -> str:
        return f"{self.spec.id} {self.index}"


@dataclass(frozen=True)
class Estimate:
    job_minutes: float  # per job, start-up included
    source: str


@dataclass(frozen=True)
class PlannedRun:
    spec: RunSpec
    budget: str
    jobs: tuple[Job, ...]
    estimate: Estimate

    @property
    def minutes(self) -> float:
        return self.estimate.job_minutes * len(self.jobs)


@cache
def composed(overrides: tuple[str, ...], hydra: bool = False) -> DictConfig:
    """The config `python run.py <overrides>` runs (with its `hydra` node when asked), composed in-process."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=hydra)


def expand(spec: RunSpec, budget: str) -> list[tuple[str, ...]]:
    """The jobs of a run in a budget: run.py's override lists (as Hydra's basic sweeper makes them), or the
    bench command's arguments as one job; [] where the run is not in the budget."""
    tokens = spec.tokens(budget)
    if tokens is None:
        return []
    if spec.is_bench:
        return [tuple(tokens[1:])]
    arguments = [t for t in tokens[2:] if t != "-m"]
    if "-m" not in tokens:
        return [tuple(arguments)]
    parser = OverridesParser.create()
    parsed = parser.parse_overrides(arguments)
    fixed = tuple(o.input_line for o in parsed if not o.is_sweep_override())
    params = composed(fixed, hydra=True).hydra.sweeper.get("params") or {}
    overrides = parser.parse_overrides([f"{key}={value}" for key, value in params.items()] + arguments)
    (batch,) = BasicSweeper.split_arguments(overrides, None)
    return [tuple(job) for job in batch]


def plan_run(spec: RunSpec, budget: str, records: Path) -> PlannedRun | None:
    jobs = expand(spec, budget)
    if not jobs:
        return None
    planned = tuple(Job(spec, budget, index, args) for index, args in enumerate(jobs))
    return PlannedRun(spec, budget, planned, estimate(spec, budget, planned, records))


def epochs(spec: RunSpec, budget: str) -> int | None:
    """trainer.max_epochs of the budget's first job (None for a bench)."""
    if spec.is_bench:
        return None
    for token in reversed(spec.tokens(budget) or []):
        if token_key(token) == "trainer.max_epochs":
            return int(token.split("=", 1)[1])
    value = composed(expand(spec, budget)[0]).trainer.get("max_epochs")
    return int(value) if isinstance(value, int) else None


def estimate(spec: RunSpec, budget: str, jobs: tuple[Job, ...], records: Path) -> Estimate:
    """A job's minutes: the records' wall times, a bench record's seconds per run, or the declared minutes
    (each for the course's settings on one core of a 2-core CPU, scaled to the budget's epochs)."""
    if budget == "smoke":
        return Estimate(SMOKE_MINUTES, "a smoke job: start-up and a few batches")
    scale, scaled = 1.0, ""
    if not spec.same_settings(budget, "full"):
        planned, course = epochs(spec, budget), epochs(spec, "full")
        if planned and course and planned != course:
            scale, scaled = planned / course, f", scaled to {planned} of {course} epochs"
    # A bench's record times its runs, not its start-up; a run's duration_s misses only the imports.
    startup = STARTUP_MINUTES if spec.is_bench else 0.0
    for key in spec.record_keys(budget):  # this budget's own record: no scaling
        walls = record_walls(records / f"{key}.json")
        if walls:
            return Estimate(statistics.mean(walls) / 60 + startup, f"wall times in results/{key}.json")
    walls = record_walls(records / f"{spec.record_key('full')}.json")
    if walls:
        minutes = statistics.mean(walls) / 60 * scale + startup
        return Estimate(minutes, f"wall times in {spec.record}{scaled}")
    if spec.minutes is not None:
        return Estimate(spec.minutes * scale + STARTUP_MINUTES, f"declared: {spec.minutes_source}{scaled}")
    return Estimate(STARTUP_MINUTES + 1, "no record holds its time and none is declared: a guess")


def record_walls(path: Path) -> list[float]:
    """Seconds per job a record holds: each run's `duration_s` (records since provenance), or a bench
    record's whole time (its settings' "seconds per run" × their runs)."""
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    if "runs" in data:
        return [float(r["duration_s"]) for r in data["runs"] if isinstance(r.get("duration_s"), int | float)]
    settings = data.get("result", {}).get("settings", []) if isinstance(data.get("result"), dict) else []
    seconds = [s["seconds per run"] * len(s.get("runs", [])) for s in settings if "seconds per run" in s]
    return [sum(seconds)] if seconds else []


def wall_minutes(planned: list[PlannedRun], slots: int) -> float:
    """The reproduction's wall time with `slots` jobs at a time, longest jobs first (as reproduce runs them)."""
    durations = sorted((r.estimate.job_minutes for r in planned for _ in r.jobs), reverse=True)
    finish = [0.0] * max(1, slots)
    for minutes in durations:
        heapq.heappush(finish, heapq.heappop(finish) + minutes)
    return max(finish) if durations else 0.0


def minutes_text(value: float) -> str:
    if value < 1:
        return f"{value * 60:.0f} s"
    if value < 90:
        return f"{value:.0f} min"
    return f"{math.floor(value / 60)} h {value % 60:02.0f} min"


def describe(planned: PlannedRun, extra: list[str] = ()) -> list[str]:
    """The plan's lines for one run: what it runs (with the `extra` overrides every run.py job gets), what the
    budget changes and why, and its estimate."""
    spec, budget = planned.spec, planned.budget
    added = [] if spec.is_bench else list(extra)
    lines = [
        f"{spec.id}: {len(planned.jobs)} job{'s' * (len(planned.jobs) != 1)}, "
        f"~{minutes_text(planned.minutes)} ({minutes_text(planned.estimate.job_minutes)} a job; "
        f"{planned.estimate.source})",
        f"    {' '.join([planned.spec.command_for(budget), *added])}",
    ]
    changed = spec.changed(budget)
    if budget == "cpu" and changed:
        lines.append(f"    cpu changes {' '.join(changed)} against the course's: {spec.why}")
    return lines


def course_setting(spec: RunSpec, key: str) -> str:
    """What the course's command sets `key` to: as typed in it, or the composed config's value."""
    for unit in reversed(spec.tokens("full") or []):
        if token_key(unit) == key:
            return unit.lstrip("+~")
    if spec.is_bench:
        return f"{key} (the bench's default)"
    value = OmegaConf.select(composed(expand(spec, "full")[0]), key.lstrip("+~"))
    return f"{key}={value}"
