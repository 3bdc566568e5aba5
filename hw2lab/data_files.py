"""Finding dataset files in the data directory, and fetching them from their public source when asked.

Every datamodule asks for its files through `require`, so a missing dataset always ends the same way:
one line naming the file, where it was looked for, and how to get it.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from hw2lab.errors import HW2LabError

log = logging.getLogger(__name__)

# The image files a folder reader takes.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp"})

DATA_DIR_HINT = "the data dir is paths.data_dir, overridden by the environment variable HW2LAB_DATA_DIR"


def sha256_of(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def require(
    data_dir: str | Path,
    relative: str,
    *,
    url: str | None = None,
    sha256: str | None = None,
    download: bool = False,
    extract_to: str | None = None,
) -> Path:
    """Return `data_dir/relative`, downloading it first when it is missing and `download` is true.

    `url` may point at the file itself or at a zip archive; an archive is unpacked into
    `data_dir/extract_to` (default: the data dir) and must then contain `relative`.
    `sha256` is checked on what was downloaded (the file, or the archive).
    """
    root = Path(data_dir).expanduser().resolve()
    target = root / relative
    if target.exists():
        return target
    missing = f"missing dataset file {relative}: looked for {target} ({DATA_DIR_HINT})"
    if download and url:
        try:
            _download(url, sha256, target, root / extract_to if extract_to is not None else root)
        except OfflineError as error:
            # Offline, the same one line as without download, saying what was tried.
            raise HW2LabError(
                f"{missing}; downloading it from {url} failed ({error}): are you online?"
            ) from None
        if target.exists():
            return target
        raise HW2LabError(f"downloaded {url} but it did not contain {relative} (looked for {target})")
    how = f"download it from {url} (or run with download=true while online)" if url else "see docs/data.md"
    raise HW2LabError(f"{missing}; to get it, {how}")


class OfflineError(Exception):
    """The source could not be reached."""


def _download(url: str, sha256: str | None, target: Path, extract_root: Path) -> None:
    is_zip = url.lower().endswith(".zip")
    log.info("downloading %s", url)
    with tempfile.TemporaryDirectory() as tmp:
        partial = Path(tmp) / "download"
        try:
            with urllib.request.urlopen(url, timeout=30) as response, open(partial, "wb") as out:
                shutil.copyfileobj(response, out)
        except (urllib.error.URLError, OSError) as error:
            raise OfflineError(" ".join(str(error).split())) from None
        if sha256 is not None:
            actual = sha256_of(partial)
            if actual != sha256:
                raise HW2LabError(f"checksum mismatch for {url}: expected sha256 {sha256}, got {actual}")
        if is_zip:
            extract_root.mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(partial) as archive:
                archive.extractall(extract_root)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(partial), target)
