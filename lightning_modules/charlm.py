"""A character-level language model: embedding -> RNN/LSTM/GRU -> linear, scored in bits per character.

Training is truncated backpropagation through time: the hidden state left by one batch is detached and
fed to the next (the datamodule's stream batching makes row b of batch k+1 continue row b of batch k), and
it is reset when a batch says so (the first chunk of an epoch, or every batch of the random-window mode).
Validation carries the state the same way over the whole validation stream, so val/bpc is the model's
cross-entropy on every validation character, in bits: nats / ln 2.

The vocabulary comes from the training text, so the network is built in `setup` (once the datamodule has
read the file) and the vocabulary travels in the checkpoint.
"""

from __future__ import annotations

import math
import time

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from datamodules.charlm import IGNORE_INDEX, CharBatch, Vocabulary
from hw2lab.errors import check

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
LR_SCHEDULES = ("exponential", "cosine")

Hidden = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


class CharRNN(nn.Module):
    """Embedding, a stack of recurrent layers, and a linear read-out to next-character logits."""

    def __init__(
        self,
        vocab_size: int,
        cell: str = "lstm",
        embedding_dim: int = 64,
        hidden_size: int = 256,
        num_layers: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.cell = cell
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        # nn.RNN uses tanh; dropout applies between recurrent layers (not inside the recurrence).
        self.rnn = CELLS[cell](
            embedding_dim,
            hidden_size,
            num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, ids: torch.Tensor, hidden: Hidden | None = None) -> tuple[torch.Tensor, Hidden]:
        """ids (batch, time) -> logits (batch, time, vocab) and the hidden state after the last step."""
        output, hidden = self.rnn(self.embedding(ids), hidden)
        return self.head(self.dropout(output)), hidden


def detach_hidden(hidden: Hidden) -> Hidden:
    """Cut the graph between chunks (truncated BPTT) while keeping the values."""
    if isinstance(hidden, tuple):
        return tuple(h.detach() for h in hidden)
    return hidden.detach()


def cosine_rate(progress: float, floor: float) -> float:
    """The share of the peak learning rate at `progress` (0 to 1) of a cosine that ends at `floor`."""
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def bits_per_character(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy in bits over the targets that are not padding."""
    nats = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)
    return nats / math.log(2)


def check_sampling(temperature: float, top_k: int | None) -> None:
    """Sampling settings a user types: fail with one line before anything is generated."""
    check(temperature > 0, f"temperature must be > 0, got {temperature}")
    check(top_k is None or top_k >= 1, f"top_k must be >= 1 or null, got {top_k}")


class CharLMModule(L.LightningModule):
    """Trains CharRNN with truncated BPTT; logs loss (nats), bpc (bits) per epoch and training chars/s."""

    def __init__(
        self,
        cell: str = "lstm",
        embedding_dim: int = 64,
        hidden_size: int = 256,
        num_layers: int = 2,
        dropout: float = 0.0,
        lr: float = 2e-3,
        weight_decay: float = 0.0,
        lr_decay: float = 1.0,
        lr_schedule: str = "exponential",
        min_lr_ratio: float = 0.0,
        grad_clip: float | None = 1.0,
        vocabulary: str | None = None,
    ) -> None:
        super().__init__()
        check(cell in CELLS, f"cell must be one of {tuple(CELLS)}, got {cell!r}")
        check(embedding_dim >= 1, f"model.embedding_dim must be >= 1, got {embedding_dim}")
        check(hidden_size >= 1, f"model.hidden_size must be >= 1, got {hidden_size}")
        check(num_layers >= 1, f"model.num_layers must be >= 1, got {num_layers}")
        check(0.0 <= dropout < 1.0, f"model.dropout must be in [0, 1), got {dropout}")
        check(lr > 0, f"model.lr must be > 0, got {lr}")
        check(0.0 < lr_decay <= 1.0, f"model.lr_decay must be in (0, 1], got {lr_decay}")
        check(
            lr_schedule in LR_SCHEDULES,
            f"model.lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}",
        )
        check(0.0 <= min_lr_ratio <= 1.0, f"model.min_lr_ratio must be in [0, 1], got {min_lr_ratio}")
        check(grad_clip is None or grad_clip > 0, f"grad_clip must be > 0 or null, got {grad_clip}")
        self.save_hyperparameters(ignore=["vocabulary"], logger=False)
        self.net: CharRNN | None = None
        self.vocabulary: Vocabulary | None = None
        if vocabulary is not None:
            self._build(Vocabulary(vocabulary))
        # The state carried between batches, one per stage: validation runs in the middle of a training
        # epoch's stream must not clobber it.
        self._hidden: dict[str, Hidden | None] = {}
        # Epoch sums (nats, scored characters) on the device; one in-place add per step.
        self._sums: dict[str, torch.Tensor] = {}
        self._train_started = 0.0
        self._validation_started = 0.0

    def _build(self, vocabulary: Vocabulary) -> None:
        if self.vocabulary is not None:
            check(
                vocabulary.characters == self.vocabulary.characters,
                "the text's vocabulary differs from the one this model was trained with",
            )
            return
        self.vocabulary = vocabulary
        hp = self.hparams
        self.net = CharRNN(
            len(vocabulary), hp.cell, hp.embedding_dim, hp.hidden_size, hp.num_layers, hp.dropout
        )

    def setup(self, stage: str) -> None:
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        vocabulary = getattr(datamodule, "vocabulary", None)
        check(
            vocabulary is not None, "CharLMModule needs a datamodule with a vocabulary (CharTextDataModule)"
        )
        self._build(vocabulary)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["vocabulary"] = self.vocabulary.characters

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._build(Vocabulary(checkpoint["vocabulary"]))

    def forward(self, ids: torch.Tensor, hidden: Hidden | None = None) -> tuple[torch.Tensor, Hidden]:
        return self.net(ids, hidden)

    def _step(self, batch: CharBatch, stage: str) -> torch.Tensor:
        hidden = None if batch.reset else self._hidden.get(stage)
        logits, hidden = self.net(batch.inputs, hidden)
        self._hidden[stage] = detach_hidden(hidden)
        targets = batch.targets.flatten()
        nats_sum = F.cross_entropy(
            logits.flatten(0, 1).float(), targets, ignore_index=IGNORE_INDEX, reduction="sum"
        )
        scored = (targets != IGNORE_INDEX).sum()
        values = torch.stack([nats_sum.detach(), scored.to(nats_sum.dtype)])
        if stage in self._sums:
            self._sums[stage].add_(values)
        else:
            self._sums[stage] = values
        return nats_sum / scored.clamp(min=1)

    def _log_epoch(self, stage: str) -> None:
        if stage not in self._sums:
            return
        nats_sum, scored = self._sums.pop(stage)
        loss = nats_sum / scored.clamp(min=1)
        metrics = {f"{stage}/loss": loss, f"{stage}/bpc": loss / math.log(2)}
        if stage == "train":
            elapsed = max(time.perf_counter() - self._train_started, 1e-9)
            metrics["train/chars_per_s"] = scored / elapsed
        self.log_dict(metrics, sync_dist=True)

    def training_step(self, batch: CharBatch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: CharBatch, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: CharBatch, batch_idx: int) -> None:
        self._step(batch, "test")

    def on_train_epoch_start(self) -> None:
        self._hidden.pop("train", None)
        self._train_started = time.perf_counter()

    def on_validation_epoch_start(self) -> None:
        self._hidden.pop("val", None)
        self._validation_started = time.perf_counter()

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")
        # Validation inside a training epoch does not count as training time (chars/s).
        self._train_started += time.perf_counter() - self._validation_started

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_test_epoch_start(self) -> None:
        self._hidden.pop("test", None)

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # Clipping lives in the module, not in trainer.gradient_clip_val: the trainer preset is composed
        # after the task config and would reset a task's trainer setting.
        if self.hparams.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.parameters(), self.hparams.grad_clip)

    def configure_optimizers(self):
        hp = self.hparams
        # AdamW: the decay shrinks the weights directly instead of joining the gradient, where Adam's
        # per-weight scaling would weaken it wherever gradients are large; weight_decay 0 is plain Adam.
        optimizer = torch.optim.AdamW(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        if hp.lr_schedule == "cosine":
            # Per step, from lr down to lr * min_lr_ratio at the last planned step (max_epochs or
            # max_steps): for a fixed budget, annealing to a small rate is worth more than any constant one.
            total = max(int(self.trainer.estimated_stepping_batches), 1)

            scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda step: cosine_rate(min(step / total, 1.0), hp.min_lr_ratio)
            )
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
        if hp.lr_decay >= 1.0:
            return optimizer
        scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=hp.lr_decay)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    @torch.no_grad()
    def sample(
        self,
        prime: str,
        length: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        greedy: bool = False,
        generator: torch.Generator | None = None,
        context: str = "",
    ) -> str:
        """The prime followed by `length` generated characters.

        `context` then the prime are read once to build the state (the context is not part of the result);
        then each step feeds back the one character just chosen (argmax when greedy, else a draw from
        softmax(logits / temperature) restricted to the top_k most likely characters). Draws use
        `generator` (a CPU generator: the same text on any device).

        Why a context: a stream-trained model meets a zero state only once per stream and epoch, and from a
        cold start it can fall into a loop of garbage it keeps feeding itself; a few hundred characters of
        real text put the state where training left it.
        """
        check(bool(prime), "the sampling prime must not be empty")
        check_sampling(temperature, top_k)
        prime_ids = self.vocabulary.encode(prime, f"the prime {prime!r}")
        ids = torch.cat([self.vocabulary.encode(context, "the sampling context"), prime_ids]).to(self.device)
        was_training = self.training
        self.eval()
        try:
            logits, hidden = self.net(ids[None], None)
            chosen = self._continue(logits, hidden, length, temperature, top_k, greedy, generator)
        finally:
            self.train(was_training)
        return prime + self.vocabulary.decode(chosen)

    def _continue(
        self,
        logits: torch.Tensor,
        hidden: Hidden,
        length: int,
        temperature: float,
        top_k: int | None,
        greedy: bool,
        generator: torch.Generator | None,
    ) -> list[int]:
        """Choose `length` characters one at a time, each fed back as the next input."""
        last = logits[0, -1].float()
        chosen: list[int] = []
        for _ in range(length):
            if greedy:
                next_id = int(last.argmax())
            else:
                scaled = last / temperature
                if top_k is not None and top_k < scaled.numel():
                    threshold = torch.topk(scaled, top_k).values[-1]
                    scaled = scaled.masked_fill(scaled < threshold, float("-inf"))
                probabilities = torch.softmax(scaled, dim=-1).cpu()
                next_id = int(torch.multinomial(probabilities, 1, generator=generator))
            chosen.append(next_id)
            logits, hidden = self.net(torch.tensor([[next_id]], device=self.device), hidden)
            last = logits[0, -1].float()
        return chosen
