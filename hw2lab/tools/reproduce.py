"""Run the commands behind every declared result (conf/results/<task>.yaml), then write the report.

    python -m hw2lab.reproduce --budget cpu --dry-run        # the plan and its estimate, nothing run
    python -m hw2lab.reproduce --budget cpu                  # the course on a 2-core laptop CPU
    python -m hw2lab.reproduce --budget smoke --tasks vae    # every command for a few batches: the path works
    python -m hw2lab.reproduce --budget full --runs news/mpnet_7folds trainer=default   # one run, on a CPU
    python -m hw2lab.reproduce --budget full hydra/launcher=submitit_slurm hydra.launcher.partition=gpu

Budgets: `smoke` (each command with trainer=debug; never a result, never recorded), `cpu` (the declared cpu
settings), `full` (the course's settings with trainer=gpu). Each job runs in its own folder,
`<out>/<budget>/<task>/<run>/<job>`, `--jobs` at a time with `--threads` torch threads each; rerunning with
the same `--out` skips the finished jobs and continues the interrupted ones from their last.ckpt. Ctrl-C or
SIGTERM stops every job cleanly (exit 130 / 143). After a run's jobs have finished, its sweep summary and
comparison figure are written in its folder and (cpu, full) its record in results/. Anything after the
options goes to every run.py job; with a `hydra/launcher=` override each run is one Hydra multirun through
that launcher instead (e.g. SLURM), skipped when all its jobs have finished.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from hydra.utils import instantiate

from hw2lab.provenance import code_version, machine
from hw2lab.run_files import write_json
from hw2lab.sweep import collect_jobs, write_summary
from hw2lab.tools import report
from hw2lab.tools.declared import BUDGETS, REPO_ROOT, load_declarations
from hw2lab.tools.jobs import JobState, Runner, config_overrides, job_dir, prepare
from hw2lab.tools.plan import PlannedRun, composed, describe, minutes_text, plan_run, wall_minutes
from hw2lab.tools.report.records import portable, record, record_bench


def plan(
    budget: str, tasks: list[str], records: Path = REPO_ROOT / "results", runs: list[str] | None = None
) -> list[PlannedRun]:
    """The runs of the tasks asked for in that budget (only `runs`, ids `task/name`, when given), in their
    declarations' order."""
    declared = load_declarations()
    unknown = sorted(set(tasks) - set(declared))
    if unknown:
        raise SystemExit(f"error: unknown task(s) {', '.join(unknown)}; the tasks are {', '.join(declared)}")
    if budget not in BUDGETS:
        raise SystemExit(f"error: --budget must be one of {', '.join(BUDGETS)}, got {budget!r}")
    ids = [spec.id for task in tasks for spec in declared[task].runs.values()]
    unknown = sorted(set(runs or []) - set(ids))
    if unknown:
        raise SystemExit(f"error: unknown run(s) {', '.join(unknown)}; the runs are {', '.join(ids)}")
    planned = []
    for task in (t for t in declared if t in tasks):
        for spec in declared[task].runs.values():
            if runs and spec.id not in runs:
                continue
            run = plan_run(spec, budget, records)
            if run is not None:
                planned.append(run)
    return planned


def print_plan(planned: list[PlannedRun], budget: str, slots: int, extra: list[str] = ()) -> None:
    jobs = sum(len(r.jobs) for r in planned)
    summed = sum(r.minutes for r in planned)
    print(
        f"reproduce: budget {budget}, {len(planned)} runs, {jobs} jobs; estimated {minutes_text(summed)} of "
        f"jobs, {minutes_text(wall_minutes(planned, slots))} of wall time with {slots} at a time on a 2-core CPU",
        flush=True,
    )
    for index, run in enumerate(planned, start=1):
        first, *rest = describe(run, extra)
        print(f"[{index}/{len(planned)}] {first}", *rest, sep="\n", flush=True)


def finish_run(run: PlannedRun, states: list[JobState], out: Path, results: Path | None) -> None:
    """After the last job of a run: its sweep summary and comparison figure, and (cpu, full) its record."""
    folder = job_dir(out, run.jobs[0]).parent
    spec = run.spec
    if not spec.is_bench and "-m" in spec.tokens(run.budget):
        try:
            jobs = collect_jobs(folder)
            config = composed(tuple(config_overrides(run.jobs[0], [])))
            sections = [instantiate(section) for section in config.get("sweep_sections") or []]
            write_summary(jobs, folder, sections)
            if config.get("sweep_comparison") and any(job.ok for job in jobs):
                instantiate(config.sweep_comparison)([job for job in jobs if job.ok], folder)
        except Exception as error:  # a broken figure must not stop the reproduction
            print(f"    {spec.id}: summary or comparison failed: {type(error).__name__}: {error}", flush=True)
    if results is None or run.budget == "smoke" or any(s.status not in ("ok", "finished") for s in states):
        return
    task, name = spec.record_key(run.budget).split("/", 1)
    if spec.is_bench:
        target = record_bench(folder / "0" / "result.json", results, name, folder=task)
    else:
        target = record(folder, results, name)
    print(f"    {spec.id}: recorded in {target}", flush=True)


def launcher_run(run: PlannedRun, out: Path, extra: list[str]) -> int:
    """A whole run as one Hydra multirun through the launcher in `extra` (its jobs as the launcher places them)."""
    folder = job_dir(out, run.jobs[0]).parent
    tokens = [t for t in run.spec.tokens(run.budget)[2:] if t != "-m"]
    command = [sys.executable, str(REPO_ROOT / "run.py"), "-m", *tokens, *extra, f"hydra.sweep.dir={folder}"]
    print(f"[{run.spec.id}] {' '.join(command[1:])}", flush=True)
    return subprocess.run(command).returncode


def sittings_summary(
    path: Path,
    budget: str,
    tasks: list[str],
    command: str,
    started: str,
    elapsed: float,
    states: list[JobState],
) -> dict:
    """This sitting added to the earlier ones of the same reproduction (same `--out`, budget and tasks, whose
    summary is at `path`): the wall time is the sittings' sum, and a job's seconds are the time it ran in
    all of them (a job skipped as finished ran none in this one)."""
    earlier = json.loads(path.read_text()) if path.is_file() else {}
    if (earlier.get("budget"), earlier.get("tasks")) != (budget, tasks):
        earlier = {}
    version = code_version()
    # A summary written before sittings were kept is one sitting.
    sittings = earlier.get("sittings") or (
        [{"started": earlier["started"], "elapsed_s": earlier["elapsed_s"]}] if earlier else []
    )
    sittings = [
        *sittings,
        {"started": started, "elapsed_s": round(elapsed, 1), "git_commit": version["git_commit"]},
    ]
    jobs = {}
    for state in states:
        before = earlier.get("jobs", {}).get(state.job.label, {})
        status = before.get("status", "ok") if state.status == "finished" else state.status
        jobs[state.job.label] = {
            "status": status,
            "seconds": round(before.get("seconds", 0) + state.seconds, 1),
        }
    return {
        "budget": budget,
        "tasks": tasks,
        "command": command,
        "started": sittings[0]["started"],
        "elapsed_s": round(sum(s["elapsed_s"] for s in sittings), 1),
        "sittings": sittings,
        "summed_job_s": round(sum(job["seconds"] for job in jobs.values()), 1),
        "machine": machine(),
        **version,
        "jobs": jobs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hw2lab.reproduce", description=__doc__.split("\n")[0])
    parser.add_argument("--budget", default="smoke", help="smoke | cpu | full")
    parser.add_argument("--tasks", default="", help="comma-separated, default every declared task")
    parser.add_argument(
        "--runs", default="", help="comma-separated declared runs (task/name), default all of the tasks'"
    )
    parser.add_argument("--out", type=Path, default=Path("reproduce"), help="where the jobs' folders go")
    parser.add_argument("--jobs", type=int, default=2, help="jobs at a time")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per job")
    parser.add_argument("--results", type=Path, default=REPO_ROOT / "results", help="where records go")
    parser.add_argument("--no-record", action="store_true", help="write no record in results/")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and its estimate, run nothing")
    args, extra = parser.parse_known_args(argv)
    runs = [r for r in args.runs.split(",") if r]
    tasks = [t for t in args.tasks.split(",") if t] or list(
        dict.fromkeys(r.split("/")[0] for r in runs) if runs else load_declarations()
    )
    planned = plan(args.budget, tasks, args.results, runs)
    print_plan(planned, args.budget, args.jobs, extra)
    if args.dry_run:
        return 0
    results = None if args.no_record else args.results
    started, stamp = time.perf_counter(), datetime.now().isoformat(timespec="seconds")
    if any(o.startswith("hydra/launcher=") for o in extra):
        codes = [launcher_run(run, args.out, extra) for run in planned]
        return 0 if all(code == 0 for code in codes) else 1

    states_of = {
        id(run): [JobState(job, job_dir(args.out, job), run.estimate.job_minutes) for job in run.jobs]
        for run in planned
    }
    for states in states_of.values():
        for state in states:
            prepare(state, extra)
    finished = sum(s.status == "finished" for states in states_of.values() for s in states)
    if finished:
        print(f"reproduce: {finished} jobs already finished in {args.out}, skipped", flush=True)
    runner = Runner([s for states in states_of.values() for s in states], args.jobs, extra, args.threads)

    def on_finished(state: JobState) -> None:
        for run in planned:
            states = states_of[id(run)]
            if any(s is state for s in states) and all(
                s.status in ("ok", "finished", "failed") for s in states
            ):
                if runner.stop_signal is None:
                    finish_run(run, states, args.out, results)

    for run in planned:  # runs whose jobs all finished before: summary and record again, cheaply
        if all(s.status == "finished" for s in states_of[id(run)]):
            finish_run(run, states_of[id(run)], args.out, results)
    stopped = runner.run(on_finished)

    states = runner.states
    elapsed = time.perf_counter() - started
    summary_path = args.out / args.budget / "reproduction.json"
    command = " ".join(["python -m hw2lab.reproduce", *portable(sys.argv[1:] if argv is None else argv)])
    summary = sittings_summary(summary_path, args.budget, tasks, command, stamp, elapsed, states)
    summary.update(slots=args.jobs, threads=args.threads)
    write_json(summary_path, summary)
    failed = [s for s in states if s.status == "failed"]
    counts = f"{sum(s.status == 'ok' for s in states)} ran, {finished} skipped, {len(failed)} failed"
    if stopped is not None:
        left = sum(s.status in ("pending", "interrupted") for s in states)
        print(
            f"reproduce: stopped by {signal.Signals(stopped).name} after {minutes_text(elapsed / 60)} ({counts}, "
            f"{left} to go); the same command continues it",
            file=sys.stderr,
            flush=True,
        )
        return 128 + stopped
    if (
        results is not None
        and args.budget != "smoke"
        and not failed
        and not runs
        and set(tasks) == set(load_declarations())
    ):
        print(
            f"reproduce: the whole {args.budget} budget recorded in {record(summary_path, results)}",
            flush=True,
        )
    report.main(["--root", str(Path.cwd()), "--results", str(args.results)])
    print(
        f"reproduce: {counts}; {minutes_text(summary['summed_job_s'] / 60)} of jobs in "
        f"{minutes_text(summary['elapsed_s'] / 60)} of wall",
        flush=True,
    )
    if failed:
        print("reproduce: failed: " + "; ".join(f"{s.job.label} ({s.dir})" for s in failed), file=sys.stderr)
        return 1
    return 0
