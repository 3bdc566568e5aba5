"""The one training pipeline every task runs through: build from config, fit, test, write the contract.

Output contract, in the run's Hydra output dir: metrics.json, history.csv, figures/*.png,
checkpoints/ (last and best), tensorboard/, .hydra/.
"""

from __future__ import annotations

import json
import logging
import math
import time
import traceback
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from hw2lab.errors import HW2LabError

log = logging.getLogger("hw2lab")


def build(config: DictConfig, **kwargs: Any) -> Any:
    """`hydra.utils.instantiate`, but a user error raised inside a constructor keeps its one-line form."""
    try:
        return instantiate(config, **kwargs)
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, HW2LabError):
            raise cause from None
        raise


def run(cfg: DictConfig) -> float:
    """Train and test one configuration; return the metric a sweeper optimises.

    In a multirun a failing job is recorded (metrics.json, status "failed") and returns NaN so the
    other jobs still run; the sweep callback turns any failure into a non-zero exit at the end.
    """
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "task": cfg.task_name,
        "status": "running",
        "overrides": _task_overrides(),
        "hparams": key_hparams(cfg),
    }
    started = time.perf_counter()
    try:
        record.update(fit_and_test(cfg, output_dir))
        record["status"] = "ok"
    except BaseException as error:
        record["status"] = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
        record["error"] = one_line(error)
        if not isinstance(error, HW2LabError):
            (output_dir / "error.txt").write_text(traceback.format_exc())
        if _is_multirun() and isinstance(error, Exception):
            log.error("job failed: %s", record["error"])
            return math.nan
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

    datamodule = build(cfg.data)
    model = build(cfg.model)
    callbacks = [build(c) for c in (cfg.get("callbacks") or {}).values() if c and "_target_" in c]
    loggers = [build(c) for c in (cfg.get("logger") or {}).values() if c and "_target_" in c]
    trainer: L.Trainer = build(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    log.info("fitting %s (%s) on %s", type(model).__name__, cfg.task_name, type(datamodule).__name__)
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics = scalar_metrics(trainer.callback_metrics)

    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if cfg.get("test", True):
        results = trainer.test(model, datamodule=datamodule, ckpt_path=best or None, verbose=False)
        for result in results:
            metrics.update(scalar_metrics(result))

    if trainer.is_global_zero:
        hparams = key_hparams(cfg)
        for logger in trainer.loggers:
            logger.log_hyperparams(hparams, metrics={f"final/{k}": v for k, v in metrics.items()})
    return {
        "metrics": metrics,
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "best_checkpoint": str(Path(best).relative_to(output_dir)) if best else None,
        "device": str(model.device.type),
        "precision": str(trainer.precision),
    }


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


def one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if isinstance(error, HW2LabError) else f"{type(error).__name__}: {text}"


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")


def _hydra_config():
    return HydraConfig.get() if HydraConfig.initialized() else None


def _is_multirun() -> bool:
    hydra_cfg = _hydra_config()
    return hydra_cfg is not None and hydra_cfg.mode == RunMode.MULTIRUN


def _task_overrides() -> list[str]:
    hydra_cfg = _hydra_config()
    return list(hydra_cfg.overrides.task) if hydra_cfg is not None else []
