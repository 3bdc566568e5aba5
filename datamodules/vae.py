"""Unlabelled image sets for the VAE: TibetanMNIST (npz) and a flat folder of face images (anime faces).

Both are small enough to hold in memory as float tensors, decoded once, so training steps slice batches
instead of decoding and collating images one at a time.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from datamodules.tensor_batches import InMemoryDataModule
from hw2lab.data_files import IMAGE_SUFFIXES, require
from hw2lab.errors import HW2LabError, check

log = logging.getLogger("hw2lab")


def split_indices(count: int, ratios: list[float], seed: int) -> list[torch.Tensor]:
    """A seeded random split of range(count) into len(ratios) parts (the last takes the remainder)."""
    check(
        len(ratios) == 3 and all(r >= 0 for r in ratios), f"split must be 3 non-negative ratios, got {ratios}"
    )
    check(abs(sum(ratios) - 1.0) < 1e-6, f"split ratios must sum to 1, got {ratios} (sum {sum(ratios)})")
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    sizes = [int(round(r * count)) for r in ratios[:-1]]
    bounds = np.cumsum([0, *sizes]).tolist() + [count]
    return [order[bounds[i] : bounds[i + 1]] for i in range(len(ratios))]


def fit_images(images: torch.Tensor, crop: int | None, image_size: int) -> torch.Tensor:
    """Centre-crop to `crop` pixels (if given), then resize to image_size (area-averaging when shrinking)."""
    height, width = images.shape[-2:]
    if crop:
        check(crop <= min(height, width), f"crop {crop} is larger than the images ({height}x{width})")
        top, left = (height - crop) // 2, (width - crop) // 2
        images = images[..., top : top + crop, left : left + crop]
    if images.shape[-1] != image_size or images.shape[-2] != image_size:
        images = F.interpolate(images, size=(image_size, image_size), mode="bilinear", antialias=True)
    return images.clamp(0, 1)


class InMemoryImageDataModule(InMemoryDataModule):
    """Split, binarise and batch a float image tensor (N, C, H, W) in [0, 1]; subclasses load it."""

    def __init__(
        self,
        data_dir: str,
        image_size: int,
        channels: int,
        batch_size: int = 128,
        split: tuple[float, float, float] = (0.8, 0.1, 0.1),
        crop: int | None = None,
        binarize: bool = False,
        seed: int = 42,
        download: bool = False,
        max_images: int | None = None,
    ) -> None:
        super().__init__(batch_size=batch_size, seed=seed)
        check(image_size >= 4, f"data.image_size must be >= 4, got {image_size}")
        self.data_dir = data_dir
        self.image_size = image_size
        self.channels = channels
        self.split = list(split)
        self.crop = crop
        self.binarize = binarize
        self.download = download
        self.max_images = max_images

    def net_inputs(self) -> dict[str, list[int]]:
        """What the net is built for: the images' shape (channels, size, size)."""
        return {"image_shape": [self.channels, self.image_size, self.image_size]}

    def load_images(self) -> torch.Tensor:
        """Return all images as float (N, C, H, W) in [0, 1] at their stored size."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.split_tensors:
            return
        images = self.load_images()
        if self.max_images:
            images = images[: self.max_images]
        check(images.shape[1] == self.channels, f"expected {self.channels} channels, got {images.shape[1]}")
        images = fit_images(images, self.crop, self.image_size)
        if self.binarize:
            images = (images > 0.5).float()
        parts = split_indices(len(images), self.split, self.seed)
        self.split_tensors = {
            name: (images[index].contiguous(),) for name, index in zip(("train", "val", "test"), parts)
        }
        check(len(self.images("train")) > 0, f"no training images after the split {self.split}")
        log.info(
            "images: %s, split train/val/test = %d/%d/%d (ratios %s, seed %d)",
            tuple(images.shape[1:]),
            *(len(self.images(name)) for name in ("train", "val", "test")),
            self.split,
            self.seed,
        )

    def images(self, split: str) -> torch.Tensor:
        """All images of a split (train, val or test), (N, C, H, W) in [0, 1]."""
        self.setup()
        (images,) = self.split_tensors[split]
        return images

    def examples(self, count: int, split: str = "val") -> torch.Tensor:
        """The first `count` images of a split (falls back to train when the split is empty): fixed
        images for the figures, the same every epoch and every run of a sweep."""
        images = self.images(split)
        return (images if len(images) else self.images("train"))[:count]


class TibetanMNISTDataModule(InMemoryImageDataModule):
    """TibetanMNIST as the npz of bat67/TibetanMNIST: `image` uint8 (N, 28, 28), `label` (N,)."""

    def __init__(self, file: str, url: str | None = None, sha256: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.file, self.url, self.sha256 = file, url, sha256

    def load_images(self) -> torch.Tensor:
        path = require(self.data_dir, self.file, url=self.url, sha256=self.sha256, download=self.download)
        try:
            with np.load(path) as archive:
                images = archive["image"]
        except (OSError, ValueError, KeyError) as error:
            raise HW2LabError(
                f"cannot read {path} as TibetanMNIST npz with an 'image' array: {error}"
            ) from None
        check(images.ndim == 3 and images.dtype == np.uint8, f"{path}: 'image' must be uint8 (N, H, W)")
        return torch.from_numpy(images).unsqueeze(1).float().div_(255)


class ImageFolderDataModule(InMemoryImageDataModule):
    """A flat folder of images (PNG or JPEG, any size), e.g. the anime faces; unlabelled."""

    def __init__(self, folder: str, url: str | None = None, sha256: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.folder, self.url, self.sha256 = folder, url, sha256

    def load_images(self) -> torch.Tensor:
        from PIL import Image, UnidentifiedImageError

        root = require(self.data_dir, self.folder, url=self.url, sha256=self.sha256, download=self.download)
        files = sorted((p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)
        check(bool(files), f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {root}")
        if self.max_images:
            files = files[: self.max_images]
        mode = "L" if self.channels == 1 else "RGB"
        # Decode straight to the training size: holding 96x96 originals first would cost 2x the memory.
        side = self.crop
        arrays = []
        for path in files:
            try:
                with Image.open(path) as image:
                    image = image.convert(mode)
                    if side:
                        left, top = (image.width - side) // 2, (image.height - side) // 2
                        image = image.crop((left, top, left + side, top + side))
                    if image.size != (self.image_size, self.image_size):
                        image = image.resize((self.image_size, self.image_size), Image.Resampling.BOX)
                    arrays.append(np.asarray(image, dtype=np.uint8))
            except (UnidentifiedImageError, OSError) as error:
                raise HW2LabError(f"cannot read image {path}: {error}") from None
        stacked = np.stack(arrays)
        stacked = stacked[:, None] if stacked.ndim == 3 else stacked.transpose(0, 3, 1, 2)
        self.crop = None  # already applied while decoding
        return torch.from_numpy(np.ascontiguousarray(stacked)).float().div_(255)


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]
