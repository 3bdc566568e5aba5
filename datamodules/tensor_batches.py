"""Mini-batches sliced from tensors held in memory.

Small datasets (TibetanMNIST, COVID windows, ...) fit in memory many times over. A DataLoader would index
them one sample at a time and collate in Python, which costs more than the small models' training step;
slicing a whole batch out of one tensor costs microseconds. Lightning accepts any re-iterable with a
length as a dataloader.
"""

from __future__ import annotations

from collections.abc import Iterator

import lightning as L
import torch


class TensorBatches:
    """Re-iterable batches over tensors that share their first dimension.

    Each epoch's order depends only on (seed, epoch), like DistributedSampler: Lightning calls
    `dataloader.sampler.set_epoch(epoch)` at every epoch start, so this object answers as its own sampler,
    and a run resumed from a checkpoint reshuffles exactly as an uninterrupted one. Without a trainer the
    epoch advances on every full pass. With `num_replicas` > 1 (DDP) each rank takes its own interleaved
    share of every epoch's order.
    """

    def __init__(
        self,
        *tensors: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        num_replicas: int = 1,
    ) -> None:
        if not tensors:
            raise ValueError("TensorBatches needs at least one tensor")
        size = tensors[0].shape[0]
        if any(t.shape[0] != size for t in tensors):
            raise ValueError("all tensors must have the same first dimension")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.tensors = tensors
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.rank = rank
        self.num_replicas = num_replicas
        self.seed = seed
        self.epoch = 0
        self.sampler = self  # see the class docstring
        self.batch_sampler = None  # Lightning looks for it next to `sampler`

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @classmethod
    def for_trainer(cls, trainer, *tensors: torch.Tensor, **kwargs) -> TensorBatches:
        """Batches for this process: under DDP the trainer's rank takes its share (no trainer: all)."""
        rank, replicas = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        return cls(*tensors, rank=rank, num_replicas=replicas, **kwargs)

    @property
    def num_samples(self) -> int:
        total = self.tensors[0].shape[0]
        return len(range(self.rank, total, self.num_replicas))

    @property
    def num_batches(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return -(-self.num_samples // self.batch_size)

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        total = self.tensors[0].shape[0]
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(total, generator=generator)
        else:
            order = torch.arange(total)
        order = order[self.rank :: self.num_replicas]
        for batch_index in range(self.num_batches):
            index = order[batch_index * self.batch_size : (batch_index + 1) * self.batch_size]
            if not self.shuffle and self.num_replicas == 1:
                start = batch_index * self.batch_size
                yield tuple(t[start : start + len(index)] for t in self.tensors)  # views, no copy
            else:
                yield tuple(t[index] for t in self.tensors)
        self.epoch += 1


class InMemoryDataModule(L.LightningDataModule):
    """A datamodule whose splits are tensors in memory: `setup` of the subclass fills `self.split_tensors`
    (split name -> tensors sharing their first dimension); this class batches them with TensorBatches,
    shuffling the training split (seeded), and gives each DDP rank its share."""

    def __init__(self, batch_size: int, seed: int = 0) -> None:
        super().__init__()
        if batch_size < 1:
            from hw2lab.errors import HW2LabError

            raise HW2LabError(f"data.batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.seed = seed
        self.split_tensors: dict[str, tuple[torch.Tensor, ...]] = {}

    def batches(self, split: str, shuffle: bool = False) -> TensorBatches:
        """Batches of one split, in order unless `shuffle` (also un-augmented passes for figures)."""
        return TensorBatches.for_trainer(
            self.trainer,
            *self.split_tensors[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            seed=self.seed,
        )

    def train_dataloader(self) -> TensorBatches:
        return self.batches("train", shuffle=True)

    def val_dataloader(self) -> TensorBatches:
        return self.batches("val")

    def test_dataloader(self) -> TensorBatches:
        return self.batches("test")
