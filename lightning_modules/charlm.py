"""A character-level language model: embedding -> RNN/LSTM/GRU -> linear, scored in bits per character.

Training is truncated backpropagation through time: the hidden state left by one batch is detached and
fed to the next (the datamodule's stream batching makes row b of batch k+1 continue row b of batch k), and
it is reset when a batch says so (the first chunk of an epoch, or every batch of the random-window mode).
Validation carries the state the same way over the whole validation stream, so val/bpc is the model's
cross-entropy on every validation character, in bits: nats / ln 2.

The vocabulary comes from the training text, so the network (`net`, a partial taking the vocabulary size) is
built in `setup`, once the datamodule has read the file, and the vocabulary travels in the checkpoint.
Optimiser, learning-rate schedule and gradient clipping come from config (hw2lab.training.TaskModule and
`trainer.gradient_clip_val`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn

from datamodules.charlm import IGNORE_INDEX, CharBatch, Vocabulary
from hw2lab.errors import check
from hw2lab.training import RECURRENT_CELLS, TaskModule, eval_mode

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
        check(cell in RECURRENT_CELLS, f"cell must be one of {tuple(RECURRENT_CELLS)}, got {cell!r}")
        check(embedding_dim >= 1, f"model.net.embedding_dim must be >= 1, got {embedding_dim}")
        check(hidden_size >= 1, f"model.net.hidden_size must be >= 1, got {hidden_size}")
        check(num_layers >= 1, f"model.net.num_layers must be >= 1, got {num_layers}")
        check(0.0 <= dropout < 1.0, f"model.net.dropout must be in [0, 1), got {dropout}")
        self.cell = cell
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        # nn.RNN uses tanh; dropout applies between recurrent layers (not inside the recurrence).
        self.rnn = RECURRENT_CELLS[cell](
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


def bits_per_character(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy in bits over the targets that are not padding."""
    nats = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)
    return nats / math.log(2)


def plain_step(
    net: CharRNN,
    optimizer: torch.optim.Optimizer,
    batch: CharBatch,
    hidden: Hidden | None,
    gradient_clip_val: float | None,
) -> tuple[torch.Tensor, Hidden]:
    """One training step without Lightning, as CharLMModule takes it (for bench/ and scripts/): the state
    carried and detached, gradient-norm clipping. Returns the loss and the state for the next chunk."""
    logits, hidden = net(batch.inputs, None if batch.reset else hidden)
    loss = F.cross_entropy(logits.flatten(0, 1), batch.targets.flatten(), ignore_index=IGNORE_INDEX)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if gradient_clip_val:
        torch.nn.utils.clip_grad_norm_(net.parameters(), gradient_clip_val)
    optimizer.step()
    return loss, detach_hidden(hidden)


def stream_bpc(net: CharRNN, batches: Iterable[CharBatch]) -> float:
    """Bits per character over every scored target of a stream, the state carried (as the module scores)."""
    nats, scored, hidden = 0.0, 0, None
    with eval_mode(net):
        for batch in batches:
            logits, hidden = net(batch.inputs, None if batch.reset else hidden)
            targets = batch.targets.flatten()
            nats += F.cross_entropy(
                logits.flatten(0, 1), targets, ignore_index=IGNORE_INDEX, reduction="sum"
            ).item()
            scored += int((targets != IGNORE_INDEX).sum())
    return nats / scored / math.log(2)


def check_sampling(temperature: float, top_k: int | None) -> None:
    """Sampling settings a user types: fail with one line before anything is generated."""
    check(temperature > 0, f"temperature must be > 0, got {temperature}")
    check(top_k is None or top_k >= 1, f"top_k must be >= 1 or null, got {top_k}")


def as_config(factory: Callable | Mapping | None) -> dict | None:
    """A partial (functools' or Hydra's) of keyword arguments as the `_partial_` config that makes it."""
    if factory is None or isinstance(factory, Mapping):
        return None if factory is None else dict(factory)
    target = getattr(factory, "func", factory)
    check(not getattr(factory, "args", ()), f"{factory!r}: give the settings as keywords")
    return {
        "_target_": f"{target.__module__}.{target.__qualname__}",
        "_partial_": True,
        **getattr(factory, "keywords", {}),
    }


# Where the targets of a config given as a mapping (a checkpoint's) may come from: a checkpoint loads with
# weights_only, so it must not name just any callable for the module to call.
CONFIG_TARGETS = {
    "net": ("lightning_modules.", "torch.nn."),
    "optimizer": ("torch.optim.",),
    "scheduler": ("torch.optim.lr_scheduler.", "hw2lab.training."),
}


def from_config(factory: Callable | Mapping | None, role: str) -> Callable | None:
    """The partial a `_partial_` config describes, for `role` (net, optimizer, scheduler); a partial or None
    as it is."""
    if not isinstance(factory, Mapping):
        return factory
    target = str(factory.get("_target_", ""))
    check(
        target.startswith(CONFIG_TARGETS[role]) and factory.get("_partial_") is True,
        f"model.{role} from a mapping must be a _partial_ target under {CONFIG_TARGETS[role]}, got {target!r}",
    )
    return instantiate(factory)


class CharLMModule(TaskModule):
    """Trains CharRNN with truncated BPTT; logs loss (nats), bpc (bits) per epoch and training chars/s.

    `net` is a partial taking the vocabulary size (`model.net` in config); `optimizer`, `scheduler` and
    `scheduler_interval` are TaskModule's (`model.optimizer`, `model.scheduler`). Each of the three may also
    be given as its `_partial_` config (a mapping): that is how the checkpoint keeps them (plain values, so
    it loads with weights_only), and `CharLMModule.load_from_checkpoint(path)` needs nothing else.
    """

    def __init__(
        self,
        net: Callable[[int], CharRNN] | Mapping,
        optimizer: Callable[..., torch.optim.Optimizer] | Mapping,
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | Mapping | None = None,
        scheduler_interval: str = "step",
        vocabulary: str | None = None,
    ) -> None:
        net = from_config(net, "net")
        optimizer = from_config(optimizer, "optimizer")
        scheduler = from_config(scheduler, "scheduler")
        super().__init__(optimizer, scheduler, scheduler_interval)
        # A bad network setting fails now, in one line: built on the meta device (no memory, no random draws).
        with torch.device("meta"):
            net(1)
        self.save_hyperparameters(
            {
                "net": as_config(net),
                "optimizer": as_config(optimizer),
                "scheduler": as_config(scheduler),
                "scheduler_interval": scheduler_interval,
            },
            logger=False,
        )
        self.make_net = net
        self.net: CharRNN | None = None
        self.vocabulary: Vocabulary | None = None
        if vocabulary is not None:
            self.build(Vocabulary(vocabulary))
        # The state carried between batches, one per stage: validation runs in the middle of a training
        # epoch's stream must not clobber it.
        self._hidden: dict[str, Hidden | None] = {}
        # Training characters scored this epoch (on the device: no host sync per step) and the epoch's
        # training time without the validation runs inside it, for train/chars_per_s.
        self._train_chars: torch.Tensor | None = None
        self._train_started = 0.0
        self._validation_started = 0.0

    def build(self, vocabulary: Vocabulary) -> None:
        """Build the network for `vocabulary` (once; a different vocabulary later is a user error)."""
        if self.vocabulary is not None:
            check(
                vocabulary.characters == self.vocabulary.characters,
                "the text's vocabulary differs from the one this model was trained with",
            )
            return
        self.vocabulary = vocabulary
        self.net = self.make_net(len(vocabulary))

    def setup(self, stage: str) -> None:
        vocabulary = getattr(self.trainer.datamodule, "vocabulary", None)
        check(
            vocabulary is not None, "CharLMModule needs a datamodule with a vocabulary (CharTextDataModule)"
        )
        self.build(vocabulary)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["vocabulary"] = self.vocabulary.characters

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.build(Vocabulary(checkpoint["vocabulary"]))

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
        loss = nats_sum / scored.clamp(min=1)
        # Means per scored character (padding is not scored), weighted by the characters scored.
        self.accumulate(stage, scored, loss=loss, bpc=loss / math.log(2))
        if stage == "train":
            self._train_chars = scored if self._train_chars is None else self._train_chars + scored
        return loss

    def training_step(self, batch: CharBatch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: CharBatch, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: CharBatch, batch_idx: int) -> None:
        self._step(batch, "test")

    def on_train_epoch_start(self) -> None:
        self._hidden.pop("train", None)
        self._train_chars = None
        self._train_started = time.perf_counter()

    def on_validation_epoch_start(self) -> None:
        self._hidden.pop("val", None)
        self._validation_started = time.perf_counter()

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        # Validation inside a training epoch does not count as training time (chars/s).
        self._train_started += time.perf_counter() - self._validation_started

    def on_train_epoch_end(self) -> None:
        if self._train_chars is None:
            return
        elapsed = max(time.perf_counter() - self._train_started, 1e-9)
        self.log_epoch("train", chars_per_s=self._train_chars / elapsed)

    def on_test_epoch_start(self) -> None:
        self._hidden.pop("test", None)

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
        with eval_mode(self):
            logits, hidden = self.net(ids[None], None)
            chosen = self._continue(logits, hidden, length, temperature, top_k, greedy, generator)
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
