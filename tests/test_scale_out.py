"""Beyond one process, and never losing a run: launchers, DDP on CPU, Optuna, resume, interrupts, NaN."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from helpers import REPO_ROOT, assert_run_outputs, write_tibetan_npz

from callbacks.fault_tolerance import StopOnNonFiniteLoss
from datamodules.tensor_batches import TensorBatches
from hw2lab.errors import HW2LabError
from hw2lab.resolvers import run_dir

TINY = ["trainer.max_epochs=2", "data.batch_size=16", "logger=none"]
FIGURES = ["learning_curves", "reconstructions", "prior_samples", "interpolations"]


@pytest.fixture
def tibetan_dir(tmp_path):
    return write_tibetan_npz(tmp_path / "data", count=60)


def read_summary(sweep: Path) -> list[dict]:
    with open(sweep / "summary.csv") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_joblib_launcher_runs_jobs_in_parallel_with_threads_shared_out(cli, tmp_path, tibetan_dir):
    cli(
        ["-m", "task=vae", "kl_weight=0,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *TINY],
        tibetan_dir,
    )
    rows = read_summary(tmp_path / "sweep")
    assert [row["status"] for row in rows] == ["ok", "ok"]
    cores = os.cpu_count() or 1
    for job in ("0", "1"):
        metrics = json.loads((tmp_path / "sweep" / job / "metrics.json").read_text())
        assert metrics["torch_threads"] == max(1, cores // min(2, cores))


@pytest.mark.slow
def test_submitit_local_launcher_runs_the_same_path(cli, tmp_path, tibetan_dir):
    cli(["-m", "task=vae", "kl_weight=0,1", "hydra/launcher=submitit_local", *TINY], tibetan_dir)
    rows = read_summary(tmp_path / "sweep")
    assert [row["status"] for row in rows] == ["ok", "ok"]
    assert (tmp_path / "sweep" / "comparison.png").is_file()


@pytest.mark.slow
def test_ddp_cpu_two_processes_reduce_metrics_and_write_files_once(cli, tmp_path, tibetan_dir):
    cli(
        ["task=vae", "trainer=ddp_cpu", "trainer.max_epochs=2", "data.batch_size=8", "logger=tensorboard"],
        tibetan_dir,
    )
    run = tmp_path / "run"
    metrics = assert_run_outputs(run, FIGURES)
    assert metrics["metrics"]["test/neg_elbo"] > 0
    with open(run / "history.csv") as handle:
        assert [row["epoch"] for row in csv.DictReader(handle)] == ["0", "1"]  # one writer, not two


@pytest.mark.slow
def test_plain_ddp_inside_a_local_multirun_is_refused_up_front(cli, tmp_path, tibetan_dir):
    result = cli(
        [
            "-m",
            "task=vae",
            "kl_weight=0,1",
            "trainer=ddp",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "trainer.strategy.process_group_backend=gloo",
            "trainer.precision=32-true",
            *TINY,
        ],
        tibetan_dir,
        expect_ok=False,
    )
    assert result.returncode != 0
    assert "use trainer=ddp_spawn" in read_summary(tmp_path / "sweep")[0]["error"]


@pytest.mark.slow
def test_optuna_preset_puts_best_parameters_in_the_summary(cli, tmp_path, tibetan_dir):
    cli(
        [
            "task=vae",
            "hparams_search=vae_optuna",
            "hydra.sweeper.n_trials=2",
            "hydra.sweeper.sampler.n_startup_trials=1",
            *TINY,
        ],
        tibetan_dir,
    )
    summary = (tmp_path / "sweep" / "summary.md").read_text()
    assert "best parameters" in summary and "model.optimizer.lr" in summary
    assert len(read_summary(tmp_path / "sweep")) == 2


def _start(args: list[str], run: Path, data_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "HW2LAB_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, str(REPO_ROOT / "run.py"), *args, f"hydra.run.dir={run}"]
    return subprocess.Popen(
        command, env=env, cwd=run.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_resume_matches_an_uninterrupted_run(tmp_path):
    data_dir = write_tibetan_npz(tmp_path / "data", count=400)
    args = [
        "task=vae",
        "trainer.max_epochs=30",
        "data.batch_size=8",
        "logger=none",
        "test=false",
        "callbacks.reconstructions=null",
        "callbacks.prior_samples=null",
        "callbacks.interpolations=null",
        "trainer.deterministic=true",
    ]

    whole = tmp_path / "whole"
    assert _start(args, whole, data_dir).wait(timeout=600) == 0

    broken = tmp_path / "broken"
    process = _start(args, broken, data_dir)
    history = broken / "history.csv"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if history.exists() and len(history.read_text().splitlines()) >= 3:  # header + 2 finished epochs
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=120)[0]
    assert process.returncode != 0, output[-2000:]
    assert json.loads((broken / "metrics.json").read_text())["status"] == "interrupted"
    assert (broken / "checkpoints" / "interrupted.ckpt").is_file() and (
        broken / "checkpoints" / "last.ckpt"
    ).is_file()

    resumed = _start([*args, f"resume={broken}"], broken, data_dir)
    resumed_output = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, resumed_output[-3000:]
    expected = json.loads((whole / "metrics.json").read_text())
    got = json.loads((broken / "metrics.json").read_text())
    assert got["status"] == "ok" and got["epochs"] == expected["epochs"] == 30
    for key, value in expected["metrics"].items():
        assert got["metrics"][key] == pytest.approx(value, rel=1e-5, abs=1e-5), key
    with open(whole / "history.csv") as expected_rows, open(broken / "history.csv") as got_rows:
        expected_history, got_history = list(csv.DictReader(expected_rows)), list(csv.DictReader(got_rows))
    assert [int(row["epoch"]) for row in got_history] == list(range(30))
    for want, row in zip(
        expected_history, got_history, strict=True
    ):  # every epoch whole, the stopped one too
        for key, value in want.items():
            if "per_s" not in key and not key.endswith("minutes"):
                assert float(row[key]) == pytest.approx(float(value), rel=1e-5, abs=1e-5), (row["epoch"], key)


def test_resuming_a_run_whose_training_had_ended_keeps_its_final_epoch_metrics(cli, tmp_path, tibetan_dir):
    """Stopped after its last epoch's checkpoint (while testing, say), a run continues with no epoch left to
    train; its metrics.json must still hold that epoch's training and validation metrics, not only the test's."""
    args = ["task=vae", *TINY, "callbacks.interpolations=null"]
    cli(args, tibetan_dir)
    run = tmp_path / "run"
    before = json.loads((run / "metrics.json").read_text())["metrics"]
    cli([*args, f"resume={run}"], tibetan_dir)
    after = json.loads((run / "metrics.json").read_text())["metrics"]
    assert any(key.startswith("val/") for key in after)
    assert after == {key: pytest.approx(value, rel=1e-6) for key, value in before.items()}


@pytest.mark.slow
def test_runs_never_share_an_output_dir(tmp_path):
    first, second = run_dir(None, str(tmp_path)), run_dir(None, str(tmp_path))
    assert first != second
    (tmp_path / "2026-01-01" / "10-00-00-000001" / "checkpoints").mkdir(parents=True)
    (tmp_path / "2026-01-01" / "10-00-00-000001" / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert run_dir(True, str(tmp_path)).endswith("10-00-00-000001")
    with pytest.raises(HW2LabError, match="no run under"):
        run_dir(True, str(tmp_path / "nothing"))


class _NaNAfter(L.LightningModule):
    """Trains a line; its loss becomes NaN from global step `bad_step` on."""

    def __init__(self, bad_step: int) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.bad_step = bad_step

    def training_step(self, batch, batch_idx):
        (x,) = batch
        loss = self.layer(x).pow(2).mean()
        return loss * float("nan") if self.global_step >= self.bad_step else loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


@pytest.mark.slow
def test_nan_loss_stops_with_epoch_and_step_and_keeps_the_last_good_checkpoint(tmp_path):
    checkpoints = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True)
    trainer = L.Trainer(
        max_epochs=5,
        callbacks=[checkpoints, StopOnNonFiniteLoss(check_every_n_steps=100)],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    batches = TensorBatches(torch.randn(40, 2), batch_size=10)  # 4 steps an epoch
    with pytest.raises(HW2LabError) as error:
        trainer.fit(_NaNAfter(bad_step=9), train_dataloaders=batches)
    message = str(error.value)
    assert "became nan at epoch 2, step 9" in message and "last good checkpoint" in message
    state = torch.load(tmp_path / "last.ckpt", weights_only=False)
    assert state["epoch"] == 1 and all(torch.isfinite(v).all() for v in state["state_dict"].values())


class _WorseEveryEpoch(L.LightningModule):
    """Validation loss that rises every epoch: the best checkpoint stays at epoch 0."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", float(self.current_epoch))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_last_checkpoint_holds_the_latest_epoch_after_the_metric_stops_improving(tmp_path):
    from hydra.utils import instantiate
    from omegaconf import open_dict

    from hw2lab.compose import compose_config

    cfg = compose_config(["task=vae"], output_dir=tmp_path)
    with open_dict(cfg):
        cfg.callbacks.model_checkpoint.monitor = "val/loss"
    callbacks = [instantiate(cfg.callbacks.model_checkpoint), instantiate(cfg.callbacks.last_checkpoint)]
    trainer = L.Trainer(
        max_epochs=3, callbacks=callbacks, logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    batches = TensorBatches(torch.randn(8, 2), batch_size=4)
    trainer.fit(_WorseEveryEpoch(), train_dataloaders=batches, val_dataloaders=batches)
    checkpoints = tmp_path / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best-epoch000.ckpt", "last.ckpt"]
    assert torch.load(checkpoints / "last.ckpt", weights_only=False)["epoch"] == 2
    assert trainer.checkpoint_callback is callbacks[0]


@pytest.mark.parametrize("task, preset", [("vae", "vae_optuna"), ("covid", "covid_optuna")])
def test_optuna_presets_search_keys_that_exist(tmp_path, task, preset):
    from helpers import compose_config
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=[f"task={task}", f"hparams_search={preset}"],
            return_hydra_config=True,
        )
    params = cfg.hydra.sweeper.params
    plain = compose_config([f"task={task}"], tmp_path)
    for key in params:
        assert OmegaConf.select(plain, key) is not None, (
            f"{preset} searches {key}, which {task} does not have"
        )
    assert cfg.optimized_metric in ("val/neg_elbo", "val/acc")
