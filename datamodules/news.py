"""News articles in 5 classes (BBC News): reading, the course's text pipeline, a leak-free split, batching.

Two on-disk formats: the BBC folder (one folder per category, `NNN.txt` with the headline on line 1, then
the body) and a Kaggle-style CSV (`Id,Category,Title`, or `category,text`). The whole set is a few MB, so
every split is encoded once into in-memory tensors and batched by `InMemoryDataModule`:
- word models (LSTM, EmbeddingBag): lower-case, tokenize (`regexp`, `word`, `split`), drop stop words, map
  to a vocabulary built on the training split only; batches are (token ids, lengths, labels);
- a pretrained Transformer (`tokenizer_name` set, from `${model.pretrained}`): its own tokenizer on the raw
  text; batches are (input ids, attention mask, labels), each text truncated to `max_length` tokens, or
  with `windows=true` cut into up to `max_windows` windows of `max_length` tokens, (B, K, T) per batch, so
  the model can read a whole article through a short encoder (see `NewsClassifier`).
"""

from __future__ import annotations

import csv
import logging
import re
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from datamodules.tensor_batches import InMemoryDataModule, TensorBatches
from hw2lab.data_files import require
from hw2lab.errors import HW2LabError, check

log = logging.getLogger("hw2lab")

TEXT_FIELDS = ("title", "body", "full")
TOKENIZERS = ("regexp", "word", "split")
PAD, UNK = "<pad>", "<unk>"
SPLITS = ("train", "val", "test")


@dataclass
class Article:
    id: str
    category: str
    title: str
    body: str

    def text(self, field: str) -> str:
        if field == "title":
            return self.title
        if field == "body":
            return self.body
        return f"{self.title}\n\n{self.body}".strip()


# ---------------------------------------------------------------------------------------------- reading


def read_text_file(path: Path) -> str:
    """UTF-8, or Latin-1 for the odd file that is not (BBC sport/199.txt has a lone 0xA3 for '£')."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        log.info("%s is not valid UTF-8; read as Latin-1", path)
        return raw.decode("latin-1")


def read_bbc_folder(root: Path) -> list[Article]:
    """`root/<category>/<name>.txt`: line 1 the headline, the rest (after blank lines) the body."""
    categories = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    check(bool(categories), f"no category folders in {root} (expected {root}/<category>/<NNN>.txt)")
    articles = []
    for folder in categories:
        files = sorted(folder.glob("*.txt"))
        check(bool(files), f"category folder {folder} has no .txt articles")
        for path in files:
            title, _, body = read_text_file(path).strip().partition("\n")
            articles.append(Article(f"{folder.name}/{path.stem}", folder.name, title.strip(), body.strip()))
    return articles


def read_news_csv(path: Path, labelled: bool = True) -> list[Article]:
    """A news CSV with a header: `title` and/or `text` (or `body`) columns, and a category column when
    `labelled`; an id column (`id`, `articleid`) if present, else the row number. Column names are
    case-insensitive. Unlabelled (a Kaggle test file to predict, `data.predict_file`): categories are empty,
    ids are kept exactly as written, and a row may have an empty text."""
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.DictReader(handle)
        columns = {name.strip().lower(): name for name in reader.fieldnames or []}
        check(
            not labelled or "category" in columns,
            f"{path}: no 'category' column (columns: {reader.fieldnames}); an unlabelled file to predict "
            "goes in data.predict_file",
        )
        text_columns = [c for c in ("title", "text", "body") if c in columns]
        check(
            bool(text_columns), f"{path}: no 'title', 'text' or 'body' column (columns: {reader.fieldnames})"
        )
        id_column = next((columns[c] for c in ("id", "articleid") if c in columns), None)
        articles = []
        for number, row in enumerate(reader, start=1):
            title = (row.get(columns.get("title", ""), "") or "").strip()
            body = (row.get(columns.get("text", columns.get("body", "")), "") or "").strip()
            if not labelled:
                row_id = (row.get(id_column) or "") if id_column else str(number)
                articles.append(Article(row_id, "", title, body))
                continue
            category = (row.get(columns["category"]) or "").strip()
            check(bool(category), f"{path}: row {number} has an empty category")
            row_id = (row.get(id_column) or "").strip() if id_column else str(number)
            articles.append(Article(row_id or str(number), category, title, body))
    check(bool(articles), f"{path} has no rows")
    return articles


def read_articles(path: Path) -> list[Article]:
    if path.is_dir():
        return read_bbc_folder(path)
    check(path.suffix.lower() == ".csv", f"{path}: expected a BBC folder or a .csv file")
    return read_news_csv(path)


# ---------------------------------------------------------------------------------------------- splitting


def group_duplicates(keys_per_article: list[tuple[str, ...]]) -> list[int]:
    """Union-find over articles that share any key: one group id per article."""
    parent = list(range(len(keys_per_article)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_with_key: dict[str, int] = {}
    for index, keys in enumerate(keys_per_article):
        for key in keys:
            if key in first_with_key:
                parent[find(index)] = find(first_with_key[key])
            else:
                first_with_key[key] = index
    return [find(i) for i in range(len(keys_per_article))]


def grouped_stratified_split(
    labels: list[str], groups: list[int], ratios: list[float], seed: int
) -> list[list[int]]:
    """Seeded split of article indices into len(ratios) parts, stratified by label, whole groups at a time
    (duplicates never straddle two splits). Each group goes with its first article's label."""
    check(
        len(ratios) >= 2 and all(r >= 0 for r in ratios), f"split must be 2 or more ratios >= 0, got {ratios}"
    )
    check(abs(sum(ratios) - 1) < 1e-6, f"split ratios must sum to 1, got {ratios}")
    members: dict[int, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    by_label: dict[str, list[int]] = {}
    for group, indices in members.items():
        by_label.setdefault(labels[indices[0]], []).append(group)
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in ratios]
    for label in sorted(by_label):
        label_groups = sorted(by_label[label])
        rng.shuffle(label_groups)
        total = sum(len(members[g]) for g in label_groups)
        targets = np.cumsum(ratios) * total
        taken = 0
        for group in label_groups:
            part = int(np.searchsorted(targets, taken + len(members[group]) / 2))
            part = min(part, len(ratios) - 1)
            parts[part].extend(members[group])
            taken += len(members[group])
    return [sorted(part) for part in parts]


def grouped_fold_split(
    labels: list[str], groups: list[int], folds: int, fold: int, train_val: list[float], seed: int
) -> list[list[int]]:
    """(train, val, test) article indices for fold `fold` of a grouped, stratified `folds`-fold split: the
    test part is that fold, and the other folds are split into train and val at the ratio `train_val`.
    With one seed the folds are disjoint and cover every article, so their test scores pool into a
    cross-validated score of the whole set."""
    parts = grouped_stratified_split(labels, groups, [1 / folds] * folds, seed)
    rest = sorted(i for k, part in enumerate(parts) if k != fold for i in part)
    share = train_val[0] / sum(train_val)
    inner = grouped_stratified_split(
        [labels[i] for i in rest], [groups[i] for i in rest], [share, 1 - share], seed
    )
    return [[rest[i] for i in part] for part in inner] + [parts[fold]]


# ---------------------------------------------------------------------------------------------- text pipeline


def make_tokenizer(name: str) -> Callable[[str], list[str]]:
    """Tokenizers of lower-cased text; none needs a downloaded nltk corpus."""
    check(name in TOKENIZERS, f"data.tokenizer must be one of {TOKENIZERS}, got {name!r}")
    if name == "regexp":
        from nltk.tokenize import RegexpTokenizer

        return RegexpTokenizer(r"[a-z\-]+").tokenize
    if name == "word":
        # word_tokenize = punkt sentence split + NLTKWordTokenizer; punkt needs a download, so sentences
        # are split on end punctuation followed by white space instead.
        from nltk.tokenize import NLTKWordTokenizer

        words = NLTKWordTokenizer()
        return lambda text: [t for s in re.split(r"(?<=[.!?])\s+", text) for t in words.tokenize(s)]
    return str.split


def nltk_data_paths(data_dir: str | Path | None = None) -> list[Path]:
    """Where nltk data is looked for: `<data dir>/nltk_data` first (the project's offline copy), then
    nltk's own paths (`NLTK_DATA`, ~/nltk_data, the environment's and the system's)."""
    import nltk

    own = [Path(data_dir).expanduser() / "nltk_data"] if data_dir else []
    return own + [Path(p) for p in nltk.data.path]


def read_nltk_word_list(base: Path, name: str = "english") -> tuple[list[str], Path] | None:
    """nltk's word list `corpora/stopwords/<name>` under an nltk data folder `base`, from the unpacked folder
    or `corpora/stopwords.zip` (read as nltk reads it: one word a line, blank lines skipped); None when
    `base` has neither. Read directly, so that a folder outside nltk's own paths is allowed."""
    folder, archive = base / "corpora" / "stopwords", base / "corpora" / "stopwords.zip"
    if (folder / name).is_file():
        return (folder / name).read_text(encoding="utf-8").splitlines(), folder
    if archive.is_file():
        with zipfile.ZipFile(archive) as bundle:
            lines = bundle.read(f"stopwords/{name}").decode("utf-8").splitlines()
        return lines, archive
    return None


def english_stop_words(data_dir: str | Path | None = None) -> tuple[frozenset[str], str]:
    """nltk's English list from the first place on `nltk_data_paths(data_dir)` that has its stopwords corpus
    (folder or zip); else scikit-learn's ENGLISH_STOP_WORDS (logged). Returns (words, source), the source
    naming the list and, for nltk's, the file it was read from."""
    searched = nltk_data_paths(data_dir)
    for base in searched:
        try:
            found = read_nltk_word_list(base)
        except (OSError, KeyError, UnicodeDecodeError, zipfile.BadZipFile) as error:  # a damaged copy
            log.warning("cannot read nltk's stop words under %s (%s); looking further", base, error)
            continue
        if found is not None:
            words = frozenset(w.strip() for w in found[0] if w.strip())
            if words:
                return words, f"nltk ({found[1]})"
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    log.warning(
        "nltk's stopwords corpus is not in %s: using scikit-learn's English stop words instead (put nltk's "
        "corpora/stopwords.zip under <data dir>/nltk_data, or `python -m nltk.downloader stopwords`)",
        ", ".join(str(p) for p in searched),
    )
    return frozenset(ENGLISH_STOP_WORDS), "scikit-learn"


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


class TextPipeline:
    """Lower-case -> tokenize -> drop stop words; the course's preprocessing in one callable. Stop words:
    nltk's English list, looked for in `<data_dir>/nltk_data` and nltk's own paths (`english_stop_words`)."""

    def __init__(
        self,
        tokenizer: str = "regexp",
        remove_stop_words: bool = True,
        lowercase: bool = True,
        data_dir: str | Path | None = None,
    ):
        self.tokenize = make_tokenizer(tokenizer)
        self.lowercase = lowercase
        self.stop_words, self.stop_words_source = (
            english_stop_words(data_dir) if remove_stop_words else (frozenset(), "")
        )

    def __call__(self, text: str) -> list[str]:
        tokens = self.tokenize(text.lower() if self.lowercase else text)
        return [t for t in tokens if t not in self.stop_words]


def load_hf_tokenizer(name: str):
    """The Transformer's own tokenizer (same resolution of `model.pretrained` as the model)."""
    from transformers import AutoTokenizer

    from datamodules.news_pretrained import resolve_pretrained

    location, local = resolve_pretrained(name)
    try:
        return AutoTokenizer.from_pretrained(location, local_files_only=local)
    except (OSError, ValueError) as error:
        raise HW2LabError(
            f"cannot load the tokenizer of model.pretrained={name!r} from {location}: {error}"
        ) from None


# ---------------------------------------------------------------------------------------------- datamodule


class NewsDataModule(InMemoryDataModule):
    """BBC News (folder) or a labelled news CSV, split train/val/test and encoded for the chosen model."""

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
        tokenizer_name: str | None = None,
        windows: bool = False,
        window_overlap: int = 0,
        max_windows: int | None = 8,
        embedding_file: str | None = None,
        add_embedding_words: bool = False,
        batch_size: int = 32,
        split: tuple[float, float, float] = (0.7, 0.15, 0.15),
        folds: int | None = None,
        fold: int = 0,
        seed: int = 42,
        download: bool = False,
        predict_file: str | None = None,
    ) -> None:
        super().__init__(batch_size, seed)
        check(text in TEXT_FIELDS, f"data.text must be one of {TEXT_FIELDS}, got {text!r}")
        check(tokenizer in TOKENIZERS, f"data.tokenizer must be one of {TOKENIZERS}, got {tokenizer!r}")
        check(min_count >= 1, f"data.min_count must be >= 1, got {min_count}")
        check(max_length >= 1, f"data.max_length must be >= 1, got {max_length}")
        check(
            not windows or bool(tokenizer_name),
            "data.windows=true needs a Transformer tokenizer (model=transformer); word models read "
            "data.max_length tokens",
        )
        check(
            0 <= window_overlap < max_length // 2,
            f"data.window_overlap must be in [0, max_length / 2), got {window_overlap}",
        )
        check(max_windows is None or max_windows >= 1, f"data.max_windows must be >= 1, got {max_windows}")
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
        self.data_dir, self.path, self.text = data_dir, path, text
        # Word models only: a Transformer reads the raw text with its own tokenizer.
        self.pipeline = TextPipeline(tokenizer, remove_stop_words and not tokenizer_name, data_dir=data_dir)
        self.tokenizer = tokenizer
        self.min_count, self.max_vocab, self.max_length = min_count, max_vocab, max_length
        self.tokenizer_name = tokenizer_name
        self.windows, self.window_overlap, self.max_windows = windows, window_overlap, max_windows
        self.embedding_file, self.add_embedding_words = embedding_file, add_embedding_words
        self.split, self.download = list(split), download
        self.folds, self.fold = folds, fold
        self.predict_file = predict_file
        self.classes: list[str] = []
        self.vocab: Vocabulary | None = None
        self.hf_tokenizer = None
        self.articles: dict[str, list[Article]] = {}
        self.run_notes: dict[str, object] = {}

    @property
    def num_classes(self) -> int:
        return len(self.classes)

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
        groups = group_duplicates([(a.text("full"), "input:" + a.text(self.text).lower()) for a in articles])
        labels = [a.category for a in articles]
        if self.folds:
            parts = grouped_fold_split(labels, groups, self.folds, self.fold, self.split[:2], self.seed)
            how = f"test = fold {self.fold} of {self.folds}, the rest train/val at {self.split[:2]}"
        else:
            parts = grouped_stratified_split(labels, groups, self.split, self.seed)
            how = f"ratios {self.split}"
        self.articles = {name: [articles[i] for i in part] for name, part in zip(SPLITS, parts)}
        check(bool(self.articles["train"]), f"no training articles after the split ({how})")
        # In metrics.json: a sweep over data.fold pools its folds' test accuracy with these sizes.
        self.run_notes = {"split_sizes": {name: len(self.articles[name]) for name in SPLITS}}
        if not self.tokenizer_name:
            self.run_notes["stop_words"] = self.pipeline.stop_words_source or "kept"
        log.info(
            "news: %d articles, %d classes %s, %d groups (articles with the same text or input kept in one split); "
            "train/val/test = %d/%d/%d (%s, seed %d, stratified)",
            len(articles),
            len(self.classes),
            self.classes,
            len(set(groups)),
            *(len(self.articles[s]) for s in SPLITS),
            how,
            self.seed,
        )
        if self.predict_file:
            self._read_predict_file()
        if self.tokenizer_name:
            self._encode_with_pretrained_tokenizer()
        else:
            self._encode_words()

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
        self.articles["predict"] = rows
        self.run_notes["predict"] = {"file": str(source), "rows": len(rows), f"empty_{self.text}": empty}
        log.info(
            "to predict: %d rows of %s%s",
            len(rows),
            source,
            f", {empty} with an empty {self.text} (predicted all the same)" if empty else "",
        )

    def splits(self) -> list[str]:
        """The splits encoded: train, val, test, and `predict` with `data.predict_file`."""
        return [*SPLITS, "predict"] if "predict" in self.articles else list(SPLITS)

    def split_labels(self, split: str) -> torch.Tensor:
        """Class ids of a split; the unlabelled `predict` split gets -1 (never scored)."""
        if split == "predict":
            return torch.full((len(self.articles[split]),), -1, dtype=torch.long)
        return torch.tensor(self._labels(split), dtype=torch.long)

    def predict_batches(self) -> TensorBatches:
        """Every row of the predict split in the file's order, in one process (for writing submission.csv)."""
        self.setup()
        check("predict" in self.split_tensors, "nothing to predict: set data.predict_file=<a CSV>")
        return TensorBatches(*self.split_tensors["predict"], batch_size=self.batch_size)

    def predict_dataloader(self) -> TensorBatches:
        """Batches of the predict split (inputs, lengths or mask, -1 labels), in the file's row order, each
        DDP rank its share (`trainer.predict`)."""
        self.setup()
        check("predict" in self.split_tensors, "nothing to predict: set data.predict_file=<a CSV>")
        return self.batches("predict")

    def _encode_words(self) -> None:
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

    def _encode_with_pretrained_tokenizer(self) -> None:
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
            log.info("encoded with the tokenizer of %s; padded length %d", self.tokenizer_name, ids.shape[1])

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
        """Encode new texts as the model's batches do: (ids, lengths) or (input ids, attention mask); with
        `windows`, only each text's first window (short texts such as the attention-map sentences)."""
        self.setup()
        if self.hf_tokenizer is not None:
            encoded = self.encode_pretrained(texts)
            return encoded["input_ids"], encoded["attention_mask"]
        return pad_ids([self.vocab.encode(self.pipeline(t)) for t in texts], self.max_length)
