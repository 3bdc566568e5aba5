"""News articles in 5 classes (BBC News): what the word and the sub-word data modules share.

`NewsDataModule` reads the articles (`datamodules.news.articles`), splits them leak-free into train/val/test
or K folds (`datamodules.news.splits`), reads the unlabelled file to predict, and says in which order the
predictions of an evaluation pass come back. The whole set is a few MB, so every split is encoded once into
in-memory tensors; how is the subclass's business:
- `WordNewsDataModule` (`datamodules.news.words`, the LSTM and EmbeddingBag): nltk tokens, a vocabulary
  built on the training split; batches of (token ids, lengths, labels);
- `SubwordNewsDataModule` (`datamodules.news.subword`, a pretrained Transformer): the encoder's own
  tokenizer; batches of (input ids, attention mask, labels), each padded to its own longest text.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod

import torch

from datamodules.news.articles import TEXT_FIELDS, read_articles, read_news_csv, submission_header
from datamodules.news.splits import group_duplicates, grouped_fold_split, grouped_stratified_split
from datamodules.tensor_batches import InMemoryDataModule, TensorBatches
from hw2lab.data_files import require
from hw2lab.errors import check

log = logging.getLogger("hw2lab")

SPLITS = ("train", "val", "test")


class NewsDataModule(InMemoryDataModule, ABC):
    """BBC News (folder) or a labelled news CSV, split train/val/test; the subclass encodes the splits
    (`encode_splits`) and new texts (`encode`) for its model."""

    def __init__(
        self,
        data_dir: str,
        path: str = "bbc_news/bbc",
        text: str = "title",
        batch_size: int = 32,
        split: tuple[float, float, float] = (0.7, 0.15, 0.15),
        folds: int | None = None,
        fold: int = 0,
        seed: int = 42,
        group_duplicates: bool = True,
        predict_file: str | None = None,
        sample_submission: str | None = None,
    ) -> None:
        super().__init__(batch_size, seed)
        check(text in TEXT_FIELDS, f"data.text must be one of {TEXT_FIELDS}, got {text!r}")
        check(
            len(split) == 3 and all(r >= 0 for r in split) and split[0] > 0,
            f"data.split must be 3 ratios >= 0 (train > 0), got {list(split)}",
        )
        check(
            folds is None or (isinstance(folds, int) and folds >= 2),
            f"data.folds must be null or an integer >= 2, got {folds!r}",
        )
        check(
            folds is None or (isinstance(fold, int) and 0 <= fold < folds),
            f"data.fold must be in [0, data.folds) = [0, {folds}), got {fold}",
        )
        check(
            folds is not None or fold == 0,
            f"data.fold={fold} needs data.folds=K (K-fold cross-validation); without it the split is data.split",
        )
        check(
            sample_submission is None or predict_file is not None,
            "data.sample_submission needs data.predict_file (the file whose answers it shows)",
        )
        self.data_dir, self.path, self.text = data_dir, path, text
        self.split, self.folds, self.fold = list(split), folds, fold
        self.group_duplicates = group_duplicates
        self.predict_file, self.sample_submission = predict_file, sample_submission
        self.classes: list[str] = []
        self.articles: dict[str, list] = {}
        self.run_notes: dict[str, object] = {}
        # submission.csv's header, known once the file to predict is read.
        self.submission_columns: list[str] = []

    # -- what the model and the callbacks ask
    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def net_inputs(self) -> dict[str, list[str]]:
        """What the net is built for: the class names (read in `setup`)."""
        check(bool(self.classes), "the articles are not read yet (setup)")
        return {"classes": list(self.classes)}

    def texts(self, split: str) -> list[str]:
        """The raw model inputs of a split (before tokenisation), e.g. for a TF-IDF baseline."""
        self.setup()
        return [article.text(self.text) for article in self.articles[split]]

    def labels(self, split: str) -> list[int]:
        self.setup()
        return self._labels(split)

    def _labels(self, split: str) -> list[int]:
        return [self.classes.index(article.category) for article in self.articles[split]]

    def ids(self, split: str) -> list[str]:
        self.setup()
        return [article.id for article in self.articles[split]]

    @abstractmethod
    def encode_splits(self) -> None:
        """Fill `split_tensors` for every split of `splits()`, labels last (`split_labels`)."""

    @abstractmethod
    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """New texts as the model's batches hold them (inputs, lengths or attention mask)."""

    # -- reading and splitting
    def setup(self, stage: str | None = None) -> None:
        if self.split_tensors:
            return
        source = require(self.data_dir, self.path, download=False)
        articles = read_articles(source)
        for article in articles:
            check(
                bool(article.text(self.text)),
                f"article {article.id} in {source} has an empty {self.text} (data.text={self.text})",
            )
        self.classes = sorted({a.category for a in articles})
        check(len(self.classes) >= 2, f"{source}: need at least 2 categories, found {self.classes}")
        duplicates = group_duplicates(
            [(a.text("full"), "input:" + a.text(self.text).lower()) for a in articles]
        )
        # Ungrouped (the course's protocol, as a competition's test set is usually cut): every article on its own.
        groups = duplicates if self.group_duplicates else list(range(len(articles)))
        labels = [a.category for a in articles]
        if self.folds:
            parts = grouped_fold_split(labels, groups, self.folds, self.fold, self.split[:2], self.seed)
            how = f"test = fold {self.fold} of {self.folds}, the rest train/val at {self.split[:2]}"
        else:
            parts = grouped_stratified_split(labels, groups, self.split, self.seed)
            how = f"ratios {self.split}"
        self.articles = {name: [articles[i] for i in part] for name, part in zip(SPLITS, parts)}
        check(bool(self.articles["train"]), f"no training articles after the split ({how})")
        trained_on = {duplicates[i] for i in parts[0]}
        leaked = sum(duplicates[i] in trained_on for i in parts[2])
        # In metrics.json: a sweep over data.fold pools its folds' test accuracy with these sizes; `leaked`
        # counts the test articles whose text or input is also in training (0 when grouped).
        self.run_notes = {
            "split_sizes": {name: len(self.articles[name]) for name in SPLITS},
            "test_with_duplicate_in_train": leaked,
        }
        log.info(
            "news: %d articles, %d classes %s, %d groups of duplicates (articles with the same text or input), %s; "
            "train/val/test = %d/%d/%d (%s, seed %d, stratified); %d test articles have a duplicate in training",
            len(articles),
            len(self.classes),
            self.classes,
            len(set(duplicates)),
            "each kept in one split"
            if self.group_duplicates
            else "split freely (data.group_duplicates=false)",
            *(len(self.articles[s]) for s in SPLITS),
            how,
            self.seed,
            leaked,
        )
        if self.predict_file:
            self._read_predict_file()
        self.encode_splits()

    def _read_predict_file(self) -> None:
        """The unlabelled file to predict (`data.predict_file`, e.g. Kaggle's test CSV): read in its row
        order; rows with an empty text are kept (the model still answers them) and counted."""
        source = require(self.data_dir, self.predict_file, download=False)
        check(source.suffix.lower() == ".csv", f"data.predict_file={self.predict_file}: expected a .csv file")
        rows = read_news_csv(source, labelled=False)
        empty = sum(not row.text(self.text) for row in rows)
        check(
            empty < len(rows),
            f"data.predict_file={self.predict_file}: every row has an empty {self.text} (data.text={self.text})",
        )
        sample = (
            require(self.data_dir, self.sample_submission, download=False) if self.sample_submission else None
        )
        self.submission_columns = submission_header(source, sample, [row.id for row in rows])
        self.articles["predict"] = rows
        self.run_notes["predict"] = {"file": str(source), "rows": len(rows), f"empty_{self.text}": empty}
        log.info(
            "to predict: %d rows of %s%s; submission.csv's header %s",
            len(rows),
            source,
            f", {empty} with an empty {self.text} (predicted all the same)" if empty else "",
            ",".join(self.submission_columns),
        )

    def splits(self) -> list[str]:
        """The splits encoded: train, val, test, and `predict` with `data.predict_file`."""
        return [*SPLITS, "predict"] if "predict" in self.articles else list(SPLITS)

    def split_labels(self, split: str) -> torch.Tensor:
        """Class ids of a split; the unlabelled `predict` split gets -1 (never scored)."""
        if split == "predict":
            return torch.full((len(self.articles[split]),), -1, dtype=torch.long)
        return torch.tensor(self._labels(split), dtype=torch.long)

    # -- batches, and the order their predictions come in
    def make_batches(self, split: str, shuffle: bool = False, trainer=None) -> TensorBatches:
        """Batches of one split, for `trainer`'s process (all of them without one)."""
        return TensorBatches.for_trainer(
            trainer, *self.split_tensors[split], batch_size=self.batch_size, shuffle=shuffle, seed=self.seed
        )

    def batches(self, split: str, shuffle: bool = False) -> TensorBatches:
        return self.make_batches(split, shuffle, self.trainer)

    def evaluation_order(self, split: str, whole: bool = False) -> torch.Tensor:
        """The article (index into `articles[split]`) of each example an evaluation pass over `split`
        yields, in order: this process's share of `batches(split)`, or with `whole` all of
        `make_batches(split)` (as `predict_batches`). In the split's order, each DDP rank taking every
        world-size-th article (as TensorBatches)."""
        trainer = None if whole else self.trainer
        rank, replicas = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        return torch.arange(len(self.articles[split]))[rank::replicas]

    def in_split_order(
        self, split: str, predictions: list[int], whole: bool = False
    ) -> list[tuple[int, int]]:
        """(article index, prediction) pairs sorted by article: `predictions` are those of an evaluation
        pass over `split` in the order its batches came (`evaluation_order`), perhaps cut short by a
        limit on the number of batches."""
        order = self.evaluation_order(split, whole)[: len(predictions)].tolist()
        return sorted(zip(order, predictions))

    def predict_batches(self) -> TensorBatches:
        """Every row of the predict split, in one process (for writing submission.csv); their predictions
        come in the order `evaluation_order("predict", whole=True)`."""
        self.setup()
        check("predict" in self.split_tensors, "nothing to predict: set data.predict_file=<a CSV>")
        return self.make_batches("predict")
