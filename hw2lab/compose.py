"""Composing the project's Hydra config outside `run.py` (benchmarks, notebooks, tests), quiet for a bench, and
writing a bench result where the project keeps them."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

import hw2lab  # noqa: F401  (registers the resolvers)
from hw2lab.provenance import machine
from hw2lab.run_files import write_json

REPO_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = REPO_ROOT / "conf"
BENCH_RESULTS = REPO_ROOT / "bench" / "results"


def compose_config(overrides: list[str], output_dir: str | Path | None = None) -> DictConfig:
    """The config `python run.py <overrides>` would run, with paths.output_dir at `output_dir` (there is
    no Hydra run to name one)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir or Path.cwd() / "outputs" / "composed")
    return cfg


# What a measurement runs without: the progress bar and the model summary (a terminal's cost, not the
# training's) and, unless asked for, the logger.
QUIET = ("logger=none", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false")


def bench_config(
    overrides: list[str], output_dir: str | Path | None = None, logger: bool = False
) -> DictConfig:
    """`compose_config` for a bench: the run's config with QUIET first (so `overrides` can undo it), the
    logger kept with `logger` (a bench timing the pipeline as users run it)."""
    quiet = [o for o in QUIET if logger is False or not o.startswith("logger=")]
    return compose_config([*quiet, *overrides], output_dir)


def script_as_typed(script: str) -> str:
    """A script inside this clone as typed in its root (`bench/x.py`), wherever it was run from."""
    path = Path(script).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else script


def write_bench_result(name: str, result: dict[str, Any], out: str | Path | None = None) -> Path:
    """Write a bench's result as JSON (default bench/results/<name>-<timestamp>.json, git-ignored), with the
    command that produced it, the date and the machine; print where it went."""
    now = datetime.now()
    path = Path(out) if out else BENCH_RESULTS / f"{name}-{now:%Y%m%d-%H%M%S}.json"
    record = {
        "bench": name,
        "command": " ".join(["python", script_as_typed(sys.argv[0]), *sys.argv[1:]]),
        "date": now.isoformat(timespec="seconds"),
        "machine": machine(),
        "result": result,
    }
    write_json(path, record)
    print(f"result written to {path}")
    return path
