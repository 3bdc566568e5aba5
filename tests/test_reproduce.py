"""The reproduce command: its plans per budget (without running them), the skip / resume decision per job, the
streamed progress, and (slow) a smoke reproduction killed mid-run and continued."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import REPO_ROOT
from omegaconf import OmegaConf

from hw2lab.tools import report, reproduce
from hw2lab.tools.declared import load_declarations, merge
from hw2lab.tools.jobs import JobState, Runner, prepare
from hw2lab.tools.plan import Job, composed, expand, plan_run, wall_minutes

TASKS = list(load_declarations())


def without_gpu(jobs: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    return [tuple(arg for arg in job if arg != "trainer=gpu") for job in jobs]


@pytest.mark.parametrize("budget", ["smoke", "cpu", "full"])
def test_every_task_has_jobs_in_every_budget(budget):
    planned = reproduce.plan(budget, TASKS)
    assert {run.spec.task for run in planned} == {"vae", "covid", "news", "food", "charlm"}
    for run in planned:
        assert run.jobs and run.minutes > 0
        for job in run.jobs:
            if not run.spec.is_bench:
                assert ("trainer=debug" in job.args) == (budget == "smoke"), job.label
                assert ("trainer=gpu" in job.args) == (budget == "full"), job.label
                assert "-m" not in job.args  # a job is one run


def test_cpu_and_full_differ_exactly_where_the_declarations_say():
    for task in load_declarations().values():
        for spec in task.runs.values():
            cpu, full = expand(spec, "cpu"), expand(spec, "full")
            if spec.budgets["cpu"] is None:
                assert cpu == [], spec.id
            elif spec.changed("cpu"):
                assert cpu != without_gpu(full), spec.id
                assert spec.why, f"{spec.id}: say why the cpu budget changes the course's settings"
                # the cpu jobs are the course's command with the declared changes, expanded
                course = spec.tokens("full")
                assert spec.tokens("cpu") == [
                    t for t in merge(course, list(spec.changed("cpu"))) if t != "trainer=gpu"
                ]
            else:
                assert cpu == without_gpu(full), spec.id


def test_the_cpu_plan_fits_two_hours_of_a_laptop_with_two_jobs_at_a_time():
    planned = reproduce.plan("cpu", TASKS)
    assert 0 < wall_minutes(planned, 2) <= 120
    assert wall_minutes(planned, 1) > wall_minutes(planned, 2)


def test_the_plan_and_its_estimate_are_printed_before_anything_runs(capsys, tmp_path):
    assert (
        reproduce.main(["--budget", "cpu", "--tasks", "vae,covid", "--dry-run", "--out", str(tmp_path)]) == 0
    )
    out = capsys.readouterr().out.splitlines()
    planned = reproduce.plan("cpu", ["vae", "covid"])
    assert {run.spec.task for run in planned} == {"vae", "covid"}
    jobs = sum(len(run.jobs) for run in planned)
    assert out[0].startswith(f"reproduce: budget cpu, {len(planned)} runs, {jobs} jobs; estimated ")
    assert sum(line.startswith("[") for line in out) == len(planned)
    assert not any(tmp_path.iterdir())  # nothing ran
    # the overrides every job gets are part of the commands shown (here: the full budget on a CPU)
    argv = ["--budget", "full", "--runs", "vae/main", "--dry-run", "--out", str(tmp_path), "trainer=default"]
    assert reproduce.main(argv) == 0
    assert (
        "    python run.py -m task=vae kl_weight=0,1,10,100 trainer=gpu trainer=default"
        in capsys.readouterr().out
    )


def test_unknown_tasks_and_budgets_are_one_line():
    with pytest.raises(SystemExit, match="unknown task"):
        reproduce.plan("cpu", ["vea"])
    with pytest.raises(SystemExit, match="--budget must be one of"):
        reproduce.plan("gpu", ["vae"])


def test_runs_picks_declared_runs_of_a_budget_even_one_the_cpu_budget_leaves_out():
    planned = reproduce.plan("full", ["news"], runs=["news/mpnet_7folds"])
    assert [run.spec.id for run in planned] == ["news/mpnet_7folds"] and len(planned[0].jobs) == 7
    assert reproduce.plan("cpu", ["news"], runs=["news/mpnet_7folds"]) == []  # cpu: skip
    with pytest.raises(SystemExit, match="unknown run"):
        reproduce.plan("cpu", ["news"], runs=["news/mpnet"])


def test_an_estimate_comes_from_the_records_wall_times_where_they_hold_them(tmp_path):
    spec = load_declarations()["vae"].runs["conv_anime"]
    assert plan_run(spec, "cpu", tmp_path).estimate.source.startswith("declared: ")
    record = tmp_path / "vae" / "vae_conv_anime.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"runs": [{"duration_s": 6000.0}]}))  # the course's 100 epochs
    estimate = plan_run(spec, "cpu", tmp_path).estimate
    assert estimate.source == "wall times in results/vae/vae_conv_anime.json, scaled to 20 of 100 epochs"
    assert estimate.job_minutes == pytest.approx(100 * 20 / 100)


def saved_job(tmp_path: Path, overrides: tuple[str, ...], status: str, checkpoint: bool) -> JobState:
    """A job folder as run.py leaves it: the composed config, metrics.json, maybe a last.ckpt."""
    spec = load_declarations()["vae"].runs["main"]
    folder = tmp_path / "job"
    (folder / ".hydra").mkdir(parents=True)
    OmegaConf.save(composed(overrides), folder / ".hydra" / "config.yaml")
    (folder / "metrics.json").write_text(json.dumps({"status": status, "task": "vae"}))
    if checkpoint:
        (folder / "checkpoints").mkdir()
        (folder / "checkpoints" / "last.ckpt").write_bytes(b"0")
    return JobState(Job(spec, "smoke", 0, ("task=vae", "kl_weight=1", "trainer=debug")), folder, 1.0)


def test_a_finished_job_is_skipped_an_interrupted_one_continues_and_a_changed_one_starts_again(tmp_path):
    same = ("task=vae", "kl_weight=1", "trainer=debug")
    state = saved_job(tmp_path / "a", same, "ok", checkpoint=True)
    prepare(state, [])
    assert state.status == "finished"
    state = saved_job(tmp_path / "b", same, "interrupted", checkpoint=True)
    prepare(state, [])
    assert (state.status, state.resume) == ("pending", True) and state.dir.is_dir()
    state = saved_job(tmp_path / "c", same, "interrupted", checkpoint=False)
    prepare(state, [])
    assert (state.status, state.resume) == ("pending", False) and not state.dir.exists()
    # the same folder, but the declaration now asks for another setting: start again
    state = saved_job(tmp_path / "d", ("task=vae", "kl_weight=10", "trainer=debug"), "ok", checkpoint=True)
    prepare(state, [])
    assert (state.status, state.resume) == ("pending", False) and not state.dir.exists()


def test_a_finished_bench_job_is_skipped_whatever_path_its_script_was_run_by(tmp_path):
    """reproduce runs a bench by its absolute path; the result file says so, and it is the planned command."""
    spec = load_declarations()["food"].runs["speed"]
    (job,) = plan_run(spec, "cpu", tmp_path).jobs
    script, *arguments = job.args
    result = tmp_path / "0" / "result.json"
    result.parent.mkdir()
    ran = ["python", str(REPO_ROOT / script), *arguments, "--out", str(result)]
    result.write_text(json.dumps({"bench": "food", "command": " ".join(ran)}))
    state = JobState(job, result.parent, 1.0)
    prepare(state, [])
    assert state.status == "finished"
    result.write_text(json.dumps({"bench": "food", "command": " ".join([*ran[:2], "--epochs", "9"])}))
    state = JobState(job, result.parent, 1.0)
    prepare(state, [])
    assert state.status == "pending" and not result.parent.exists()


def test_a_bench_lands_in_its_declared_record_whatever_the_bench_is_called(tmp_path):
    """bench/news_frozen.py names itself news_frozen; its record is the one news.yaml declares."""
    spec = load_declarations()["news"].runs["mpnet_frozen_full_7folds"]
    run = plan_run(spec, "full", tmp_path)
    folder = tmp_path / "out" / "full" / "news" / spec.name
    (folder / "0").mkdir(parents=True)
    bench = {"bench": "news_frozen", "command": spec.command, "date": "2026-12-08T02:00:00", "machine": {}}
    (folder / "0" / "result.json").write_text(json.dumps({**bench, "result": {"pooled_test_acc": 0.5}}))
    results = tmp_path / "results"
    reproduce.finish_run(
        run, [JobState(run.jobs[0], folder / "0", 1.0, status="ok")], tmp_path / "out", results
    )
    assert [p.relative_to(results).as_posix() for p in results.rglob("*.json")] == [
        spec.record[len("results/") :]
    ]


def test_each_epoch_line_of_a_running_job_reaches_the_terminal_with_the_eta(tmp_path, capsys):
    spec = load_declarations()["vae"].runs["main"]
    states = [JobState(Job(spec, "cpu", i, ()), tmp_path / str(i), 10.0) for i in range(2)]
    for state in states:
        state.dir.mkdir()
    runner = Runner(states, slots=2, extra=[])
    states[0].status = "running"
    runner.on_line(states[0], "[10:00:00][hw2lab][INFO] epoch 3/15  train/loss 130.2  val/loss 125.1  (0.9s)")
    line = capsys.readouterr().out.strip()
    assert line.startswith("[vae/main 0] epoch 3/15 val/loss 125.1 (0.9s) · ") and "ETA " in line
    assert states[0].epoch == (3, 15)
    assert "epoch 3/15" in (states[0].dir / "reproduce.log").read_text()  # and the whole output is kept


def job_metrics(out: Path) -> dict[str, dict]:
    """Every job's metrics (speeds and wall minutes left out: they are the machine's, not the result)."""
    found = {}
    for path in sorted(out.glob("smoke/*/*/*/metrics.json")):
        data = json.loads(path.read_text())
        assert data["status"] == "ok", path
        found[str(path.relative_to(out))] = {
            k: v for k, v in data["metrics"].items() if "per_s" not in k and not k.endswith("/minutes")
        }
    return found


@pytest.mark.slow
def test_a_smoke_reproduction_killed_mid_run_continues_and_matches_an_uninterrupted_one(
    tmp_path, real_data_dir
):
    """SIGTERM while a job trains; the rerun skips the jobs that had finished, and every job's results equal
    those of a reproduction that was never stopped."""
    env = {**os.environ, "HW2LAB_DATA_DIR": str(real_data_dir), "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable,
        "-m",
        "hw2lab.reproduce",
        "--budget",
        "smoke",
        "--tasks",
        "charlm",
        "logger=none",
    ]

    def reproduce_into(out: Path) -> subprocess.Popen:
        return subprocess.Popen(
            [*command, "--out", str(out)],
            cwd=tmp_path,
            env={**env, "PYTHONPATH": str(REPO_ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    whole = reproduce_into(tmp_path / "whole")
    assert whole.wait(timeout=900) == 0, whole.stdout.read()

    out = tmp_path / "stopped"
    first = reproduce_into(out)
    seen = []
    for line in first.stdout:
        seen.append(line)
        if " done in " in line:  # one job has finished, another is running
            first.send_signal(signal.SIGTERM)
            break
    rest = first.stdout.read()
    assert first.wait(timeout=300) == 128 + signal.SIGTERM, "".join(seen) + rest
    assert "stopped by SIGTERM" in rest
    finished = {
        p: p.stat().st_mtime
        for p in out.glob("smoke/*/*/*/metrics.json")
        if json.loads(p.read_text())["status"] == "ok"
    }
    assert finished and len(finished) < len(job_metrics(tmp_path / "whole"))
    time.sleep(1)

    again = reproduce_into(out)
    log = again.stdout.read()
    assert again.wait(timeout=900) == 0, log
    assert f"{len(finished)} jobs already finished" in log
    assert all(path.stat().st_mtime == mtime for path, mtime in finished.items())  # not redone
    assert job_metrics(out) == job_metrics(tmp_path / "whole")
    assert (out / "smoke" / "charlm" / "cells" / "summary.md").is_file()


def test_a_reproduction_continued_in_a_second_sitting_adds_up_its_wall_and_job_times(tmp_path):
    """The summary of a reproduction stopped and continued sums the sittings' wall times and each job's
    running time; a job skipped as finished keeps its first sitting's status and seconds. Its record (the
    whole budget) is what README quotes."""
    path = tmp_path / "cpu" / "reproduction.json"

    def states(*jobs):
        return [
            SimpleNamespace(job=SimpleNamespace(label=label), status=status, seconds=seconds)
            for label, status, seconds in jobs
        ]

    first = reproduce.sittings_summary(
        path,
        "cpu",
        ["vae"],
        "python -m hw2lab.reproduce --budget cpu",
        "2026-12-07T10:00:00",
        100.0,
        states(("vae/main 0", "ok", 60.0), ("vae/main 1", "interrupted", 30.0)),
    )
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({**first, "slots": 2, "threads": 1}))
    second = reproduce.sittings_summary(
        path,
        "cpu",
        ["vae"],
        "python -m hw2lab.reproduce --budget cpu",
        "2026-12-07T12:00:00",
        50.0,
        states(("vae/main 0", "finished", 0.0), ("vae/main 1", "ok", 40.0)),
    )
    assert second["elapsed_s"] == 150.0 and second["started"] == "2026-12-07T10:00:00"
    assert second["jobs"] == {
        "vae/main 0": {"status": "ok", "seconds": 60.0},
        "vae/main 1": {"status": "ok", "seconds": 70.0},
    }
    assert second["summed_job_s"] == 130.0 and len(second["sittings"]) == 2
    path.write_text(json.dumps({**second, "slots": 2, "threads": 1}))

    target = report.record(path, tmp_path / "results")
    assert target == tmp_path / "results" / "reproduction" / "cpu.json"
    line = report.readme_block([], report.load_reproductions(tmp_path / "results"))
    assert (
        "The whole cpu budget (`python -m hw2lab.reproduce --budget cpu`): 2 min of wall over 2 sittings"
        in line
    )
    assert "2 jobs, 2 at a time, 1 torch thread each" in line and "2026-12-07" in line
    assert "The whole full budget (`python -m hw2lab.reproduce --budget full`): no record" in line
