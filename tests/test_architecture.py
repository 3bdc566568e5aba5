"""Which module may import which (docs/developing.md): import-linter's contracts in pyproject.toml hold for the
tree, cover every module, and break when a module imports against them (checked on a copy of the tree)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO_ROOT

pytest.importorskip("importlinter", reason="import-linter is in the dev extra")
from importlinter.api import read_configuration  # noqa: E402

PACKAGES = ("hw2lab", "callbacks", "lightning_modules", "datamodules", "hydra_plugins")
ROOMS = ("callbacks", "lightning_modules", "datamodules")
TASKS = sorted(path.stem for path in (REPO_ROOT / "conf" / "task").glob("*.yaml"))


def contracts() -> dict[str, dict]:
    options = read_configuration(str(REPO_ROOT / "pyproject.toml"))["contracts_options"]
    return {contract["id"]: contract for contract in options}


def lint(root: Path, *contract_ids: str) -> subprocess.CompletedProcess:
    """`lint-imports` on the tree at `root` (its own packages first on the path), without a cache."""
    command = [sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()"]
    command += ["pyproject.toml", "--no-cache", "--no-logo", *(f"--contract={c}" for c in contract_ids)]
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=120)


def test_the_tree_keeps_every_contract():
    assert set(contracts()) == {"direction", "hw2lab", "tasks"}
    result = lint(REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_every_room_module_is_a_task_or_shared():
    """The tasks contract finds the tasks itself: each module or package directly in a room that is not
    shared. So each of them must be a task Hydra knows (`conf/task/<task>.yaml`) or listed as shared; the
    core of the direction contract is the core of the hw2lab contract (the latter is exhaustive)."""
    declared = contracts()
    tasks = declared["tasks"]
    assert sorted(tasks["rooms"]) == sorted(ROOMS)
    shared = set(tasks["shared"])
    for room in ROOMS:
        for path in sorted((REPO_ROOT / room).iterdir()):
            if path.suffix == ".py" and path.stem != "__init__" or (path / "__init__.py").is_file():
                module = f"{room}.{path.stem}"
                assert module in shared or path.stem in TASKS, f"{module}: no conf/task/{path.stem}.yaml"
    direction, inside = declared["direction"]["layers"], declared["hw2lab"]["layers"]
    assert names(direction[-1], "hw2lab.") == names(inside[-1])
    assert names(direction[0], "hw2lab.") == [*names(inside[0]), "hydra_plugins.hw2lab_optuna_sweeper"]


def names(layer: str, prefix: str = "") -> list[str]:
    """The modules of a layer (`a : b : (optional)`), without the parentheses and `prefix`."""
    return [name.strip("()").removeprefix(prefix) for name in layer.split(" : ")]


BACK_EDGES = [
    # (file, line appended, the contract it breaks)
    (
        "hw2lab/figures.py",
        "def _later():\n    from callbacks.learning_curves import read_history\n",
        "direction",
    ),
    ("hw2lab/sweep.py", "from hw2lab.tools.search_report import write_report\n", "hw2lab"),
    ("hw2lab/new_piece.py", "from hw2lab.errors import HW2LabError\n", "hw2lab"),
    ("datamodules/covid/windows.py", "from callbacks.covid.figures import Reliability\n", "direction"),
    ("lightning_modules/food.py", "from hw2lab.tools.report import main\n", "direction"),
    ("datamodules/tensor_batches.py", "from lightning_modules.vae import vae_loss\n", "tasks"),
    ("hw2lab/sweep.py", "def _later():\n    from callbacks.charlm import TextSamples\n", "tasks"),
    ("callbacks/food.py", "def _later():\n    from datamodules.covid.windows import FEATURES\n", "tasks"),
    ("lightning_modules/news/nets.py", "from lightning_modules.vae import vae_loss\n", "tasks"),
]


@pytest.mark.parametrize("path, line, contract", BACK_EDGES, ids=[f"{p}:{c}" for p, _, c in BACK_EDGES])
def test_a_back_edge_breaks_its_contract(tmp_path, path, line, contract):
    for package in PACKAGES:
        shutil.copytree(REPO_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path)
    assert lint(tmp_path, contract).returncode == 0, "the copy must keep the contract before the edit"
    target = tmp_path / path
    target.write_text((target.read_text() if target.exists() else "") + "\n\n" + line)
    result = lint(tmp_path, contract)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BROKEN" in result.stdout
    assert path.removesuffix(".py").replace("/", ".") in result.stdout


@pytest.mark.parametrize(
    "command, expected",
    [
        (["hw2lab.report", "--help"], "--readme"),
        (["hw2lab.reproduce", "--dry-run", "--tasks", "vae"], "reproduce: budget smoke"),
        (["hw2lab.search_report", "--help"], "storage"),
    ],
)
def test_the_commands_readme_shows_reach_the_tools(command, expected):
    result = subprocess.run(
        [sys.executable, "-m", *command], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout
