"""Helpers for tests: compose configs, run `run.py` as a user does, check the output contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
from omegaconf import DictConfig

from hw2lab.compose import REPO_ROOT, compose_config  # noqa: F401  (tests compose as bench scripts do)
from hw2lab.pipeline import build


def model_for_data(cfg: DictConfig) -> L.LightningModule:
    """The config's module with its net built for the config's data, as `setup` builds it in a run (for
    data that knows its net inputs before reading: image shapes, classes, features)."""
    module = build(cfg.model, "model")
    module.build_net(build(cfg.data, "data").net_inputs())
    return module


def quiet_trainer(**settings) -> L.Trainer:
    """A CPU Trainer for in-process tests: no logger, checkpoints, progress bar, model summary or sanity check
    unless `settings` say otherwise."""
    options = {
        "accelerator": "cpu",
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        **settings,
    }
    return L.Trainer(**options)


def run_cli(
    args: list[str],
    tmp_path: Path,
    data_dir: Path | str | None = None,
    expect_ok: bool = True,
    timeout: int = 600,
) -> subprocess.CompletedProcess:
    """Run `python run.py <args>` in a subprocess with outputs under tmp_path/run (or tmp_path/sweep)."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["PYTHONUNBUFFERED"] = "1"
    if data_dir is not None:
        env["HW2LAB_DATA_DIR"] = str(data_dir)
    command = [
        sys.executable,
        str(REPO_ROOT / "run.py"),
        *args,
        f"hydra.run.dir={tmp_path / 'run'}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)
    if expect_ok and result.returncode != 0:
        raise AssertionError(f"run.py {' '.join(args)} exited {result.returncode}:\n{result.stderr[-4000:]}")
    return result


def assert_run_outputs(run_dir: Path, figures: list[str]) -> dict:
    """Check the output contract of one run and return its metrics.json."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "ok", metrics
    assert metrics["metrics"], "metrics.json has no metrics"
    assert (run_dir / "history.csv").stat().st_size > 0
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert metrics["best_checkpoint"] and (run_dir / metrics["best_checkpoint"]).is_file()
    assert any((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    for name in figures:
        path = run_dir / "figures" / f"{name}.png"
        assert path.is_file() and path.stat().st_size > 1000, f"missing or empty figure {path}"
    return metrics


def write_tibetan_npz(data_dir: Path, count: int = 60) -> Path:
    """A TibetanMNIST npz in the real layout (image uint8 (N, 28, 28), label int64) under data_dir:
    a bright bar whose position depends on the label, plus noise, so there is something to learn."""
    import numpy as np

    rng = np.random.default_rng(0)
    images = np.zeros((count, 28, 28), dtype=np.uint8)
    for i in range(count):
        images[i, 4:24, 2 + (i % 10) * 2 : 6 + (i % 10) * 2] = 255
    images = np.clip(images.astype(int) + rng.integers(0, 30, images.shape), 0, 255).astype(np.uint8)
    folder = data_dir / "tibetan_mnist"
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "TibetanMNIST.npz", image=images, label=np.arange(count) % 10)
    return data_dir
