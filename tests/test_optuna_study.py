"""The Optuna study in a database (hw2lab/tools/optuna_study.py, optuna_sweeper.py, search_report.py): resume,
several workers, PostgreSQL, bad input, the report. The fast tests drive the search loop with a stand-in for Hydra's launcher;
the slow ones run `run.py -m ... hparams_search=vae_optuna` on tiny fixture data."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
from helpers import REPO_ROOT, write_tibetan_npz

optuna = pytest.importorskip(
    "optuna", minversion="4.9", reason="the sweeps extra (optuna 4.9+) is not installed"
)

from optuna.trial import TrialState  # noqa: E402

from hw2lab.errors import HW2LabError  # noqa: E402
from hw2lab.tools.optuna_study import counted, open_storage, open_study, quiet_optuna  # noqa: E402
from hw2lab.tools.optuna_sweeper import Search, hash_seed, search_space  # noqa: E402
from hw2lab.tools.search_report import main as search_report  # noqa: E402

quiet_optuna()
optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = ["x=interval(0, 1)", "width=choice(8, 16, 32)", "fixed=7"]


def sampler_for(seed: int):
    return lambda number: optuna.samplers.TPESampler(seed=hash_seed(seed, number), n_startup_trials=3)


def make_search(
    url: str, n_trials: int, n_jobs: int = 1, name: str = "s", heartbeat: int | None = 60, grace=None
):
    storage = open_storage(url, heartbeat_interval=heartbeat, grace_period=grace)
    study = open_study(storage, name, "minimize")
    distributions, fixed = search_space(SPACE)
    return Search(study, storage, distributions, fixed, n_trials, n_jobs, sampler_for(0))


def objective(trials, overrides):
    assert all("fixed=7" in job for job in overrides)
    return [(t.params["x"] - 0.3) ** 2 + t.params["width"] / 100 for t in trials]


def finished_params(study) -> list[tuple]:
    return [tuple(sorted(t.params.items())) for t in study.get_trials() if t.state == TrialState.COMPLETE]


def test_the_presets_search_syntax_becomes_optuna_distributions():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    distributions, fixed = search_space(
        [
            "lr=interval(1e-4, 1e-2)",
            "wd=tag(log, interval(1e-6, 1e-2))",
            "layers=int(interval(1, 4))",
            "cell=choice(rnn, lstm, gru)",
            "width=range(16, 80, 16)",
            "seed=3",
        ]
    )
    assert distributions == {
        "lr": FloatDistribution(1e-4, 1e-2),
        "wd": FloatDistribution(1e-6, 1e-2, log=True),
        "layers": IntDistribution(1, 4),
        "cell": CategoricalDistribution(["rnn", "lstm", "gru"]),
        "width": IntDistribution(16, 64, step=16),  # range() excludes its end, as Python's
    }
    assert fixed == {"seed": "3"}
    # a value given on the command line fixes a searched key
    distributions, fixed = search_space(["lr=interval(1e-4, 1e-2)", "lr=0.001"])
    assert distributions == {} and fixed == {"lr": "0.001"}


def test_an_interrupted_search_goes_on_where_it_stopped(tmp_path):
    url = f"sqlite:///{tmp_path}/optuna.db"
    search = make_search(url, n_trials=5)
    launched = []

    def stopped_at_the_third(trials, overrides):
        launched.extend(t.number for t in trials)
        if len(launched) == 3:
            raise KeyboardInterrupt  # Ctrl-C or SIGTERM while trial 2 runs
        return objective(trials, overrides)

    with pytest.raises(KeyboardInterrupt):
        search.run(stopped_at_the_third)
    states = [t.state for t in search.study.get_trials()]
    assert states == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL, TrialState.WAITING]

    again = make_search(url, n_trials=5)
    again.run(
        lambda trials, overrides: launched.extend(t.number for t in trials) or objective(trials, overrides)
    )
    trials = again.study.get_trials()
    assert launched == [0, 1, 2, 3, 4, 5]  # finished trials are not run again; 3 is trial 2 queued again
    assert trials[3].params == trials[2].params
    assert len(counted(trials)) == 5 and len(finished_params(again.study)) == 5
    assert len(set(finished_params(again.study))) == 5
    # a third run of a finished search runs nothing
    make_search(url, n_trials=5).run(lambda *_: pytest.fail("a finished search ran a trial"))


def test_a_trial_of_a_dead_worker_is_failed_and_retried_once_its_heartbeat_is_old(tmp_path):
    url = f"sqlite:///{tmp_path}/optuna.db"
    dead = make_search(url, n_trials=3, heartbeat=1, grace=1)
    dead.in_flight = []
    trial = dead.ask()  # asked and heartbeat sent, then the worker vanished (SIGKILL, a lost node)
    assert trial.number == 0
    time.sleep(2.5)
    alive = make_search(url, n_trials=3, heartbeat=1, grace=1)
    alive.run(objective)
    trials = alive.study.get_trials()
    assert trials[0].state == TrialState.FAIL
    assert trials[1].params == trials[0].params  # queued again with the same parameters, run first
    assert [t.state for t in counted(trials)] == [TrialState.COMPLETE] * 3


def _worker(url: str, n_trials: int, seed: int) -> None:
    storage = open_storage(url, heartbeat_interval=60)
    study = open_study(storage, "shared", "minimize")
    distributions, fixed = search_space(SPACE)

    def slow(trials, overrides):
        time.sleep(0.05)
        return objective(trials, overrides)

    Search(study, storage, distributions, fixed, n_trials, 1, sampler_for(seed)).run(slow)


def test_two_processes_on_one_sqlite_study_share_n_trials_and_never_repeat_a_configuration(tmp_path):
    url = f"sqlite:///{tmp_path}/optuna.db"
    open_study(open_storage(url), "shared", "minimize")  # created once, before the race to create it
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_worker, args=(url, 10, 42)) for _ in range(2)]  # the same seed
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
        assert worker.exitcode == 0
    study = optuna.load_study(study_name="shared", storage=url)
    assert len(finished_params(study)) == 10
    assert len(set(finished_params(study))) == 10
    hosts = Counter(t.user_attrs.get("host") for t in study.get_trials() if t.state == TrialState.COMPLETE)
    assert sum(hosts.values()) == 10


def test_bad_storage_and_a_study_that_goes_the_other_way_are_one_line(tmp_path):
    with pytest.raises(
        HW2LabError, match=r"cannot open the Optuna storage postgresql://u:\*\*\*@127.0.0.1:9/db"
    ):
        open_storage("postgresql://u:secret@127.0.0.1:9/db")
    with pytest.raises(HW2LabError, match="cannot open the Optuna storage nosuchdb://"):
        open_storage("nosuchdb://x")
    url = f"sqlite:///{tmp_path}/optuna.db"
    open_study(open_storage(url), "vae", "maximize")
    with pytest.raises(HW2LabError) as error:
        open_study(open_storage(url), "vae", "minimize")
    assert "was created to maximize, not to minimize" in str(error.value) and "\n" not in str(error.value)
    # a search space that changed under an existing study
    make_search(url, n_trials=1, name="changed").run(objective)
    storage = open_storage(url)
    changed = Search(
        open_study(storage, "changed", "minimize"), storage, *search_space(["x=choice(a, b)"]), 2
    )
    with pytest.raises(HW2LabError, match="the search space does not match the study 'changed'"):
        changed.run(objective)


def test_search_report_writes_the_figures_and_the_trials_table(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/optuna.db"
    make_search(url, n_trials=6).run(objective)
    assert search_report([url, "s", "--out", str(tmp_path / "report")]) == 0
    for name in ("optuna_history.png", "optuna_importances.png", "optuna_parallel.png"):
        assert (tmp_path / "report" / name).stat().st_size > 5000, name
    table = (tmp_path / "report" / "optuna_trials.md").read_text()
    assert "## Optuna study `s`" in table and "6 complete of 6 trials" in table
    assert table.count("| complete |") == 6
    assert search_report([url, "nope", "--out", str(tmp_path)]) == 1
    assert "no Optuna study 'nope'" in capsys.readouterr().err
    assert search_report([f"sqlite:///{tmp_path}/missing.db", "s"]) == 1
    assert "no such database file" in capsys.readouterr().err


# --- whole searches through run.py -----------------------------------------------------------------------

TINY = [
    "task=vae",
    "hparams_search=vae_optuna",
    "trainer.max_epochs=2",
    "data.batch_size=16",
    "logger=none",
    "hydra.sweeper.sampler.n_startup_trials=2",
    "callbacks.reconstructions=null",
    "callbacks.prior_samples=null",
    "callbacks.interpolations=null",
]


def _env(data_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env.update(HW2LAB_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return env


def _search(args: list[str], sweep: Path, data_dir: Path, **popen) -> subprocess.Popen:
    command = [sys.executable, str(REPO_ROOT / "run.py"), "-m", *TINY, *args, f"hydra.sweep.dir={sweep}"]
    return subprocess.Popen(
        command,
        cwd=sweep.parent,
        env=_env(data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **popen,
    )


def _finish(process: subprocess.Popen, timeout: int = 900) -> str:
    output = process.communicate(timeout=timeout)[0]
    assert process.returncode == 0, output[-4000:]
    return output


@pytest.mark.slow
def test_a_search_killed_after_its_first_trial_goes_on_when_run_again(tmp_path):
    data_dir = write_tibetan_npz(tmp_path / "data", count=60)
    sweep = tmp_path / "sweep"
    args = ["hydra.sweeper.n_trials=3", "trainer.max_epochs=6"]
    process = _search(args, sweep, data_dir, start_new_session=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        if (sweep / "0" / "metrics.json").exists() and (sweep / "1" / "checkpoints").is_dir():
            break  # the first trial has finished, the second has trained an epoch
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGTERM)
    output = process.communicate(timeout=300)[0]
    assert process.returncode != 0, output[-3000:]
    first = (sweep / "0" / "metrics.json").read_text()
    url = f"sqlite:///{sweep}/optuna.db"
    stopped = optuna.load_study(study_name="vae", storage=url).get_trials()
    assert [t.state for t in stopped][:2] == [TrialState.COMPLETE, TrialState.FAIL], output[-3000:]

    _finish(_search(args, sweep, data_dir))  # the same command again, the same sweep folder
    trials = optuna.load_study(study_name="vae", storage=url).get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3 and len(counted(trials)) == 3
    assert len({tuple(sorted(t.params.items())) for t in complete}) == 3
    assert trials[2].params == trials[1].params  # the stopped trial ran again, first
    assert (sweep / "0" / "metrics.json").read_text() == first  # the finished trial was not rerun
    summary = (sweep / "summary.md").read_text()
    assert "## Optuna study `vae`" in summary and "retried as trial 2" in summary
    assert "interrupted (retried)" in summary


@pytest.mark.slow
def test_two_parallel_jobs_with_joblib_reach_n_trials_exactly_with_distinct_parameters(tmp_path):
    data_dir = write_tibetan_npz(tmp_path / "data", count=60)
    sweep = tmp_path / "sweep"
    args = [
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.n_jobs=2",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
    ]
    _finish(_search(args, sweep, data_dir))
    trials = optuna.load_study(study_name="vae", storage=f"sqlite:///{sweep}/optuna.db").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 4
    assert sorted(p.name for p in sweep.glob("optuna_*.png")) == [
        "optuna_history.png",
        "optuna_importances.png",
        "optuna_parallel.png",
    ]
    summary = (sweep / "summary.md").read_text()
    assert "## Optuna study `vae`" in summary and "4 complete of 4 trials" in summary


@pytest.mark.slow
def test_unreachable_storage_and_a_study_of_the_other_direction_fail_in_one_line(tmp_path):
    data_dir = write_tibetan_npz(tmp_path / "data", count=60)
    sweep = tmp_path / "sweep"
    process = _search(["hydra.sweeper.storage=postgresql://u:secret@127.0.0.1:9/db"], sweep, data_dir)
    output = process.communicate(timeout=600)[0]
    assert process.returncode == 1
    last = output.strip().splitlines()[-1]
    assert last.startswith(
        "error: cannot open the Optuna storage postgresql://u:***@127.0.0.1:9/db: connection"
    ), output[-2000:]
    assert "Traceback" not in output and "secret" not in output

    taken = f"sqlite:///{tmp_path}/taken.db"
    optuna.create_study(storage=taken, study_name="vae", direction="maximize")
    process = _search([f"hydra.sweeper.storage={taken}"], sweep, data_dir)
    output = process.communicate(timeout=600)[0]
    assert process.returncode == 1
    assert "was created to maximize, not to minimize" in output.strip().splitlines()[-1], output[-2000:]


# --- PostgreSQL ---------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def postgres_url():
    """A throw-away PostgreSQL cluster from Debian's `postgresql` package (initdb + pg_ctl) in a temp dir, on a
    free local port, stopped and removed at the end; run as the `postgres` user when the tests run as root."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not bins:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    initdb, pg_ctl = bins[-1], bins[-1].with_name("pg_ctl")
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="hw2lab-pg-"))
    if os.geteuid() == 0:  # initdb refuses root
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres")
    port = _free_port()
    data = folder / "data"
    run = lambda *command: subprocess.run([*as_user, *map(str, command)], check=True, capture_output=True)  # noqa: E731
    run(initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
    options = f"-p {port} -h 127.0.0.1 -k {folder}"
    run(pg_ctl, "-D", data, "-l", folder / "log", "-o", options, "-w", "-t", "60", "start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, str(pg_ctl), "-D", str(data), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_two_workers_share_one_study_in_postgresql(tmp_path, postgres_url):
    data_dir = write_tibetan_npz(tmp_path / "data", count=60)
    args = [
        "hydra.sweeper.n_trials=4",
        f"hydra.sweeper.storage={postgres_url}",
        "hydra.sweeper.study_name=pg",
    ]
    open_study(
        open_storage(postgres_url), "pg", "minimize"
    )  # as `optuna create-study` would, before the workers
    workers = [_search(args, tmp_path / f"sweep{i}", data_dir) for i in range(2)]
    for worker in workers:
        _finish(worker)
    trials = optuna.load_study(study_name="pg", storage=postgres_url).get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 4 and len(counted(trials)) == 4
    assert len({tuple(sorted(t.params.items())) for t in complete}) == 4
    # each worker ran some of them, in its own sweep folder named by trial number
    ran = [
        sorted(int(p.parent.name) for p in (tmp_path / f"sweep{i}").glob("*/metrics.json")) for i in range(2)
    ]
    assert sorted(ran[0] + ran[1]) == sorted(t.number for t in complete)
