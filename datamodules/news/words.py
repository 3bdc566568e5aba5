"""News articles as word ids for the word models (LSTM, EmbeddingBag): the course's text pipeline
(`datamodules.news.text`), a vocabulary built on the training split only (and, optionally, the words of the
GloVe file), each split padded once to its longest text; batches are (token ids, lengths, labels)."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import torch

from datamodules.news.base import NewsDataModule
from datamodules.news.text import TextPipeline
from hw2lab.data_files import require
from hw2lab.errors import check

log = logging.getLogger("hw2lab")

PAD, UNK = "<pad>", "<unk>"


class Vocabulary:
    """Token <-> id with <pad> = 0 and <unk> = 1; built from training texts only."""

    def __init__(self, tokens: list[str]) -> None:
        self.itos = [PAD, UNK, *[t for t in tokens if t not in (PAD, UNK)]]
        self.stoi = {token: index for index, token in enumerate(self.itos)}

    @classmethod
    def build(
        cls,
        token_lists: list[list[str]],
        min_count: int = 1,
        max_size: int | None = None,
        extra_words: list[str] | None = None,
    ) -> Vocabulary:
        """Training tokens seen at least `min_count` times, most frequent first, then `extra_words` (the
        words of a pretrained embedding) that training lacks."""
        counts = Counter(token for tokens in token_lists for token in tokens)
        kept = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
        kept = kept[:max_size] if max_size else kept
        if extra_words:
            seen = set(kept)
            kept += [word for word in dict.fromkeys(extra_words) if word not in seen]
        return cls(kept)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: list[str]) -> list[int]:
        return [self.stoi.get(token, 1) for token in tokens]


def embedding_file_words(path: Path) -> list[str]:
    """The words of a GloVe-style text file (the first field of each line), in file order."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        return [line.split(" ", 1)[0] for line in handle if line.strip()]


def pad_ids(sequences: list[list[int]], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Truncate to max_length, pad with 0 to the longest kept sequence; lengths are at least 1 (an empty
    text becomes one <pad>) so every row has a last real token for the LSTM to read."""
    width = max(1, min(max_length, max((len(s) for s in sequences), default=1)))
    ids = torch.zeros(len(sequences), width, dtype=torch.long)
    lengths = torch.ones(len(sequences), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        sequence = sequence[:width]
        if sequence:
            ids[row, : len(sequence)] = torch.tensor(sequence)
            lengths[row] = len(sequence)
    return ids, lengths


class WordNewsDataModule(NewsDataModule):
    """The news splits as word ids: `tokenizer` (regexp, word, split) on lower-cased text, stop words
    removed unless `remove_stop_words` is false, at most `max_length` tokens a text; the vocabulary keeps
    training tokens seen `min_count` times (at most `max_vocab`), plus with `add_embedding_words` every word
    of `embedding_file`. The other keys are `NewsDataModule`'s."""

    def __init__(
        self,
        data_dir: str,
        path: str = "bbc_news/bbc",
        text: str = "title",
        tokenizer: str = "regexp",
        remove_stop_words: bool = True,
        min_count: int = 1,
        max_vocab: int | None = None,
        max_length: int = 256,
        embedding_file: str | None = None,
        add_embedding_words: bool = False,
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
        check(min_count >= 1, f"data.min_count must be >= 1, got {min_count}")
        check(max_length >= 1, f"data.max_length must be >= 1, got {max_length}")
        self.pipeline = TextPipeline(tokenizer, remove_stop_words, data_dir=data_dir)  # checks `tokenizer`
        self.tokenizer = tokenizer
        self.min_count, self.max_vocab, self.max_length = min_count, max_vocab, max_length
        self.embedding_file, self.add_embedding_words = embedding_file, add_embedding_words
        self.vocab: Vocabulary | None = None

    def net_inputs(self) -> dict[str, list[str]]:
        """The class names and the vocabulary built on the training split (its words by id)."""
        return {**super().net_inputs(), "itos": list(self.vocab.itos)}

    def encode_splits(self) -> None:
        self.run_notes["stop_words"] = self.pipeline.stop_words_source or "kept"
        tokens = {s: [self.pipeline(a.text(self.text)) for a in self.articles[s]] for s in self.splits()}
        extra = None
        if self.add_embedding_words and self.embedding_file:
            extra = embedding_file_words(require(self.data_dir, self.embedding_file))
        self.vocab = Vocabulary.build(tokens["train"], self.min_count, self.max_vocab, extra)
        for split in self.splits():
            ids, lengths = pad_ids([self.vocab.encode(t) for t in tokens[split]], self.max_length)
            self.split_tensors[split] = (ids, lengths, self.split_labels(split))
        known = sum(id_ != 1 for t in tokens["val"] for id_ in self.vocab.encode(t))
        total = sum(len(t) for t in tokens["val"]) or 1
        log.info(
            "vocabulary: %d tokens (training split, min_count %d%s; tokenizer %s, stop words %s); "
            "%.1f%% of validation tokens known; padded length %d",
            len(self.vocab),
            self.min_count,
            f", plus the words of {self.embedding_file}" if extra else "",
            self.tokenizer,
            self.pipeline.stop_words_source or "kept",
            100 * known / total,
            self.split_tensors["train"][0].shape[1],
        )

    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """New texts as the batches hold them: (ids, lengths)."""
        self.setup()
        return pad_ids([self.vocab.encode(self.pipeline(t)) for t in texts], self.max_length)
