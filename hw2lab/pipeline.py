"""The one training pipeline every task runs through: build from config, fit, test, write the contract.

Output contract, in the run's Hydra output dir: metrics.json, history.csv, figures/*.png,
checkpoints/ (last and best), tensorboard/, .hydra/.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from hw2lab.errors import HW2LabError, one_line
from hw2lab.provenance import code_version, machine
from hw2lab.run_files import read_history, write_json
from hw2lab.value_types import check_value_types

log = logging.getLogger("hw2lab")


def build(config: DictConfig, path: str = "", **kwargs: Any) -> Any:
    """`hydra.utils.instantiate`, but a user error raised inside a constructor keeps its one-line form, and a
    value of the wrong type is named by its key before any constructor sees it. `path` is where `config`
    sits in the whole config (e.g. "model"), for the messages."""
    if isinstance(config, DictConfig):
        check_value_types(config, path)
    try:
        return instantiate(config, **kwargs)
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, HW2LabError):
            raise cause from None
        if isinstance(cause, TypeError | ValueError):
            # A constructor refusing a value (a string where a number goes, an unknown keyword) is a
            # config problem: say which object and what, in one line.
            target = config.get("_target_", "?") if isinstance(config, DictConfig) else "?"
            raise HW2LabError(f"bad config for {target}: {' '.join(str(cause).split())}") from None
        raise


def run(cfg: DictConfig) -> float:
    """Train and test one configuration; return the metric a sweeper optimises.

    In a multirun a failing job is recorded (metrics.json, status "failed") and returns NaN so the
    other jobs still run; the sweep callback turns any failure into a non-zero exit at the end.
    """
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    overrides = _task_overrides()
    record: dict[str, Any] = {
        "task": cfg.task_name,
        "status": "running",
        "command": " ".join(["python run.py", *overrides]),
        "date": datetime.now().isoformat(timespec="seconds"),
        "machine": machine(),
        "overrides": overrides,
        "hparams": key_hparams(cfg),
        **code_version(),
    }
    started = time.perf_counter()
    try:
        record.update(fit_and_test(cfg, output_dir))
        record["status"] = "ok"
    except BaseException as error:
        # Lightning turns Ctrl-C into sys.exit(1) and SIGTERM into SIGTERMException (a SystemExit).
        if isinstance(error, KeyboardInterrupt | SystemExit):
            record["status"] = "interrupted"
            record["error"] = f"interrupted ({type(error).__name__})"
            code = error.code if isinstance(error, SystemExit) and error.code else 143
            raise SystemExit(code) from None
        record["status"] = "failed"
        record["error"] = one_line(error)
        if not isinstance(error, HW2LabError):
            (output_dir / "error.txt").write_text(traceback.format_exc())
        if _is_multirun():
            log.error("job failed: %s", record["error"])
            return math.nan
        if isinstance(error, HW2LabError) and _hydra_config() is not None:
            # A user error is its one line and a non-zero exit (no Hydra stack-trace hint under it).
            print(f"error: {record['error']}", file=sys.stderr)
            raise SystemExit(1) from None
        raise
    finally:
        record["duration_s"] = round(time.perf_counter() - started, 2)
        write_json(output_dir / "metrics.json", record)
    value = record["metrics"].get(cfg.get("optimized_metric") or "", math.nan)
    return float(value)


def fit_and_test(cfg: DictConfig, output_dir: Path) -> dict[str, Any]:
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if cfg.get("matmul_precision"):
        torch.set_float32_matmul_precision(cfg.matmul_precision)
    threads = cpu_threads(cfg.get("num_threads"))
    if threads:
        torch.set_num_threads(threads)
    check_strategy_fits_launcher(cfg)
    ckpt_path = resume_checkpoint(cfg, output_dir)

    datamodule = build(cfg.data, "data")
    model = build(cfg.model, "model")
    callbacks = [
        build(c, f"callbacks.{name}")
        for name, c in (cfg.get("callbacks") or {}).items()
        if c and "_target_" in c
    ]
    loggers = [
        build(c, f"logger.{name}") for name, c in (cfg.get("logger") or {}).items() if c and "_target_" in c
    ]
    trainer: L.Trainer = build(cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False)

    log.info("fitting %s (%s) on %s", type(model).__name__, cfg.task_name, type(datamodule).__name__)
    fit_started = time.perf_counter()
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    fit_s = round(time.perf_counter() - fit_started, 2)  # this process's: a resumed run's latest part
    # A run continued from a last.ckpt written after its final epoch trains no epoch, so Lightning holds no
    # metrics of it; the final epoch's are history.csv's last row, which the checkpoint restored.
    metrics = scalar_metrics(trainer.callback_metrics) or last_epoch_metrics(output_dir / "history.csv")

    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if cfg.get("test", True):
        results = trainer.test(model, datamodule=datamodule, ckpt_path=best or None, verbose=False)
        for result in results:
            metrics.update(scalar_metrics(result))

    if trainer.is_global_zero:
        hparams = key_hparams(cfg)
        for logger in trainer.loggers:
            logger.log_hyperparams(hparams, metrics={f"final/{k}": v for k, v in metrics.items()})
    # Anything the run must report that is not a number (e.g. countries the world map cannot draw):
    # objects expose it as `run_notes`, a dict.
    notes: dict[str, Any] = {}
    for source in (datamodule, model, *callbacks):
        notes.update(getattr(source, "run_notes", None) or {})
    return {
        "metrics": metrics,
        "notes": notes,
        "epochs": trainer.current_epoch,
        "best_epoch": best_epoch(
            output_dir / "history.csv", cfg.get("optimized_metric"), cfg.get("optimized_mode")
        ),
        "fit_s": fit_s,
        "global_step": trainer.global_step,
        "best_checkpoint": str(Path(best).relative_to(output_dir)) if best else None,
        "device": str(trainer.strategy.root_device),  # the module is back on the CPU after teardown
        "torch_threads": torch.get_num_threads(),
        "precision": str(trainer.precision),
    }


def best_epoch(history: Path, metric: str | None, mode: str | None) -> int | None:
    """The epoch (counted from 1) with the best `metric` in history.csv, as the best checkpoint chose it
    (the first of equals); None without a history or that metric."""
    if not metric or not history.is_file():
        return None
    scored = [
        (row[metric], int(row["epoch"]))
        for row in read_history(history)
        if not math.isnan(row.get(metric, math.nan))
    ]
    if not scored:
        return None
    best = min(scored, key=lambda item: item[0]) if mode != "max" else max(scored, key=lambda item: item[0])
    return best[1] + 1


def last_epoch_metrics(history: Path) -> dict[str, float]:
    """The metrics of history.csv's last epoch (none without a history)."""
    rows = read_history(history) if history.is_file() else []
    if not rows:
        return {}
    return {k: v for k, v in sorted(rows[-1].items()) if k != "epoch" and not math.isnan(v)}


def cpu_threads(requested: int | None) -> int | None:
    """Torch threads per job: as configured, or, when a parallel launcher runs several jobs on this
    machine at once (hydra/launcher=joblib), the cores shared out between them."""
    if requested:
        return int(requested)
    hydra_cfg = _hydra_config()
    if hydra_cfg is None or "joblib" not in str(hydra_cfg.launcher.get("_target_", "")).lower():
        return None
    cores = os.cpu_count() or 1
    parallel = hydra_cfg.launcher.get("n_jobs") or cores
    parallel = cores if parallel < 0 else min(parallel, cores)
    return max(1, cores // parallel)


def check_strategy_fits_launcher(cfg: DictConfig) -> None:
    """Plain `ddp` re-runs this script once per device; inside a local multirun that starts whole sweeps
    again (stray output dirs, hangs). Under SLURM the processes come from srun instead, which is fine."""
    strategy = cfg.trainer.get("strategy")
    start_method = strategy.get("start_method", "popen") if isinstance(strategy, DictConfig) else None
    popen_ddp = strategy == "ddp" or (
        isinstance(strategy, DictConfig)
        and "DDPStrategy" in strategy.get("_target_", "")
        and start_method == "popen"
    )
    hydra_cfg = _hydra_config()
    launcher = str(hydra_cfg.launcher.get("_target_", "")) if hydra_cfg is not None else ""
    if popen_ddp and _is_multirun() and "slurm" not in launcher.lower():
        raise HW2LabError(
            "trainer=ddp starts one process per device by re-running the command, which cannot work inside a "
            "local multirun; use trainer=ddp_spawn for local sweeps, or hydra/launcher=submitit_slurm"
        )


def resume_checkpoint(cfg: DictConfig, output_dir: Path) -> str | None:
    """The checkpoint to continue from: `ckpt_path`, or with `resume` the run dir's checkpoints/last.ckpt."""
    if cfg.get("ckpt_path"):
        path = Path(cfg.ckpt_path)
        if not path.is_file():
            raise HW2LabError(f"ckpt_path {path} does not exist")
        return str(path)
    if cfg.get("resume"):
        path = output_dir / "checkpoints" / "last.ckpt"
        if not path.is_file():
            raise HW2LabError(f"cannot resume: {path} does not exist (resume= takes a run dir that has one)")
        log.info("resuming from %s", path)
        return str(path)
    return None


def scalar_metrics(values: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in values.items():
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                continue
            value = value.item()
        out[key] = float(value)
    return dict(sorted(out.items()))


def key_hparams(cfg: DictConfig) -> dict[str, Any]:
    """The settings that tell runs apart: seed, epochs, the model's and data's knobs, flattened."""
    picked = {
        "seed": cfg.get("seed"),
        "max_epochs": cfg.trainer.get("max_epochs"),
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "data": OmegaConf.to_container(cfg.data, resolve=True),
    }
    flat: dict[str, Any] = {}
    _flatten(picked, "", flat)
    return flat


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "_target_" or key in ("data_dir",) or str(key).startswith("_"):
                continue
            _flatten(item, f"{prefix}{key}.", out)
    elif isinstance(value, list | tuple):
        out[prefix[:-1]] = ",".join(map(str, value))
    else:
        out[prefix[:-1]] = value


def _hydra_config():
    return HydraConfig.get() if HydraConfig.initialized() else None


def _is_multirun() -> bool:
    hydra_cfg = _hydra_config()
    return hydra_cfg is not None and hydra_cfg.mode == RunMode.MULTIRUN


def _task_overrides() -> list[str]:
    hydra_cfg = _hydra_config()
    return list(hydra_cfg.overrides.task) if hydra_cfg is not None else []
