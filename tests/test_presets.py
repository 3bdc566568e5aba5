"""Every experiment preset composes and trains a few batches with trainer=debug, on the real data."""

from __future__ import annotations

import pytest
from helpers import REPO_ROOT, compose_config
from omegaconf import OmegaConf

from datamodules.news.pretrained import SPLIT_ZIP_CHECKPOINTS
from hw2lab.errors import HW2LabError
from hw2lab.pipeline import fit_and_test

PRESETS = sorted(path.stem for path in (REPO_ROOT / "conf" / "experiment").glob("*.yaml"))


def test_there_are_presets_to_check():
    assert len(PRESETS) >= 5, PRESETS


@pytest.mark.slow
@pytest.mark.parametrize("preset", PRESETS)
def test_each_preset_runs_a_few_batches(preset, tmp_path, real_data_dir, monkeypatch):
    monkeypatch.setenv("HW2LAB_DATA_DIR", str(real_data_dir))
    cfg = compose_config([f"experiment={preset}", "trainer=debug", "logger=none"], tmp_path)
    assert cfg.trainer.max_epochs == 1 and cfg.trainer.limit_train_batches == 3
    checkpoint = SPLIT_ZIP_CHECKPOINTS.get(OmegaConf.select(cfg, "model.net.encoder.pretrained") or "")
    if checkpoint is not None:
        try:
            checkpoint.pieces()
        except HW2LabError:
            pytest.skip(f"{checkpoint.name} is not installed (the {checkpoint.extra} extra)")
    result = fit_and_test(cfg, tmp_path)
    assert result["global_step"] == 3
    assert any(key.startswith("test/") for key in result["metrics"]), result["metrics"]
