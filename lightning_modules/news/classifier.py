"""News classification: one LightningModule trains any of the news nets (`lightning_modules/news/nets.py`).

The config gives the net as a `_partial_` target (`model.net`): what only the data knows (its `net_inputs()`)
is filled in by the module's `setup` (hw2lab.training.TaskModule), the number of classes and, for word
models, the embedding of the vocabulary built on the training split (`model.embedding`, GloVe-initialised; `lightning_modules/news/embeddings.py`). The
Transformer's encoder is a nested config of the partial, loaded when the net is built (so the checkpoint
keeps it as a config); its name is resolved when the module is made, so a bad `model.net.encoder.pretrained`
fails before any data is read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score

from datamodules.news.pretrained import resolve_pretrained
from hw2lab.errors import check
from hw2lab.partial_configs import as_config, from_config
from hw2lab.training import TaskModule, eval_mode
from lightning_modules.news.embeddings import WordEmbedding


def one_window_each(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """One random window of each article ((B, K, T) -> (B, T)): a training step costs one window per
    article, and over the epochs the model learns from every part of the text."""
    counts = attention_mask[:, :, 0].sum(1)
    pick = (torch.rand(counts.shape, device=counts.device) * counts).long()
    rows = torch.arange(pick.shape[0], device=pick.device)
    return input_ids[rows, pick], attention_mask[rows, pick]


class NewsClassifier(TaskModule):
    """Trains one of the news classifiers with cross-entropy; logs loss, accuracy and macro F1 per epoch.

    `net`: a partial net target, completed (TaskModule.build_net) with the data's `classes` (their count)
    and, for word models (those with an `embedding`), `embedding=` the embedding of the data's vocabulary
    `itos`. Word models read (token ids, lengths), the Transformer (input ids, attention mask).
    `embedding`: a `_partial_` WordEmbedding config (`model.embedding`) or one made already;
    `embedding_dim`, a checkpoint's, makes it blank of that width (no GloVe file read: the weights replace
    it). `optimizer` / `scheduler`: see `TaskModule`.
    """

    def __init__(
        self,
        net: Callable[..., nn.Module] | Mapping,
        optimizer: Callable[..., torch.optim.Optimizer] | Mapping,
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | Mapping | None = None,
        embedding: WordEmbedding | Callable[..., WordEmbedding] | Mapping | None = None,
        scheduler_interval: str = "step",
        embedding_dim: int | None = None,
    ) -> None:
        super().__init__(optimizer, scheduler, scheduler_interval, net=net)
        check(
            self.net_factory is not None,
            "model.net must be a _partial_ net target (e.g. lightning_modules.news.nets.LSTMClassifier)",
        )
        encoder = getattr(self.net_factory, "keywords", {}).get("encoder")
        if isinstance(encoder, Mapping) and "pretrained" in encoder:
            resolve_pretrained(str(encoder["pretrained"]))  # a bad name: one line now, not after the data
        embedding = from_config(embedding, "model.embedding", self.CONFIG_TARGETS["net"])
        if embedding is not None and not isinstance(embedding, WordEmbedding):  # the config's partial
            self.saved_hparams["embedding"] = as_config(embedding)
            embedding = embedding(**({"glove_file": None, "dim": embedding_dim} if embedding_dim else {}))
        self.word_embedding = embedding
        self.restored_embedding_dim = embedding_dim
        self.test_predictions: list[torch.Tensor] = []

    # -- construction once the data is known
    @property
    def classes(self) -> list[str]:
        return list((self.net_inputs or {}).get("classes", []))

    @property
    def itos(self) -> list[str]:
        """A word model's vocabulary (empty for the Transformer)."""
        return list((self.net_inputs or {}).get("itos", []))

    def make_net(self, inputs: dict) -> nn.Module:
        """The net for the data's classes (and, for word models, its vocabulary), and per-class metrics."""
        if self.word_embedding is not None:
            check(
                "itos" in inputs,
                "model.embedding is set (a word model), but the data was encoded with a Transformer "
                "tokenizer (data.tokenizer_name is set)",
            )
        else:
            check(
                "itos" not in inputs,
                "the net reads sub-word ids (model.embedding is null), so it needs data.tokenizer_name "
                "(set from model.net.encoder.pretrained)",
            )
        num_classes = len(inputs["classes"])
        if self.word_embedding is not None:
            embedding = self.word_embedding(list(inputs["itos"]), dim=self.restored_embedding_dim)
            self.saved_hparams["embedding_dim"] = embedding.embedding_dim
            net = self.net_factory(embedding=embedding, num_classes=num_classes)
        else:
            net = self.net_factory(num_classes=num_classes)
        self.add_stage_metrics(
            lambda: MetricCollection(
                {
                    "acc": MulticlassAccuracy(num_classes, average="micro"),
                    "f1": MulticlassF1Score(num_classes, average="macro"),
                }
            )
        )
        self.confusion = MulticlassConfusionMatrix(num_classes).to(self.device)
        return net

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
