"""Characters of one plain-text file, batched for a character-level language model.

The text is split contiguously (first 90 % train, last 10 % validation by default, as char-rnn and nanoGPT
do), the vocabulary is the set of characters of the training part, and the whole split lives in memory as
one tensor of character ids. Two batchings:

- `stream` (the course's): the split is cut into `batch_size` contiguous streams, one per batch row, read
  left to right in chunks of `time_step` characters. Chunk k+1 of row b continues chunk k of row b, so the
  model carries its hidden state from one batch to the next (detached: truncated BPTT) and resets it when
  a batch says `reset` (the first chunk of an epoch). The order is the same every epoch: no shuffling.
- `random`: each batch is `batch_size` windows of `time_step` characters at random offsets (seeded, a new
  draw every epoch); no state is carried, every batch starts from zeros (the GPT trains this way).

An epoch is one pass over the training text unless `batches_per_epoch` makes it shorter (more validation
points on a learning curve); a stream then continues in the next epoch where the last one stopped.

Validation and test are scored twice, as two dataloaders:
0. `stream`: every character of the split once, the state carried (`eval_batch_size` streams);
1. nanoGPT's windows (`EvalWindows`): `eval_windows` windows of `eval_window_length` characters at random
   offsets, each read from a fresh state, drawn once from the seed (the same windows every epoch).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import NamedTuple

import lightning as L
import torch

from hw2lab.data_files import require
from hw2lab.errors import HW2LabError, check

log = logging.getLogger("hw2lab")

MODES = ("stream", "random")
# Evaluation windows per batch (nanoGPT's batch size; the score does not depend on it).
WINDOWS_PER_BATCH = 64
# Targets of padding positions (the tail of the last stream): cross-entropy skips them.
IGNORE_INDEX = -100


class CharBatch(NamedTuple):
    inputs: torch.Tensor  # (batch, time) character ids
    targets: torch.Tensor  # (batch, time) the next character's id, IGNORE_INDEX on padding
    reset: bool  # start from a zero hidden state instead of the one carried from the previous batch


class Vocabulary:
    """Characters <-> ids, ids in sorted character order (as char-rnn and nanoGPT number them)."""

    def __init__(self, characters: str) -> None:
        check(len(characters) > 0, "the vocabulary is empty: the training text has no characters")
        self.characters = "".join(sorted(set(characters)))
        self.index = {char: i for i, char in enumerate(self.characters)}

    def __len__(self) -> int:
        return len(self.characters)

    def unknown(self, text: str) -> str:
        """The characters of `text` that are not in the vocabulary, each once, in order of appearance."""
        return "".join(dict.fromkeys(char for char in text if char not in self.index))

    def encode(self, text: str, what: str = "text") -> torch.Tensor:
        missing = self.unknown(text)
        check(
            not missing,
            f"{what} has characters that are not in the vocabulary of the training text: {missing!r} "
            f"(the vocabulary is {self.characters!r})",
        )
        return torch.tensor([self.index[char] for char in text], dtype=torch.long)

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        return "".join(self.characters[i] for i in torch.as_tensor(ids).tolist())


def read_text(path) -> str:
    """The whole file as UTF-8; an unreadable or empty file is a user error."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise HW2LabError(f"{path} is not UTF-8 text: {error}") from None
    except OSError as error:
        raise HW2LabError(f"cannot read {path}: {error}") from None
    check(len(text) > 0, f"{path} is empty: a character model needs text to train on")
    return text


def split_text(text: str, fractions: list[float]) -> list[str]:
    """Contiguous parts: [train, val] or [train, val, test] by the given fractions of the characters."""
    check(
        len(fractions) in (2, 3) and all(f >= 0 for f in fractions),
        f"data.split must be 2 or 3 non-negative fractions (train, val[, test]), got {list(fractions)}",
    )
    check(abs(sum(fractions) - 1.0) < 1e-6, f"data.split must sum to 1, got {list(fractions)}")
    bounds = [0]
    for fraction in fractions[:-1]:
        bounds.append(bounds[-1] + int(round(fraction * len(text))))
    bounds.append(len(text))
    return [text[start:end] for start, end in zip(bounds, bounds[1:])]


class StreamChunks:
    """The course's batching: `batch_size` contiguous streams read in chunks of `time_step` characters.

    The n - 1 (input, next character) pairs of a split of n characters are laid out row-major in a
    (batch_size, stream_length) grid, stream_length = ceil((n - 1) / batch_size); the last row's tail is
    padding (targets IGNORE_INDEX), so every pair is scored exactly once. Chunk k holds columns
    [k * time_step, (k + 1) * time_step) of the grid (the last one may be shorter).

    An epoch is one pass (all chunks, the first one `reset`) unless `batches_per_epoch` is given: then
    epoch e yields chunks e * batches_per_epoch, ... of an endless repetition of the passes, so an epoch
    continues where the last one stopped and `reset` comes at the start of each pass. Lightning calls
    `sampler.set_epoch(epoch)` at every epoch start (this object answers as its own sampler), so a resumed
    run reads what an uninterrupted one would.
    """

    def __init__(
        self, ids: torch.Tensor, batch_size: int, time_step: int, batches_per_epoch: int | None = None
    ) -> None:
        pairs = len(ids) - 1
        check(pairs >= 1, f"a split of {len(ids)} characters has no (input, next character) pair")
        self.batch_size = min(batch_size, pairs)
        self.time_step = time_step
        stream_length = -(-pairs // self.batch_size)
        padding = self.batch_size * stream_length - pairs
        inputs = torch.cat([ids[:-1], ids.new_zeros(padding)])
        targets = torch.cat([ids[1:], ids.new_full((padding,), IGNORE_INDEX)])
        self.inputs = inputs.view(self.batch_size, stream_length)
        self.targets = targets.view(self.batch_size, stream_length)
        self.pairs = pairs
        self.chunks = -(-stream_length // time_step)
        self.batches = batches_per_epoch or self.chunks
        self.epoch = 0
        self.sampler = self
        self.batch_sampler = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[CharBatch]:
        first = self.epoch * self.batches
        for index in range(first, first + self.batches):
            chunk = index % self.chunks
            columns = slice(chunk * self.time_step, (chunk + 1) * self.time_step)
            yield CharBatch(self.inputs[:, columns], self.targets[:, columns], reset=chunk == 0)
        self.epoch += 1


class RandomWindows:
    """`batch_size` windows of `time_step` + 1 characters at random offsets per batch; as many batches per
    epoch as a stream pass has (about one pass over the characters), or `batches_per_epoch`.

    Each epoch's draw depends only on (seed, epoch): Lightning calls `sampler.set_epoch(epoch)` at every
    epoch start (this object answers as its own sampler), so a resumed run draws what an uninterrupted one
    would. Without a trainer the epoch advances on every full pass.
    """

    def __init__(
        self,
        ids: torch.Tensor,
        batch_size: int,
        time_step: int,
        seed: int,
        batches_per_epoch: int | None = None,
    ) -> None:
        check(
            len(ids) > time_step,
            f"time_step {time_step} needs more than {time_step} training characters, got {len(ids)}",
        )
        self.ids = ids
        self.batch_size = batch_size
        self.time_step = time_step
        self.seed = seed
        self.epoch = 0
        self.sampler = self
        self.batch_sampler = None
        self.batches = batches_per_epoch or max(1, (len(ids) - 1) // (batch_size * time_step))
        self.offsets = torch.arange(time_step + 1)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[CharBatch]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        starts = torch.randint(
            0, len(self.ids) - self.time_step, (self.batches, self.batch_size), generator=generator
        )
        for batch_starts in starts:
            windows = self.ids[batch_starts[:, None] + self.offsets]
            yield CharBatch(windows[:, :-1], windows[:, 1:], reset=True)
        self.epoch += 1


class EvalWindows:
    """nanoGPT's evaluation batches: `count` windows of `length` + 1 characters at random offsets of `ids`
    (input = the first `length`, target = the last `length`), drawn once from `seed`, so every epoch and
    every run with that seed scores the same windows; each batch says `reset`: every window is read from a
    fresh state. nanoGPT draws its offsets the same way (uniform over [0, len - length)), afresh per eval.
    """

    def __init__(
        self, ids: torch.Tensor, count: int, length: int, seed: int, batch_size: int = WINDOWS_PER_BATCH
    ) -> None:
        check(len(ids) > length, f"windows of {length} characters need more than {length}, got {len(ids)}")
        self.ids, self.batch_size = ids, batch_size
        generator = torch.Generator().manual_seed(seed)
        self.starts = torch.randint(0, len(ids) - length, (count,), generator=generator)
        self.offsets = torch.arange(length + 1)

    def __len__(self) -> int:
        return -(-len(self.starts) // self.batch_size)

    def __iter__(self) -> Iterator[CharBatch]:
        for batch_starts in self.starts.split(self.batch_size):
            windows = self.ids[batch_starts[:, None] + self.offsets]
            yield CharBatch(windows[:, :-1], windows[:, 1:], reset=True)


class CharTextDataModule(L.LightningDataModule):
    """A plain UTF-8 text file (Tiny Shakespeare by default) as character ids, split and batched."""

    def __init__(
        self,
        data_dir: str,
        file: str,
        url: str | None = None,
        sha256: str | None = None,
        download: bool = False,
        split: tuple[float, ...] = (0.9, 0.1),
        batch_size: int = 32,
        time_step: int = 64,
        mode: str = "stream",
        eval_batch_size: int = 4,
        eval_windows: int = 512,
        eval_window_length: int = 256,
        batches_per_epoch: int | None = None,
        seed: int = 42,
    ) -> None:
        super().__init__()
        check(mode in MODES, f"mode (data.mode) must be one of {MODES}, got {mode!r}")
        check(batch_size >= 1, f"data.batch_size must be >= 1, got {batch_size}")
        check(eval_batch_size >= 1, f"data.eval_batch_size must be >= 1, got {eval_batch_size}")
        check(time_step >= 1, f"time_step must be >= 1, got {time_step}")
        check(eval_windows >= 0, f"data.eval_windows must be >= 0 (0: off), got {eval_windows}")
        check(eval_window_length >= 1, f"data.eval_window_length must be >= 1, got {eval_window_length}")
        check(
            batches_per_epoch is None or batches_per_epoch >= 1,
            f"data.batches_per_epoch must be >= 1 or null (one pass), got {batches_per_epoch}",
        )
        split_text("x" * 100, list(split))  # validates the fractions now, before any file is read
        self.data_dir, self.file, self.url, self.sha256 = data_dir, file, url, sha256
        self.download = download
        self.split = list(split)
        self.batch_size = batch_size
        self.time_step = time_step
        self.mode = mode
        self.eval_batch_size = eval_batch_size
        self.eval_windows, self.eval_window_length = eval_windows, eval_window_length
        self.batches_per_epoch = batches_per_epoch
        self.seed = seed
        self.vocabulary: Vocabulary | None = None
        self.splits: dict[str, torch.Tensor] = {}
        self._train_batches: StreamChunks | RandomWindows | None = None

    def net_inputs(self) -> dict[str, str]:
        """What the net is built for: the training text's characters (its vocabulary), once read."""
        check(self.vocabulary is not None, "the text is not read yet (setup)")
        return {"characters": self.vocabulary.characters}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        path = require(self.data_dir, self.file, url=self.url, sha256=self.sha256, download=self.download)
        parts = split_text(read_text(path), self.split)
        train = parts[0]
        check(
            len(train) > self.time_step,
            f"time_step {self.time_step} is larger than the training text ({len(train)} characters of "
            f"{path}); lower time_step or use a longer file",
        )
        check(len(parts[1]) >= 2, f"the validation part of {path} has under 2 characters; change data.split")
        self.vocabulary = Vocabulary(train)
        names = ("train", "val", "test")
        for name, part in zip(names, parts):
            missing = self.vocabulary.unknown(part)
            if missing:
                # A defined fallback: unseen characters cannot be scored, so they are dropped (and said so).
                log.warning("%s text: dropping characters not in the training vocabulary: %r", name, missing)
                part = "".join(char for char in part if char in self.vocabulary.index)
            self.splits[name] = self.vocabulary.encode(part, f"{name} text")
        if len(self.splits.get("test", ())) < 2:
            self.splits["test"] = self.splits["val"]  # no test part: test = the validation stream
        for name in ("val", "test"):
            check(
                not self.eval_windows or len(self.splits[name]) > self.eval_window_length,
                f"the {name} text has {len(self.splits[name])} characters, too few for evaluation windows of "
                f"{self.eval_window_length} (data.eval_window_length); lower it or set data.eval_windows=0",
            )
        log.info(
            "text %s: %d characters, vocabulary %d, train/val/test = %d/%d/%d characters (%s batches)",
            path,
            sum(len(p) for p in parts),
            len(self.vocabulary),
            *(len(self.splits[name]) for name in names),
            self.mode,
        )

    def train_dataloader(self) -> StreamChunks | RandomWindows:
        if self._train_batches is None:
            ids = self.splits["train"]
            per_epoch = self.batches_per_epoch
            if self.mode == "stream":
                self._train_batches = StreamChunks(ids, self.batch_size, self.time_step, per_epoch)
            else:
                self._train_batches = RandomWindows(
                    ids, self.batch_size, self.time_step, self.seed, per_epoch
                )
        return self._train_batches

    def val_dataloader(self) -> list[StreamChunks | EvalWindows]:
        return self._scoring("val")

    def test_dataloader(self) -> list[StreamChunks | EvalWindows]:
        return self._scoring("test")

    def _scoring(self, name: str) -> list[StreamChunks | EvalWindows]:
        """The split's stream (dataloader 0) and, unless eval_windows is 0, its windows (dataloader 1)."""
        ids = self.splits[name]
        loaders: list[StreamChunks | EvalWindows] = [StreamChunks(ids, self.eval_batch_size, self.time_step)]
        if self.eval_windows:
            loaders.append(EvalWindows(ids, self.eval_windows, self.eval_window_length, self.seed))
        return loaders
