"""The Optuna study in its database, as the sweeper and the search report both open and count it.

Opening the storage (SQLite file or PostgreSQL server, heartbeats, stale-trial retries), creating or continuing
a study, which trials use up n_trials, and Optuna's experimental-feature warnings turned off.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna

if tuple(int(part) for part in optuna.__version__.split(".")[:2]) < (4, 9):
    raise ImportError(
        f"optuna {optuna.__version__} is too old (4.9 or newer): pip uninstall -y hydra-optuna-sweeper, then "
        "pip install -e '.[sweeps]'"
    )

from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, Trial, TrialState

from hw2lab.errors import HW2LabError


def quiet_optuna() -> None:
    """Heartbeats, stale-trial retries and constant_liar are features Optuna still marks experimental, and it
    warns about heartbeats outside Study.optimize, which is what the sweeper does on purpose (it records
    them itself, see optuna_sweeper.heartbeats()). Called when a search starts (not at import: Hydra's plugin
    scan imports the sweeper inside catch_warnings, which would undo the filters)."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings(
        "ignore", message="Heartbeat of storage is supposed to be used with Study.optimize"
    )


NOT_RUN = "not_run"  # user attribute of a trial asked for past n_trials (a race between workers)


def shown_url(url: str) -> str:
    """The storage URL without its password, for logs and summary.md."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def open_storage(
    url: str,
    heartbeat_interval: int | None = 60,
    grace_period: int | None = None,
    max_retry: int | None = 3,
) -> optuna.storages.RDBStorage:
    """The study database: `sqlite:///<file>` (its folder is created) or `postgresql://user:pw@host/db`.
    Trials send a heartbeat every `heartbeat_interval` s; a running trial silent for `grace_period` s
    (default: twice the interval) is failed and queued again, at most `max_retry` times."""
    quiet_optuna()
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        from sqlalchemy.engine import make_url

        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # several processes on one SQLite file wait for each other's writes instead of failing at once
        engine_kwargs["connect_args"] = {"timeout": 60}
    else:
        engine_kwargs["pool_pre_ping"] = True
    try:
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
            if heartbeat_interval
            else None,
        )
    except Exception as error:
        reason = " ".join(str(getattr(error, "orig", None) or error).split())
        raise HW2LabError(f"cannot open the Optuna storage {shown_url(url)}: {reason}") from None


def open_study(
    storage: optuna.storages.BaseStorage,
    study_name: str,
    direction: str,
    sampler: optuna.samplers.BaseSampler | None = None,
) -> optuna.Study:
    """Create the study, or continue the one of that name; refuse one that optimises the other way."""
    wanted = optuna.study.StudyDirection[direction.upper()]
    study = optuna.create_study(
        storage=storage, study_name=study_name, direction=direction, sampler=sampler, load_if_exists=True
    )
    if study.directions != [wanted]:
        have = ", ".join(d.name.lower() for d in study.directions)
        raise HW2LabError(
            f"the Optuna study '{study_name}' in {storage_label(storage)} was created to {have}, not to "
            f"{direction}: pick another study name (hydra.sweeper.study_name=...) or storage"
        )
    return study


def storage_label(storage: Any) -> str:
    url = getattr(storage, "url", None)
    return shown_url(url) if url else type(storage).__name__


def superseded(trials: Sequence[FrozenTrial]) -> set[int]:
    """Numbers of the failed trials that were queued again (their retry stands in for them)."""
    return {number for t in trials for number in RetryHeartbeatStaleTrialCallback.retry_history(t)}


def counted(trials: Sequence[FrozenTrial], waiting: bool = False) -> list[FrozenTrial]:
    """The trials that use up the study's n_trials: all but failed ones that were queued again and ones that
    were never run (asked for past the budget); queued (WAITING) ones only with `waiting`."""
    retried = superseded(trials)
    return [
        t
        for t in trials
        if t.number not in retried
        and not t.user_attrs.get(NOT_RUN)
        and (waiting or t.state != TrialState.WAITING)
    ]


def within_budget(study: optuna.Study, trial: Trial, n_trials: int) -> bool:
    """Whether this trial is one of the first n_trials of the study. Trial numbers are handed out by the
    database, so all workers agree; queued trials count, as they will run."""
    before = [t for t in counted(study.get_trials(deepcopy=False), waiting=True) if t.number < trial.number]
    return len(before) < n_trials
