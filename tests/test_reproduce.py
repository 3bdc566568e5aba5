"""The reproduce command's run plan for each budget, without running it (and once for real, smoke, slow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hw2lab.tools import reproduce


@pytest.mark.parametrize("budget", reproduce.BUDGETS)
def test_every_task_has_sweeps_in_every_budget(budget, tmp_path):
    sweeps = reproduce.plan(budget, list(reproduce.TASKS))
    assert {s.task for s in sweeps} == {"vae", "covid", "news", "food", "charlm"}
    for sweep in sweeps:
        command = sweep.command(budget, tmp_path / "s", ["hydra/launcher=joblib"])
        assert command[1].endswith("run.py") and command[2] == "-m"
        assert command[-2:] == ["hydra/launcher=joblib", f"hydra.sweep.dir={tmp_path / 's'}"]
        assert ("trainer=debug" in command) == (budget == "smoke")
        assert any(arg.startswith("seed=") for arg in command) == (sweep.seeds and budget != "smoke")
        assert sweep.minutes(budget) > 0


def test_the_cpu_estimate_is_printed_before_anything_runs(capsys):
    assert reproduce.main(["--budget", "cpu", "--tasks", "vae,covid", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    sweeps = reproduce.plan("cpu", ["vae", "covid"])
    assert {sweep.task for sweep in sweeps} == {"vae", "covid"}
    runs = sum(sweep.jobs("cpu") for sweep in sweeps)
    assert out[0].startswith(f"reproduce: budget cpu, {len(sweeps)} sweeps, {runs} runs, estimated ")
    assert sum(line.startswith("[") for line in out) == len(sweeps)


def test_unknown_tasks_and_budgets_are_one_line():
    with pytest.raises(SystemExit, match="unknown task"):
        reproduce.plan("cpu", ["vea"])
    with pytest.raises(SystemExit, match="--budget must be one of"):
        reproduce.plan("gpu", ["vae"])


@pytest.mark.slow
def test_a_smoke_reproduction_runs_and_writes_the_report(tmp_path, real_data_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HW2LAB_DATA_DIR", str(real_data_dir))
    assert reproduce.main(["--budget", "smoke", "--tasks", "vae,charlm", "logger=none"]) == 0
    planned = sum(sweep.jobs("smoke") for sweep in reproduce.plan("smoke", ["vae", "charlm"]))
    assert len(list(Path("multirun/reproduce").glob("*/*/*/*/*/metrics.json"))) == planned
    assert (tmp_path / "report" / "index.html").is_file()
