"""hw2lab's Hydra sweeper on Optuna 4: the study lives in a database, survives a crash and is shared by workers.

Optuna does the searching and the bookkeeping: samplers, the ask/tell interface, the study in a database
(`RDBStorage`: SQLite file or PostgreSQL server), heartbeats of running trials, `fail_stale_trials` with
`RetryHeartbeatStaleTrialCallback` for trials whose process died, and the figures (`optuna.visualization.matplotlib`).
Hydra runs the jobs, through whatever launcher is configured (basic, joblib, submitit). This module connects
the two, as the hydra-optuna-sweeper plugin did for Optuna 2, and adds what a study shared over time and
machines needs:

- the search space is the plugin's `params:` syntax (`choice(...)`, `interval(a, b)`, `tag(log, interval(a,
  b))`, `range(...)`, integer bounds give integer parameters);
- the study is created or continued (`load_if_exists`); a study of that name with another direction is refused;
- `n_trials` counts the whole study, not this process: a rerun stops when the study has n_trials trials, and
  several workers together never start more than n_trials (a trial asked for past the budget, which only a
  race between workers can produce, is closed as FAIL with the user attribute `not_run` before anything runs);
- the sampler is seeded per trial from (seed, trial number), so one worker reproduces a search and several
  workers with the same seed never draw the same random start;
- a trial whose job did not return a finite value is FAIL; a trial whose process was stopped (SIGTERM, Ctrl-C)
  is FAIL and queued again with the same parameters; one whose process vanished (SIGKILL, a lost node) stops
  sending heartbeats and is failed and queued again by the next worker that looks, `grace_period` later;
- each trial's job folder is `<sweep dir>/<trial number>`, so a rerun in the same sweep folder adds folders.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override, RangeSweep, Transformer
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import Trial, TrialState

from hw2lab.errors import HW2LabError, one_line
from hw2lab.run_files import write_json
from hw2lab.tools.optuna_study import (
    NOT_RUN,
    counted,
    open_storage,
    open_study,
    quiet_optuna,
    shown_url,
    within_budget,
)
from hw2lab.tools.search_report import write_report

log = logging.getLogger("hw2lab")


# --- the search space ----------------------------------------------------------------------------------


def search_space(arguments: Sequence[str]) -> tuple[dict[str, BaseDistribution], dict[str, str]]:
    """Optuna distributions for the sweep overrides (`key=choice(a,b)`, `key=interval(a,b)`, ...) and the fixed
    values of the plain ones (`key=value`), which every trial gets unchanged."""
    parsed = OverridesParser.create().parse_overrides(list(arguments))
    distributions: dict[str, BaseDistribution] = {}
    fixed: dict[str, str] = {}
    for override in parsed:
        name = override.get_key_element()
        if override.is_sweep_override():
            distributions[name] = distribution(override)
        else:
            fixed[name] = override.get_value_element_as_str()
            distributions.pop(name, None)
    return distributions, fixed


def distribution(override: Override) -> BaseDistribution:
    """The distribution of one sweep override, as the hydra-optuna-sweeper plugin read them."""
    value = override.value()
    if override.is_choice_sweep() or (override.is_range_sweep() and value.shuffle):
        choices = list(override.sweep_iterator(transformer=Transformer.encode))
        for choice in choices:
            if not isinstance(choice, str | int | float | bool | type(None)):
                raise HW2LabError(
                    f"{override.input_line}: a choice takes numbers, strings or null, got {choice!r}"
                )
        return CategoricalDistribution(choices)
    if override.is_range_sweep():
        assert isinstance(value, RangeSweep)
        # range(a, b, step) excludes b, as Python's range does
        last = value.start + (math.ceil((value.stop - value.start) / value.step) - 1) * value.step
        if any(isinstance(v, float) for v in (value.start, value.stop, value.step)):
            return FloatDistribution(value.start, last, step=value.step)
        return IntDistribution(int(value.start), int(last), step=int(value.step))
    if override.is_interval_sweep():
        assert isinstance(value, IntervalSweep)
        log_scale = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log_scale)
        return FloatDistribution(float(value.start), float(value.end), log=log_scale)
    raise HW2LabError(f"{override.input_line}: the Optuna sweeper takes choice(), range() or interval()")


def suggest(trial: Trial, name: str, space: BaseDistribution) -> Any:
    """Ask the trial for one parameter (the public `suggest_*` call that matches the distribution)."""
    if isinstance(space, CategoricalDistribution):
        return trial.suggest_categorical(name, space.choices)
    if isinstance(space, IntDistribution):
        return trial.suggest_int(name, space.low, space.high, step=space.step, log=space.log)
    assert isinstance(space, FloatDistribution)
    return trial.suggest_float(name, space.low, space.high, step=space.step, log=space.log)


# --- the search loop -----------------------------------------------------------------------------------


Launch = Callable[[list[Trial], list[list[str]]], list[float | None]]


class Search:
    """Asks, launches and tells until the study has n_trials trials; the launch is Hydra's (see OptunaSweeper)
    or any callable (tests)."""

    def __init__(
        self,
        study: optuna.Study,
        storage: optuna.storages.BaseStorage,
        distributions: dict[str, BaseDistribution],
        fixed: dict[str, str],
        n_trials: int,
        n_jobs: int = 1,
        make_sampler: Callable[[int], optuna.samplers.BaseSampler] | None = None,
    ) -> None:
        quiet_optuna()
        self.study = study
        self.storage = storage
        self.distributions = distributions
        self.fixed = fixed
        self.n_trials = n_trials
        self.n_jobs = max(1, n_jobs)
        self.make_sampler = make_sampler
        self.ran = 0  # trials this worker ran
        self.in_flight: list[Trial] = []  # asked in this batch, not told yet
        self.not_run: set[int] = set()

    def remaining(self) -> int:
        """How many more trials this worker may start now: n_trials less those done or running anywhere."""
        optuna.storages.fail_stale_trials(self.study)  # dead workers' trials: failed and queued again
        trials = self.study.get_trials(deepcopy=False)
        return self.n_trials - len(counted(trials))

    def ask(self) -> Trial | None:
        trial = self.study.ask()
        self.in_flight.append(trial)
        if heartbeat_interval(self.storage):
            self.storage.record_heartbeat(trial._trial_id)
        if not within_budget(self.study, trial, self.n_trials):
            trial.set_user_attr(NOT_RUN, "asked for past n_trials by a concurrent worker")
            self.study.tell(trial, state=TrialState.FAIL)
            self.not_run.add(trial.number)
            return None
        if self.make_sampler is not None:
            self.study.sampler = self.make_sampler(trial.number)
        try:
            for name, space in self.distributions.items():
                suggest(trial, name, space)
        except ValueError as error:
            self.study.tell(trial, state=TrialState.FAIL)
            raise HW2LabError(
                f"the search space does not match the study '{self.study.study_name}': {error} (a changed "
                "search space needs a new study name)"
            ) from None
        trial.set_user_attr("host", socket.gethostname())
        return trial

    def overrides(self, trial: Trial) -> list[str]:
        return [f"{name}={value}" for name, value in {**trial.params, **self.fixed}.items()]

    def run(self, launch: Launch) -> None:
        """Batches of n_jobs trials until the study has n_trials. Stopped by SIGTERM or Ctrl-C, the trials in
        flight are failed and queued again with the same parameters (a rerun runs them first); then the
        process exits as it would have."""
        with sigterm_raises_system_exit():
            while (free := self.remaining()) > 0:
                self.in_flight = []
                try:
                    for _ in range(min(free, self.n_jobs)):
                        self.ask()
                    trials = [t for t in self.in_flight if t.number not in self.not_run]
                    if not trials:
                        break
                    log.info(
                        "Optuna study %s: trials %s (%d of n_trials=%d counted before them)",
                        self.study.study_name,
                        ", ".join(str(t.number) for t in trials),
                        self.n_trials - free,
                        self.n_trials,
                    )
                    with heartbeats(self.storage, trials):
                        values = launch(trials, [self.overrides(t) for t in trials])
                    for trial, value in zip(trials, values):
                        if value is not None and math.isfinite(value):
                            self.study.tell(trial, value)
                        else:
                            self.study.tell(trial, state=TrialState.FAIL)
                            log.warning("trial %d failed (its job returned %s)", trial.number, value)
                    self.ran += len(trials)
                except (KeyboardInterrupt, SystemExit):
                    self.requeue(self.in_flight)
                    raise

    def requeue(self, trials: list[Trial]) -> None:
        """Fail the still-running trials of an interrupted batch and queue each again (Optuna's retry callback,
        the one stale trials get), and say so in their job folders."""
        callback = (
            self.storage.get_heartbeat_stale_trial_callback() if heartbeat_interval(self.storage) else None
        )
        retry = callback or RetryHeartbeatStaleTrialCallback()
        requeued = []
        for trial in trials:
            try:
                frozen = self.storage.get_trial(trial._trial_id)
                if frozen.state != TrialState.RUNNING:
                    continue
                self.study.tell(trial, state=TrialState.FAIL)
                retry(self.study, self.storage.get_trial(trial._trial_id))
                mark_retried(frozen.user_attrs.get("job_dir"))
                requeued.append(trial.number)
            except Exception as error:  # the interruption goes on; a trial left running is retried when stale
                log.error("could not queue trial %d again: %s", trial.number, one_line(error))
        if requeued:
            log.warning(
                "search stopped: trial(s) %s failed and queued again; run the same command again to go on",
                ", ".join(map(str, requeued)),
            )


def heartbeat_interval(storage: optuna.storages.BaseStorage) -> int | None:
    """The storage's heartbeat interval in seconds; None where it keeps none (e.g. in memory)."""
    get = getattr(storage, "get_heartbeat_interval", None)
    return get() if get is not None else None


@contextmanager
def heartbeats(storage: optuna.storages.BaseStorage, trials: list[Trial]):
    """While the batch runs, tell the storage every heartbeat_interval s that its trials are alive."""
    interval = heartbeat_interval(storage)
    if not interval:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            for trial in trials:
                try:
                    storage.record_heartbeat(trial._trial_id)
                except (
                    Exception
                ) as error:  # a lost connection must not kill the trials; a later beat may work
                    log.warning("heartbeat of trial %d failed: %s", trial.number, error)

    thread = threading.Thread(target=beat, name="optuna-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextmanager
def sigterm_raises_system_exit():
    """SIGTERM (SLURM pre-emption, `kill`) raises SystemExit in the sweeper, as Ctrl-C raises
    KeyboardInterrupt, so the search can queue its running trials again before it exits. While a job trains,
    Lightning composes its own handler with this one and stops at the end of the batch (the job then raises
    SystemExit itself); this handler raises only when it is the one installed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum, frame):
        if signal.getsignal(signal.SIGTERM) is on_sigterm:
            raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def mark_retried(job_dir: str | None) -> None:
    """The stopped trial's job folder says so (metrics.json `retried`), so the sweep summary does not count it
    as a failure of the search."""
    path = Path(job_dir) / "metrics.json" if job_dir else None
    if path is None or not path.is_file():
        return
    try:
        record = json.loads(path.read_text())
        record["retried"] = True
        write_json(path, record)
    except (OSError, ValueError) as error:
        log.warning("could not mark %s as retried: %s", path, error)


# --- Hydra's side -----------------------------------------------------------------------------------------


class OptunaSweeper(Sweeper):
    """The Hydra Sweeper (configured in conf/hydra/sweeper/optuna_study.yaml; Hydra finds it as
    hydra_plugins.hw2lab_optuna_sweeper.OptunaSweeper)."""

    def __init__(
        self,
        sampler: DictConfig,
        direction: str,
        study_name: str,
        storage: str,
        n_trials: int,
        n_jobs: int = 1,
        params: DictConfig | None = None,
        heartbeat_interval: int | None = 60,
        grace_period: int | None = None,
        max_retry: int | None = 3,
        figures: bool = True,
    ) -> None:
        self.sampler_config = sampler
        self.direction = str(direction)
        self.study_name = str(study_name)
        self.storage_url = str(storage)
        self.n_trials = int(n_trials)
        self.n_jobs = int(n_jobs)
        self.params = params or {}
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.max_retry = max_retry
        self.figures = figures

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )
        self.sweep_dir = Path(config.hydra.sweep.dir)

    def make_sampler(self, number: int) -> optuna.samplers.BaseSampler:
        """The configured sampler, seeded from (seed, trial number) when a seed is set."""
        config = OmegaConf.to_container(self.sampler_config, resolve=True)
        seed = config.get("seed")
        if seed is not None:
            config["seed"] = int(hash_seed(int(seed), number))
        try:
            return instantiate(config)
        except Exception as error:
            cause = error.__cause__ or error
            raise HW2LabError(
                f"bad hydra.sweeper.sampler ({config.get('_target_')}): {one_line(cause)}"
            ) from None

    def sweep(self, arguments: list[str]) -> None:
        try:
            self._sweep(arguments)
        except HW2LabError as error:
            # one line and a non-zero exit, as a run's user errors (no Hydra stack-trace hint under it)
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(1) from None

    def _sweep(self, arguments: list[str]) -> None:
        quiet_optuna()
        distributions, fixed = search_space([f"{k}={v}" for k, v in self.params.items()] + list(arguments))
        storage = open_storage(self.storage_url, self.heartbeat_interval, self.grace_period, self.max_retry)
        study = open_study(storage, self.study_name, self.direction, self.make_sampler(0))
        log.info(
            "Optuna study '%s' in %s: %d of n_trials=%d already counted",
            self.study_name,
            shown_url(self.storage_url),
            len(counted(study.get_trials(deepcopy=False))),
            self.n_trials,
        )
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        search = Search(study, storage, distributions, fixed, self.n_trials, self.n_jobs, self.make_sampler)
        search.run(self.launch)
        write_report(study, self.sweep_dir, storage_url=self.storage_url, figures=self.figures)

    def launch(self, trials: list[Trial], overrides: list[list[str]]) -> list[float | None]:
        """Run one batch through Hydra's launcher; each job's folder is named by its trial number."""
        jobs = []
        for trial, job_overrides in zip(trials, overrides):
            job_dir = self.sweep_dir / str(trial.number)
            trial.set_user_attr("job_dir", str(job_dir.resolve()))
            jobs.append([*job_overrides, f"hydra.sweep.subdir={trial.number}"])
        returns = self.launcher.launch(jobs, initial_job_idx=trials[0].number)
        values: list[float | None] = []
        for trial, result in zip(trials, returns):
            if result.status != JobStatus.COMPLETED:
                log.error("trial %d: the job raised %s", trial.number, one_line(result._return_value))
                values.append(None)
                continue
            try:
                values.append(float(result.return_value))
            except (TypeError, ValueError):
                log.error("trial %d: the job returned %r, not a number", trial.number, result.return_value)
                values.append(None)
        return values


def hash_seed(seed: int, number: int) -> int:
    """A sampler seed for trial `number` of a search seeded with `seed` (NumPy's SeedSequence mixing)."""
    import numpy as np

    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])
