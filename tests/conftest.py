"""Shared fixtures: the real data when present, and run.py in a per-test output dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import REPO_ROOT, run_cli


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    """Tests never reach for the network: a missing file is the offline one-line error (runs in subprocesses
    inherit this too). The test of the default unsets it."""
    monkeypatch.setenv("HW2LAB_DOWNLOAD", "false")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The real datasets (CI sets HW2LAB_DATA_DIR=../shared/data); tests that need them skip otherwise."""
    value = os.environ.get("HW2LAB_DATA_DIR")
    if not value or not Path(value).is_dir():
        pytest.skip("HW2LAB_DATA_DIR is not set to a data directory")
    return Path(value).resolve()


@pytest.fixture
def cli(tmp_path):
    """`cli(args, data_dir=..., expect_ok=...)` runs run.py with outputs in this test's tmp dir."""

    def _run(args: list[str], data_dir: Path | str | None = None, expect_ok: bool = True):
        return run_cli(args, tmp_path, data_dir=data_dir, expect_ok=expect_ok)

    return _run
