"""A sixth task, added as docs/developing.md says: new files in its own rooms only (a datamodule, a module, a
callback, its conf/ files and its result rows), on a copy of the tree. It must run through run.py, a `-m` sweep,
`hw2lab.reproduce --budget smoke`, the report and the import contracts with no shared file edited."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO_ROOT

TREE = (
    "run.py",
    "pyproject.toml",
    "README.md",
    "conf",
    "hw2lab",
    "callbacks",
    "lightning_modules",
    "datamodules",
    "hydra_plugins",
    "docs",
    "results",
)

# The walk-through's files (docs/developing.md, "Adding a task"), here for a task named `toy`: two Gaussian
# blobs of points, made from the seed, told apart by a linear layer.
TOY_FILES = {
    "datamodules/toy.py": '''
"""The toy task's data: two Gaussian blobs of points, made from the seed (no files to read)."""

import torch

from datamodules.tensor_batches import InMemoryDataModule


class BlobsDataModule(InMemoryDataModule):
    def __init__(self, points: int = 600, features: int = 2, batch_size: int = 32, seed: int = 0) -> None:
        super().__init__(batch_size, seed)
        self.points, self.features = points, features

    def setup(self, stage: str | None = None) -> None:
        generator = torch.Generator().manual_seed(self.seed)
        y = torch.randint(0, 2, (self.points,), generator=generator)
        x = torch.randn(self.points, self.features, generator=generator) + (2.0 * y - 1.0)[:, None]
        train, val = int(0.7 * self.points), int(0.85 * self.points)
        self.split_tensors = {"train": (x[:train], y[:train]), "val": (x[train:val], y[train:val]),
                              "test": (x[val:], y[val:])}

    def net_inputs(self) -> dict:
        return {"features": self.features}
''',
    "lightning_modules/toy.py": '''
"""The toy task's model: a linear layer on the points, cross-entropy, accuracy."""

import torch.nn.functional as F
from torch import nn

from hw2lab.training import TaskModule


def linear_net(features: int, classes: int = 2) -> nn.Module:
    return nn.Linear(features, classes)


class BlobsClassifier(TaskModule):
    def __init__(self, net, optimizer, scheduler=None, scheduler_interval: str = "step") -> None:
        super().__init__(optimizer, scheduler, scheduler_interval, net=net)

    def step(self, stage: str, batch):
        x, y = batch
        logits = self.net(x)
        loss = F.cross_entropy(logits, y)
        self.accumulate(stage, y.shape[0], loss=loss, acc=(logits.argmax(1) == y).float().mean())
        return loss

    def training_step(self, batch, batch_idx):
        return self.step("train", batch)

    def validation_step(self, batch, batch_idx):
        self.step("val", batch)

    def test_step(self, batch, batch_idx):
        self.step("test", batch)
''',
    "callbacks/toy.py": '''
"""The toy task's figures: a sweep's validation curves side by side."""

from hw2lab.figures import plot_validation_curves


def compare_learning_rates(jobs, sweep_dir):
    return plot_validation_curves(jobs, ["loss", "acc"], sweep_dir)
''',
    "conf/data/blobs.yaml": """
_target_: datamodules.toy.BlobsDataModule
points: 600
batch_size: 32
seed: ${seed}
""",
    "conf/model/toy_linear.yaml": """
_target_: lightning_modules.toy.BlobsClassifier
net: {_target_: lightning_modules.toy.linear_net, _partial_: true}
optimizer: {_target_: torch.optim.SGD, _partial_: true, lr: "${lr}"}
""",
    "conf/callbacks/toy.yaml": """
defaults:
  - default
learning_curves:
  metrics: [loss, acc]
""",
    "conf/task/toy.yaml": """
# @package _global_
defaults:
  - /data: blobs
  - /model: toy_linear
  - /callbacks: toy
task_name: toy
lr: 0.1
optimized_metric: val/loss
optimized_mode: min
sweep_comparison:
  _target_: callbacks.toy.compare_learning_rates
  _partial_: true
trainer:
  max_epochs: 3
""",
    "conf/results/toy.yaml": """
order: 6
figure: learning_curves.png
runs:
  lr:
    command: python run.py -m task=toy lr=0.01,0.1
    record: results/toy/toy_lr.json
    minutes: 0.2
    minutes_source: a guess (a linear layer on 600 points, 3 epochs)
rows:
  - label: "test accuracy by learning rate 0.01 / 0.1, two blobs of points"
    run: lr
    metric: test/acc
    where: {task: toy}
    over: {lr: [0.01, 0.1]}
""",
}


def digest(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def run(tree: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    result = subprocess.run(
        [sys.executable, *args], cwd=tree, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"{' '.join(args)}: {result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.mark.slow
def test_a_sixth_task_runs_everywhere_with_only_its_own_files(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in TREE:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, tree / name)
    shared_before = digest(tree)
    for relative, text in TOY_FILES.items():
        path = tree / relative
        assert not path.exists(), f"{relative} would edit a shared file"
        assert relative.split("/")[0] in ("conf", "callbacks", "lightning_modules", "datamodules")
        path.write_text(text.lstrip())

    # One run, with every file of the output contract.
    run(tree, "run.py", "task=toy", "logger=none", f"hydra.run.dir={tmp_path / 'one'}")
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert one["status"] == "ok" and one["epochs"] == 3 and 0.5 < one["metrics"]["test/acc"] <= 1
    assert (tmp_path / "one" / "figures" / "learning_curves.png").is_file()

    # A sweep, with its summary and the task's comparison figure.
    run(
        tree,
        "run.py",
        "-m",
        "task=toy",
        "lr=0.01,0.1",
        "logger=none",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )
    assert (tmp_path / "sweep" / "comparison.png").is_file()
    assert "lr" in (tmp_path / "sweep" / "summary.md").read_text()

    # The declared rows: reproduce runs their command, the report and README's table show them.
    out = tmp_path / "reproduction"
    reproduced = run(tree, "-m", "hw2lab.reproduce", "--budget", "smoke", "--tasks", "toy", "--out", str(out))
    assert "toy/lr" in reproduced.stdout and "2 ran, 0 skipped, 0 failed" in reproduced.stdout
    assert {path.parent.name for path in (out / "smoke" / "toy" / "lr").glob("*/metrics.json")} == {"0", "1"}
    run(tree, "-m", "hw2lab.report", "--readme")
    assert (
        "test accuracy by learning rate 0.01 / 0.1, two blobs of points" in (tree / "README.md").read_text()
    )

    # The import contracts cover the new task without naming it: kept, then broken by a back edge.
    linter = [
        sys.executable,
        "-c",
        "from importlinter.cli import lint_imports_command as c; c()",
        "--no-cache",
    ]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    kept = subprocess.run(linter, cwd=tree, env=env, capture_output=True, text=True, timeout=120)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    with open(tree / "callbacks" / "toy.py", "a") as handle:
        handle.write("\n\ndef _later():\n    from lightning_modules.vae import vae_loss\n")
    broken = subprocess.run(linter, cwd=tree, env=env, capture_output=True, text=True, timeout=120)
    assert (
        broken.returncode == 1
        and "callbacks.toy is not allowed to import lightning_modules.vae" in broken.stdout
    )

    # Nothing shared was edited by hand: the files that changed are the task's, or what the commands regenerate.
    changed = {name for name, sha in digest(tree).items() if shared_before.get(name, sha) != sha}
    assert changed <= {"README.md"}, changed
