"""News articles as sub-word ids for a pretrained Transformer: its own tokenizer on the raw text, and
batches of like lengths, each padded to its own longest text.

Batches are (input ids, attention mask, labels): each text truncated to `max_length` tokens, or with
`windows=true` cut into up to `max_windows` windows of `max_length` tokens, (B, K, T) per batch, so the model
can read a whole article through a short encoder (see `NewsClassifier`). Headlines are short (about 9 MiniLM
tokens, 17 at most), so a batch padded to the split's longest text is mostly padding: `LengthBucketedBatches`
groups texts of like length and cuts each batch to its own longest. Padding is masked (attention, mean
pooling, the LSTM head read only real tokens), so this changes the cost of a step, not the logits of a text.
"""

from __future__ import annotations

import logging

import torch

from datamodules.news.base import NewsDataModule
from datamodules.tensor_batches import TensorBatches
from hw2lab.errors import HW2LabError, check

log = logging.getLogger("hw2lab")


def load_hf_tokenizer(name: str):
    """The Transformer's own tokenizer (same resolution of `model.net.encoder.pretrained` as the model)."""
    from transformers import AutoTokenizer

    from datamodules.news.pretrained import resolve_pretrained

    location, local = resolve_pretrained(name)
    try:
        return AutoTokenizer.from_pretrained(location, local_files_only=local)
    except (OSError, ValueError) as error:
        raise HW2LabError(
            f"cannot load the tokenizer of model.pretrained={name!r} from {location}: {error}"
        ) from None


def trim_padding(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """(input ids, attention mask, ...) cut, along every dimension after the first (tokens; for windows,
    windows and tokens), to the last position where the mask has a real token: the batch padded to its own
    longest text. The other tensors are left as they are."""
    ids, mask = batch[0], batch[1]
    keep: list[slice] = [slice(None)]
    for dim in range(1, mask.ndim):
        used = mask.amax(dim=[d for d in range(mask.ndim) if d != dim]).nonzero()
        keep.append(slice(0, int(used.max()) + 1 if len(used) else 1))
    return (ids[tuple(keep)].contiguous(), mask[tuple(keep)].contiguous(), *batch[2:])


class LengthBucketedBatches(TensorBatches):
    """Batches of texts of like length, each padded to its own longest (`trim_padding`); the length of a
    text is its number of real tokens (the attention mask, the second tensor).

    In order (evaluation): longest first, ties in the split's order. Shuffled (training), each epoch: a
    seeded random order (as TensorBatches, from (seed, epoch)) cut into buckets of `bucket_batches`
    batches, each bucket sorted by length and cut into batches, and the batches shuffled: an epoch stays
    random (which texts share a bucket, ties, the order of the batches), and its batches hold like lengths.
    `bucket_batches=1`: TensorBatches' random batches, in its order, each cut to its longest (in one
    process, the batches of a run before bucketing; dropout, drawn for the padded shape, still differs).
    Under DDP each rank takes every world-size-th text of that order, so the ranks' batches at one step
    have like lengths too.
    """

    def __init__(self, *tensors: torch.Tensor, bucket_batches: int = 50, **settings) -> None:
        super().__init__(*tensors, **settings)
        self.bucket_batches = bucket_batches
        self.lengths = tensors[1].flatten(1).sum(1)

    def _by_length(self, rows: torch.Tensor) -> torch.Tensor:
        return rows[torch.sort(self.lengths[rows], descending=True, stable=True).indices]

    def batch_rows(self) -> list[torch.Tensor]:
        """This epoch's batches of this process, as row indices, in the order they are served."""
        total = len(self.lengths)
        if not self.shuffle:
            mine = self._by_length(torch.arange(total))[self.rank :: self.num_replicas]
            return list(mine.split(self.batch_size))[: self.num_batches]
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(total, generator=generator)
        bucket = self.bucket_batches * self.batch_size * self.num_replicas
        order = torch.cat([self._by_length(rows) for rows in order.split(bucket)])
        batches = list(order[self.rank :: self.num_replicas].split(self.batch_size))[: self.num_batches]
        if self.bucket_batches == 1:  # already in a random order
            return batches
        return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]

    def __iter__(self):
        for rows in self.batch_rows():
            yield trim_padding(tuple(t[rows] for t in self.tensors))
        self.epoch += 1


class SubwordNewsDataModule(NewsDataModule):
    """The news splits as sub-word ids of the tokenizer of `tokenizer_name` (the encoder's
    `model.net.encoder.pretrained`), truncated to `max_length` tokens, or with `windows` cut into windows of
    `max_length` tokens (neighbours sharing `window_overlap`, at most `max_windows` kept). Training batches
    are bucketed by length over `bucket_batches` batches (`LengthBucketedBatches`). The other keys are
    `NewsDataModule`'s."""

    def __init__(
        self,
        data_dir: str,
        tokenizer_name: str | None = None,
        path: str = "bbc_news/bbc",
        text: str = "title",
        max_length: int = 256,
        windows: bool = False,
        window_overlap: int = 0,
        max_windows: int | None = 8,
        bucket_batches: int = 50,
        batch_size: int = 32,
        split: tuple[float, float, float] = (0.7, 0.15, 0.15),
        folds: int | None = None,
        fold: int = 0,
        seed: int = 42,
        group_duplicates: bool = True,
        predict_file: str | None = None,
        sample_submission: str | None = None,
    ) -> None:
        super().__init__(
            data_dir,
            path,
            text,
            batch_size,
            split,
            folds,
            fold,
            seed,
            group_duplicates,
            predict_file,
            sample_submission,
        )
        check(
            bool(tokenizer_name),
            "data.tokenizer_name is empty: the sub-word data reads with the tokenizer of "
            "model.net.encoder.pretrained (model=transformer)",
        )
        check(max_length >= 1, f"data.max_length must be >= 1, got {max_length}")
        check(
            0 <= window_overlap < max_length // 2,
            f"data.window_overlap must be in [0, max_length / 2), got {window_overlap}",
        )
        check(max_windows is None or max_windows >= 1, f"data.max_windows must be >= 1, got {max_windows}")
        check(bucket_batches >= 1, f"data.bucket_batches must be >= 1, got {bucket_batches}")
        self.tokenizer_name, self.max_length = tokenizer_name, max_length
        self.windows, self.window_overlap, self.max_windows = windows, window_overlap, max_windows
        self.bucket_batches = bucket_batches
        self.hf_tokenizer = None

    def encode_splits(self) -> None:
        self.hf_tokenizer = load_hf_tokenizer(self.tokenizer_name)
        for split in self.splits():
            texts = [a.text(self.text) for a in self.articles[split]]
            labels = self.split_labels(split)
            if self.windows:
                self.split_tensors[split] = (*self.encode_windows(texts), labels)
            else:
                encoded = self.encode_pretrained(texts)
                self.split_tensors[split] = (encoded["input_ids"], encoded["attention_mask"], labels)
        ids, mask = self.split_tensors["train"][:2]
        if self.windows:
            counts = mask[:, :, 0].sum(1).float()
            log.info(
                "encoded with the tokenizer of %s in windows of %d tokens (overlap %d, at most %s per "
                "article): %.1f windows per training article on average, %d at most",
                self.tokenizer_name,
                ids.shape[2],
                self.window_overlap,
                self.max_windows,
                counts.mean().item(),
                int(counts.max().item()),
            )
        else:
            lengths = mask.sum(1).float()
            log.info(
                "encoded with the tokenizer of %s: %.1f tokens per training text on average, %d at most; "
                "batches padded to their own longest (bucketed over %d batches in training)",
                self.tokenizer_name,
                lengths.mean().item(),
                int(lengths.max().item()),
                self.bucket_batches,
            )

    def encode_pretrained(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.hf_tokenizer(
            texts, truncation=True, max_length=self.max_length, padding="longest", return_tensors="pt"
        )

    def encode_windows(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(input ids, attention mask), each (N, K, max_length): text i cut by its tokenizer into windows of
        max_length tokens with the special tokens, neighbours sharing `window_overlap` tokens, the first
        `max_windows` kept. K is the most windows of any text; a text with fewer has all-padding windows
        (mask 0) after its own, which the model skips."""
        try:
            encoded = self.hf_tokenizer(
                texts,
                truncation=True,
                max_length=self.max_length,
                stride=self.window_overlap,
                return_overflowing_tokens=True,
                padding="max_length",
            )
        except (NotImplementedError, ValueError) as error:
            encoded, reason = {}, f": {error}"
        else:
            reason = ""
        check(
            "overflow_to_sample_mapping" in encoded,
            f"data.windows=true needs a tokenizer that returns overflowing windows (a Hugging Face fast "
            f"tokenizer); the one of {self.tokenizer_name!r} does not{reason}",
        )
        per_text: list[list[int]] = [[] for _ in texts]
        for window, text_index in enumerate(encoded["overflow_to_sample_mapping"]):
            if self.max_windows is None or len(per_text[text_index]) < self.max_windows:
                per_text[text_index].append(window)
        windows = torch.tensor(encoded["input_ids"])
        masks = torch.tensor(encoded["attention_mask"])
        count = max(len(w) for w in per_text)
        ids = torch.full(
            (len(texts), count, self.max_length), self.hf_tokenizer.pad_token_id, dtype=torch.long
        )
        mask = torch.zeros_like(ids)
        for i, own in enumerate(per_text):
            ids[i, : len(own)], mask[i, : len(own)] = windows[own], masks[own]
        return ids, mask

    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """New texts as the model's batches hold them: (input ids, attention mask); with `windows`, only each
        text's first window (short texts such as the attention-map sentences)."""
        self.setup()
        encoded = self.encode_pretrained(texts)
        return encoded["input_ids"], encoded["attention_mask"]

    # -- batches of like lengths, and the order their predictions come in
    def make_batches(self, split: str, shuffle: bool = False, trainer=None) -> LengthBucketedBatches:
        return LengthBucketedBatches.for_trainer(
            trainer,
            *self.split_tensors[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            seed=self.seed,
            bucket_batches=self.bucket_batches,
        )

    def evaluation_order(self, split: str, whole: bool = False) -> torch.Tensor:
        """Longest text first (see `NewsDataModule.evaluation_order`)."""
        rows = self.make_batches(split, trainer=None if whole else self.trainer).batch_rows()
        return torch.cat(rows) if rows else torch.zeros(0, dtype=torch.long)
