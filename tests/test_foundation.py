"""The shared plumbing: data files and downloads, in-memory batches, the sweep summary, config presets."""

from __future__ import annotations

import hashlib
import json
import zipfile

import pytest
import torch
from helpers import compose_config

from callbacks.news import cross_validation_groups, cross_validation_lines
from datamodules.tensor_batches import TensorBatches
from hw2lab.data_files import require
from hw2lab.errors import HW2LabError
from hw2lab.pipeline import fit_and_test
from hw2lab.sweep import collect_jobs, write_summary
from hw2lab.value_types import check_value_types


def test_require_names_file_place_and_remedy(tmp_path):
    with pytest.raises(HW2LabError) as error:
        require(tmp_path, "covid/x.csv", url="https://example.org/x.csv")
    message = str(error.value)
    assert "covid/x.csv" in message and str(tmp_path) in message and "https://example.org/x.csv" in message
    assert "\n" not in message


def test_download_is_checked_against_its_checksum(tmp_path):
    source = tmp_path / "source.txt"
    source.write_text("First Citizen:\n")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    data_dir = tmp_path / "data"
    got = require(data_dir, "text/input.txt", url=source.as_uri(), sha256=digest, download=True)
    assert got.read_text() == "First Citizen:\n"
    with pytest.raises(HW2LabError, match="checksum mismatch"):
        require(data_dir, "text/other.txt", url=source.as_uri(), sha256="0" * 64, download=True)
    assert not (data_dir / "text" / "other.txt").exists()


def test_download_unpacks_zip_archives(tmp_path):
    archive = tmp_path / "bbc.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("bbc/sport/001.txt", "Title\n\nBody\n")
    got = require(tmp_path / "data", "bbc/sport/001.txt", url=archive.as_uri(), download=True)
    assert got.read_text().startswith("Title")


def test_offline_download_is_the_same_one_line_saying_what_was_tried(tmp_path):
    with pytest.raises(HW2LabError) as error:
        require(tmp_path, "x.bin", url=(tmp_path / "nowhere.bin").as_uri(), download=True)
    message = str(error.value)
    assert message.startswith(f"missing dataset file x.bin: looked for {tmp_path / 'x.bin'}")
    assert "failed" in message and "are you online?" in message and "\n" not in message


def test_download_is_on_by_default_and_an_environment_variable_turns_it_off(tmp_path, monkeypatch):
    monkeypatch.delenv("HW2LAB_DOWNLOAD", raising=False)
    cfg = compose_config(["task=vae"], tmp_path)
    assert cfg.download is True and cfg.data.download is True
    monkeypatch.setenv("HW2LAB_DOWNLOAD", "false")
    assert compose_config(["task=vae"], tmp_path).data.download is False
    assert compose_config(["task=vae", "download=true"], tmp_path).data.download is True


def test_tensor_batches_cover_every_sample_once_and_shard_for_ddp():
    data = torch.arange(10)
    batches = TensorBatches(data, batch_size=4, shuffle=True, seed=1)
    assert len(batches) == 3
    first_epoch = torch.cat([b for (b,) in batches])
    second_epoch = torch.cat([b for (b,) in batches])
    assert sorted(first_epoch.tolist()) == list(range(10)) and not torch.equal(first_epoch, second_epoch)
    shards = [TensorBatches(data, batch_size=4, shuffle=True, seed=1, rank=r, num_replicas=2) for r in (0, 1)]
    seen = [torch.cat([b for (b,) in shard]) for shard in shards]
    assert sorted(torch.cat(seen).tolist()) == list(range(10))
    assert not set(seen[0].tolist()) & set(seen[1].tolist())
    ordered = TensorBatches(data, batch_size=4)
    assert [b.tolist() for (b,) in ordered] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_summary_lists_every_job_with_status_and_labels(tmp_path):
    for number, (status, overrides) in enumerate(
        [("ok", ["task=vae", "kl_weight=0"]), ("failed", ["task=vae", "kl_weight=1"])]
    ):
        job = tmp_path / str(number)
        job.mkdir()
        payload = {
            "status": status,
            "overrides": overrides,
            "metrics": {"test/loss": 1.5} if status == "ok" else {},
        }
        if status == "failed":
            payload["error"] = "something broke"
        (job / "metrics.json").write_text(json.dumps(payload))
    jobs = collect_jobs(tmp_path)
    assert [job.label for job in jobs] == ["kl_weight=0", "kl_weight=1"]
    csv_path, md_path = write_summary(jobs, tmp_path)
    text = md_path.read_text()
    assert "1 of 2 jobs finished" in text and "something broke" in text
    assert csv_path.read_text().splitlines()[0] == "job,status,overrides,test/loss,error"


def test_summary_pools_a_fold_sweep_per_configuration(tmp_path):
    """Jobs that differ only in data.fold are one configuration: the pooled test accuracy weights each fold
    by its test-split size; a failed fold is left out and the count of folds says so."""
    runs = [  # (seed, fold, test/acc, test articles, status)
        (1, 0, 0.9, 10, "ok"),
        (1, 1, 0.6, 20, "ok"),
        (1, 2, 0.8, 30, "ok"),
        (2, 0, 0.5, 10, "ok"),
        (2, 1, 1.0, 20, "ok"),
        (2, 2, 0.0, 30, "failed"),
    ]
    for number, (seed, fold, accuracy, size, status) in enumerate(runs):
        job = tmp_path / str(number)
        job.mkdir()
        payload = {
            "status": status,
            "overrides": ["task=news", "data.folds=3", f"seed={seed}", f"data.fold={fold}"],
            "hparams": {"data.folds": 3},
            "metrics": {"test/acc": accuracy} if status == "ok" else {},
            "notes": {"split_sizes": {"train": 100, "val": 20, "test": size}},
        }
        (job / "metrics.json").write_text(json.dumps(payload))
    groups = cross_validation_groups(collect_jobs(tmp_path))
    assert sorted(len(members) for members in groups.values()) == [2, 3]
    _, md_path = write_summary(collect_jobs(tmp_path), tmp_path, [cross_validation_lines])
    rows = {
        line.split(" | ")[0]: line.split(" | ")
        for line in md_path.read_text().splitlines()
        if "`seed=" in line
    }
    seed1, seed2 = rows["| `seed=1`"], rows["| `seed=2`"]
    pooled1 = (0.9 * 10 + 0.6 * 20 + 0.8 * 30) / 60
    assert seed1[1:4] == ["3 of 3", "60", f"{pooled1:.4f}"]
    assert seed2[1:4] == ["2 of 3", "30", f"{(0.5 * 10 + 1.0 * 20) / 30:.4f}"]
    assert seed1[4].startswith(f"{(0.9 + 0.6 + 0.8) / 3:.4f} (")


@pytest.mark.parametrize(
    "preset, expected",
    [
        ("default", {"accelerator": "auto", "devices": 1, "precision": "32-true", "max_epochs": 15}),
        ("cpu", {"accelerator": "cpu", "precision": "32-true", "max_epochs": 15}),
        ("gpu", {"accelerator": "gpu", "precision": "bf16-mixed", "max_epochs": 15}),
        (
            "debug",
            {"max_epochs": 1, "limit_train_batches": 3, "limit_val_batches": 2, "num_sanity_val_steps": 0},
        ),
        ("ddp_cpu", {"accelerator": "cpu", "devices": 2}),
        ("ddp", {"accelerator": "gpu", "devices": -1, "precision": "bf16-mixed", "sync_batchnorm": True}),
    ],
)
def test_trainer_presets_set_what_they_promise(tmp_path, preset, expected):
    cfg = compose_config(["task=vae", f"trainer={preset}"], tmp_path)
    assert cfg.trainer._target_ == "lightning.pytorch.Trainer"
    assert {key: cfg.trainer[key] for key in expected} == expected


def test_a_task_sets_trainer_values_and_debug_still_shortens_a_preset(tmp_path):
    news = compose_config(["task=news"], tmp_path)
    assert news.trainer.gradient_clip_val == 1.0  # the task's value survives the trainer preset
    assert compose_config(["task=news", "trainer=cpu"], tmp_path).trainer.gradient_clip_val == 1.0
    long_preset = compose_config(["experiment=vae_conv_anime"], tmp_path)
    assert long_preset.trainer.max_epochs > 1
    debug = compose_config(["experiment=vae_conv_anime", "trainer=debug"], tmp_path)
    assert debug.trainer.max_epochs == 1 and debug.trainer.limit_train_batches == 3
    # An explicit override still wins over the debug preset.
    assert (
        compose_config(["task=vae", "trainer=debug", "trainer.max_epochs=2"], tmp_path).trainer.max_epochs
        == 2
    )


def test_a_value_of_the_wrong_type_names_its_key(tmp_path):
    cfg = compose_config(["task=vae", "kl_weight=abc"], tmp_path)
    with pytest.raises(HW2LabError, match=r"^kl_weight \(model\.kl_weight\) must be a number, got 'abc'$"):
        check_value_types(cfg.model, "model")
    cfg = compose_config(["task=vae", "trainer.max_epochs=x"], tmp_path)
    with pytest.raises(HW2LabError, match=r"^trainer\.max_epochs must be an integer, got 'x'$"):
        check_value_types(cfg.trainer, "trainer")
    check_value_types(compose_config(["task=vae"], tmp_path).model, "model")  # the defaults pass


@pytest.mark.parametrize(
    "override, message",
    [
        # batch_size is declared by the base class the data module passes **kwargs on to
        ("data.batch_size=1.5", r"^data\.batch_size must be an integer, got 1\.5$"),
        ("data.batch_size=true", r"^data\.batch_size must be an integer, got true$"),
        ("data.binarize=3", r"^data\.binarize must be true or false, got 3$"),
        ("model.net.latent_dim=2.5", r"^model\.net\.latent_dim must be an integer, got 2\.5$"),
        ("kl_weight=false", r"^kl_weight \(model\.kl_weight\) must be a number, got false$"),
    ],
)
def test_a_fraction_a_bool_or_a_number_of_the_wrong_kind_names_its_key(tmp_path, override, message):
    cfg = compose_config(["task=vae", override], tmp_path)
    with pytest.raises(HW2LabError, match=message):
        check_value_types(cfg.data, "data")
        check_value_types(cfg.model, "model")


def test_a_value_of_the_wrong_type_is_refused_before_any_object_is_built(tmp_path):
    """The data directory does not exist: the type is refused before the data module could say so."""
    cfg = compose_config(["task=vae", "data.batch_size=1.5", f"paths.data_dir={tmp_path / 'none'}"], tmp_path)
    with pytest.raises(HW2LabError, match=r"^data\.batch_size must be an integer, got 1\.5$"):
        fit_and_test(cfg, tmp_path)
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.slow
def test_a_fraction_for_a_count_on_the_command_line_is_one_line_and_exit_1(cli, tmp_path):
    result = cli(["task=vae", "data.batch_size=1.5", "trainer=debug"], data_dir=tmp_path, expect_ok=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "error: data.batch_size must be an integer, got 1.5"
    assert "Traceback" not in result.stderr


def test_data_dir_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("HW2LAB_DATA_DIR", str(tmp_path / "elsewhere"))
    assert compose_config(["task=vae"], tmp_path).data.data_dir == str(tmp_path / "elsewhere")
    monkeypatch.delenv("HW2LAB_DATA_DIR")
    assert compose_config(["task=vae"], tmp_path).data.data_dir == "./data"


@pytest.mark.slow
def test_a_user_error_is_one_line_and_a_non_zero_exit(cli, tmp_path):
    result = cli(["task=covid", "logger=none"], data_dir=tmp_path / "no-data", expect_ok=False)
    assert result.returncode == 1
    last = [line for line in result.stderr.splitlines() if line.strip()][-1]
    assert last.startswith("error: missing dataset file covid/covid_19.csv: looked for ")
    assert "HYDRA_FULL_ERROR" not in result.stderr and "Traceback" not in result.stderr
