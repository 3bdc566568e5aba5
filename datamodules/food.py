"""Labelled food photos for the food task: the Food-11 layout and an ImageFolder layout (Food-101 classes).

Layouts:
- `food11`: `<root>/training/`, `validation/`, `evaluation/` holding `<class>_<index>.jpg`, the class being
  an index into `class_names`.
- `image_folder`: `<root>/<class_name>/<any>.jpg`. The split comes from list files (Food-101's
  `meta/train.txt`, `meta/test.txt`: lines `<class_name>/<id>`, filtered to the files present) with a
  seeded validation part carved out of train, or, without list files, from seeded per-class ratios.

Every image is decoded once, centre-cropped to a square and resized to `image_size`, and kept as a uint8
tensor (N, 3, S, S): decoding JPEGs each epoch on a few CPU cores would cost more than training. The
per-batch transforms (random resized crop, horizontal flip, normalisation) run on tensors on the model's
device in `on_after_batch_transfer`; evaluation batches are only normalised.

Bad files never crash an epoch: a file that is not a readable image, or a Food-11 name without a class
prefix, is skipped while loading and counted in one log line; an empty split is one clear error.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from datamodules.tensor_batches import InMemoryDataModule
from hw2lab.data_files import IMAGE_SUFFIXES, require
from hw2lab.errors import HW2LabError, check

log = logging.getLogger("hw2lab")

LAYOUTS = ("food11", "image_folder")
SPLITS = ("train", "val", "test")
# ITU-R 601 luma, as torchvision's grayscale conversion.
GRAY_WEIGHTS = torch.tensor([0.299, 0.587, 0.114])
FOOD11_NAME = re.compile(r"^(\d+)_(\d+)$")


@dataclass
class LabelledFiles:
    """Image paths and their class indices for one split."""

    paths: list[Path] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)

    def add(self, path: Path, label: int) -> None:
        self.paths.append(path)
        self.labels.append(label)

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, index: Sequence[int]) -> LabelledFiles:
        return LabelledFiles([self.paths[i] for i in index], [self.labels[i] for i in index])


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _examples(paths: list[Path], count: int = 3) -> str:
    shown = ", ".join(p.name for p in paths[:count])
    return shown + (", ..." if len(paths) > count else "")


def list_food11_split(folder: Path, num_classes: int) -> LabelledFiles:
    """`<class>_<index>.jpg` files of one Food-11 split folder; names without a class prefix are skipped
    and counted, a class index outside `class_names` is an error (the config names too few classes)."""
    check(folder.is_dir(), f"Food-11 split folder {folder} is missing or not a folder")
    files, skipped = LabelledFiles(), []
    for path in _image_files(folder):
        match = FOOD11_NAME.match(path.stem)
        if match is None:
            skipped.append(path)
            continue
        label = int(match.group(1))
        check(
            label < num_classes,
            f"{path}: class {label} but class_names lists only {num_classes} classes (0..{num_classes - 1})",
        )
        files.add(path, label)
    if skipped:
        log.warning(
            "skipped %d file(s) in %s whose names are not <class>_<index> (%s)",
            len(skipped),
            folder,
            _examples(skipped),
        )
    check(len(files) > 0, f"no <class>_<index>.jpg images in the Food-11 split folder {folder}")
    return files


def list_image_folder(root: Path, class_names: list[str]) -> LabelledFiles:
    """All images of `<root>/<class_name>/`, in class order; folders not in class_names are ignored."""
    files = LabelledFiles()
    for label, name in enumerate(class_names):
        folder = root / name
        check(folder.is_dir(), f"class folder {folder} is missing (class_names names {name!r})")
        for path in _image_files(folder):
            files.add(path, label)
    others = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in class_names)
    if others:
        log.info(
            "ignoring %d folder(s) of %s not in class_names: %s", len(others), root, ", ".join(others[:5])
        )
    check(len(files) > 0, f"no images in the class folders of {root}")
    return files


def read_split_list(path: Path) -> set[str]:
    """Entries `<class_name>/<id>` (Food-101 meta/*.txt), without file suffix."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise HW2LabError(f"cannot read split list {path}: {error}") from None
    return {line.strip() for line in lines if line.strip()}


def stratified_split(labels: list[int], fractions: Sequence[float], seed: int) -> list[list[int]]:
    """Seeded per-class split of positions into len(fractions) parts (the last takes the remainder), so
    every class keeps its share in each part."""
    generator = torch.Generator().manual_seed(seed)
    parts: list[list[int]] = [[] for _ in fractions]
    by_class: dict[int, list[int]] = {}
    for position, label in enumerate(labels):
        by_class.setdefault(label, []).append(position)
    for label in sorted(by_class):
        members = by_class[label]
        order = [members[i] for i in torch.randperm(len(members), generator=generator).tolist()]
        start = 0
        for part, fraction in zip(parts[:-1], fractions[:-1]):
            size = int(round(fraction * len(members)))
            part.extend(order[start : start + size])
            start += size
        parts[-1].extend(order[start:])
    return [sorted(part) for part in parts]


def decode_images(
    files: LabelledFiles, image_size: int, crop: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode to uint8 (N, 3, S, S): centre square crop of side min(crop, shorter side) (the whole
    shorter side when crop is None), resized to image_size. Unreadable files are skipped and counted."""
    from PIL import Image, UnidentifiedImageError

    arrays, labels, unreadable = [], [], []
    for path, label in zip(files.paths, files.labels):
        try:
            with Image.open(path) as image:
                width, height = image.size
                side = min(width, height, crop or min(width, height))
                # Let the JPEG decoder shrink by 2/4/8 while the crop still covers image_size pixels.
                factor = image_size / side
                image.draft("RGB", (max(1, int(width * factor)), max(1, int(height * factor))))
                # The draft scales each axis by about the same factor; keep the box inside the image.
                now_width, now_height = image.size
                box_width = min(side * now_width / width, now_width)
                box_height = min(side * now_height / height, now_height)
                left, top = (now_width - box_width) / 2, (now_height - box_height) / 2
                image = image.convert("RGB").resize(
                    (image_size, image_size),
                    Image.Resampling.BOX,
                    box=(left, top, left + box_width, top + box_height),
                )
                arrays.append(np.asarray(image, dtype=np.uint8))
                labels.append(label)
        except (UnidentifiedImageError, OSError) as error:
            unreadable.append((path, error))
    if unreadable:
        path, error = unreadable[0]
        log.warning(
            "skipped %d unreadable image file(s) (first: %s: %s)",
            len(unreadable),
            path,
            " ".join(str(error).split()),
        )
    if not arrays:
        return torch.zeros(0, 3, image_size, image_size, dtype=torch.uint8), torch.zeros(0, dtype=torch.long)
    stacked = torch.from_numpy(np.ascontiguousarray(np.stack(arrays).transpose(0, 3, 1, 2)))
    return stacked, torch.tensor(labels, dtype=torch.long)


def jitter_colors(pixels: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Brightness, contrast and saturation of [0, 1] images (B, 3, H, W) scaled by factors (B, 3)."""
    brightness, contrast, saturation = (factors[:, k].view(-1, 1, 1, 1) for k in range(3))
    weights = GRAY_WEIGHTS.to(pixels.device).view(1, 3, 1, 1)
    pixels = (pixels * brightness).clamp(0, 1)
    mean_gray = (pixels * weights).sum(1, keepdim=True).mean((2, 3), keepdim=True)
    pixels = ((pixels - mean_gray) * contrast + mean_gray).clamp(0, 1)
    gray = (pixels * weights).sum(1, keepdim=True)
    return ((pixels - gray) * saturation + gray).clamp(0, 1)


class FoodTransforms:
    """Batch transforms on uint8 (B, 3, S, S) tensors, on whatever device they are.

    Training: a random resized crop (a square of area fraction in `crop_scale` of the image, anywhere in
    it, resized back to S; bilinear), a horizontal flip with probability 1/2, a colour jitter (brightness,
    contrast and saturation each scaled by a factor drawn from [1 - j, 1 + j], in that order, like
    torchvision's ColorJitter; `color_jitter` j = 0: off), then normalisation.
    Evaluation: normalisation only (the decoded image is already the centre crop at size S).
    """

    def __init__(
        self,
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.5, 0.5, 0.5),
        hflip: bool = True,
        crop_scale: Sequence[float] | None = (0.35, 1.0),
        color_jitter: float = 0.0,
    ) -> None:
        check(len(mean) == 3 and len(std) == 3, "data.mean and data.std need 3 values (RGB)")
        check(0 <= color_jitter < 1, f"data.color_jitter must be in [0, 1), got {color_jitter}")
        check(all(s > 0 for s in std), f"data.std must be positive, got {list(std)}")
        if crop_scale is not None:
            low, high = crop_scale
            check(
                0 < low <= high <= 1,
                f"data.crop_scale must be [low, high] with 0 < low <= high <= 1, got {crop_scale}",
            )
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.hflip = hflip
        self.crop_scale = tuple(crop_scale) if crop_scale is not None else None
        self.color_jitter = float(color_jitter)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        pixels = images.float().div_(255)
        return (pixels - self.mean.to(pixels.device)) / self.std.to(pixels.device)

    def evaluate(self, images: torch.Tensor) -> torch.Tensor:
        return self.normalize(images)

    def train(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        pixels = images.float().div_(255)
        batch = pixels.shape[0]
        if self.crop_scale is not None or self.hflip:
            pixels = self._crop_and_flip(pixels, torch.rand(batch, 4, generator=generator))
        if self.color_jitter > 0:
            factors = 1 + self.color_jitter * (2 * torch.rand(batch, 3, generator=generator) - 1)
            pixels = jitter_colors(pixels, factors.to(pixels.device))
        return (pixels - self.mean.to(pixels.device)) / self.std.to(pixels.device)

    def _crop_and_flip(self, pixels: torch.Tensor, rand: torch.Tensor) -> torch.Tensor:
        batch = pixels.shape[0]
        rand = rand.to(pixels.device)
        if self.crop_scale is not None:
            low, high = self.crop_scale
            side = (low + (high - low) * rand[:, 0]).sqrt()  # side fraction of a crop with that area
        else:
            side = torch.ones(batch, device=pixels.device)
        # affine_grid maps output coords in [-1, 1] to input coords: x_in = side * x_out + shift.
        shift_x = (1 - side) * (2 * rand[:, 1] - 1)
        shift_y = (1 - side) * (2 * rand[:, 2] - 1)
        flip = torch.where(rand[:, 3] < 0.5, -1.0, 1.0) if self.hflip else torch.ones_like(side)
        theta = torch.zeros(batch, 2, 3, device=pixels.device)
        theta[:, 0, 0], theta[:, 0, 2] = side * flip, shift_x
        theta[:, 1, 1], theta[:, 1, 2] = side, shift_y
        grid = F.affine_grid(theta, list(pixels.shape), align_corners=False)
        return F.grid_sample(pixels, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    def denormalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """Back to [0, 1] for figures."""
        return (pixels * self.std.to(pixels.device) + self.mean.to(pixels.device)).clamp(0, 1)


class FoodDataModule(InMemoryDataModule):
    """Food photos in memory as uint8 tensors per split (`split_tensors`: images, labels), batched by
    InMemoryDataModule, transformed on the device."""

    def __init__(
        self,
        data_dir: str,
        root: str,
        class_names: list[str],
        layout: str = "image_folder",
        food11_folders: dict[str, str] | None = None,
        split_lists: dict[str, str] | None = None,
        val_fraction: float = 0.15,
        split: Sequence[float] = (0.7, 0.15, 0.15),
        image_size: int = 64,
        crop: int | None = None,
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.5, 0.5, 0.5),
        hflip: bool = True,
        crop_scale: Sequence[float] | None = (0.35, 1.0),
        color_jitter: float = 0.0,
        batch_size: int = 64,
        seed: int = 42,
        download: bool = False,
        url: str | None = None,
        sha256: str | None = None,
    ) -> None:
        super().__init__(batch_size, seed)
        check(layout in LAYOUTS, f"data.layout must be one of {LAYOUTS}, got {layout!r}")
        check(len(class_names) >= 2, f"data.class_names needs at least 2 classes, got {list(class_names)}")
        check(len(set(class_names)) == len(class_names), "data.class_names has duplicates")
        check(image_size >= 8, f"data.image_size must be >= 8, got {image_size}")
        check(crop is None or crop >= 1, f"data.crop must be null or a positive pixel count, got {crop}")
        check(0 <= val_fraction < 1, f"data.val_fraction must be in [0, 1), got {val_fraction}")
        check(
            len(split) == 3 and all(r >= 0 for r in split) and abs(sum(split) - 1) < 1e-6,
            f"data.split must be 3 non-negative ratios summing to 1, got {list(split)}",
        )
        if layout == "food11":
            folders = dict(food11_folders or {})
            check(
                set(folders) == set(SPLITS), f"data.food11_folders must name {SPLITS}, got {sorted(folders)}"
            )
        self.data_dir, self.root, self.layout = data_dir, root, layout
        self.class_names = list(class_names)
        self.food11_folders = dict(food11_folders or {})
        self.split_lists = dict(split_lists or {})
        self.val_fraction, self.split = val_fraction, list(split)
        self.image_size, self.crop = image_size, crop
        self.download, self.url, self.sha256 = download, url, sha256
        self.transforms = FoodTransforms(mean, std, hflip, crop_scale, color_jitter)
        self._augment_generator = torch.Generator().manual_seed(seed)

    @property
    def images(self) -> dict[str, torch.Tensor]:
        """uint8 (N, 3, S, S) images of each split set up so far."""
        return {split: tensors[0] for split, tensors in self.split_tensors.items()}

    @property
    def labels(self) -> dict[str, torch.Tensor]:
        """Class indices of each split set up so far."""
        return {split: tensors[1] for split, tensors in self.split_tensors.items()}

    # --- listing -------------------------------------------------------------------------------------
    def list_files(self) -> dict[str, LabelledFiles]:
        """The files of each split, before decoding."""
        root = require(self.data_dir, self.root, url=self.url, sha256=self.sha256, download=self.download)
        if self.layout == "food11":
            return {
                split: list_food11_split(root / self.food11_folders[split], len(self.class_names))
                for split in SPLITS
            }
        files = list_image_folder(root, self.class_names)
        if self.split_lists:
            return self._split_by_lists(files)
        parts = stratified_split(files.labels, self.split, self.seed)
        return {split: files.subset(part) for split, part in zip(SPLITS, parts)}

    def _split_by_lists(self, files: LabelledFiles) -> dict[str, LabelledFiles]:
        check(
            set(self.split_lists) == {"train", "test"},
            f"data.split_lists must name train and test, got {sorted(self.split_lists)}",
        )
        entries = {
            split: read_split_list(require(self.data_dir, relative, download=False))
            for split, relative in self.split_lists.items()
        }
        keys = [f"{path.parent.name}/{path.stem}" for path in files.paths]
        train_index = [i for i, key in enumerate(keys) if key in entries["train"]]
        test_index = [i for i, key in enumerate(keys) if key in entries["test"]]
        unlisted = len(keys) - len(train_index) - len(test_index)
        log.info(
            "split lists: %d of %d train entries and %d of %d test entries present%s",
            len(train_index),
            len(entries["train"]),
            len(test_index),
            len(entries["test"]),
            f"; {unlisted} image(s) in neither list ignored" if unlisted else "",
        )
        train = files.subset(train_index)
        fit_part, val_part = stratified_split(
            train.labels, [1 - self.val_fraction, self.val_fraction], self.seed
        )
        return {
            "train": train.subset(fit_part),
            "val": train.subset(val_part),
            "test": files.subset(test_index),
        }

    def net_inputs(self) -> dict[str, list[str] | int]:
        """What the net is built for: the class names (their count) and the images' side."""
        return {"class_names": [str(name) for name in self.class_names], "image_size": int(self.image_size)}

    # --- Lightning hooks ------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.split_tensors:
            return
        splits = {}
        for split, files in self.list_files().items():
            images, labels = decode_images(files, self.image_size, self.crop)
            check(len(images) > 0, f"the {split} split has no readable images ({len(files)} file(s) listed)")
            splits[split] = (images, labels)
        self.split_tensors = splits
        counts = torch.bincount(self.labels["train"], minlength=len(self.class_names)).tolist()
        log.info(
            "food images %dx%d, train/val/test = %d/%d/%d, train per class %s (layout %s, seed %d)",
            self.image_size,
            self.image_size,
            *(len(self.images[split]) for split in SPLITS),
            counts,
            self.layout,
            self.seed,
        )

    def on_after_batch_transfer(self, batch: tuple[torch.Tensor, torch.Tensor], dataloader_idx: int):
        images, labels = batch
        training = self.trainer is not None and self.trainer.training
        return self.prepare(images, training), labels

    def prepare(self, images: torch.Tensor, training: bool) -> torch.Tensor:
        """uint8 batch -> the network's float input, augmented when training."""
        if training:
            return self.transforms.train(images, self._augment_generator)
        return self.transforms.evaluate(images)
