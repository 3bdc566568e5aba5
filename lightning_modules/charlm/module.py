"""A character-level language model: a recurrent net or a GPT (lightning_modules.charlm.nets), trained
to predict the next character and scored in nats and bits per character.

Training of the RNNs is truncated backpropagation through time: the hidden state left by one batch is
detached and fed to the next (the datamodule's stream batching makes row b of batch k+1 continue row b of
batch k), and it is reset when a batch says so (the start of a stream pass, or every batch of the
random-window mode). The GPT carries no state: it trains on random windows of its context.

Validation and test score two ways (the datamodule's two dataloaders):
- streamed, `val/loss` (nats) and `val/bpc` (bits = nats / ln 2): every character of the split once. The
  RNNs carry their state over the whole stream; the GPT reads the stream in non-overlapping blocks of
  `time_step` (= its context) characters, each block on its own, so a character at offset i of its block
  is predicted from the i characters before it in that block.
- nanoGPT's protocol, `val/window_nll` and `val/window_bpc`: the mean cross-entropy over every position of
  seeded random windows (256 characters by default), each read from a fresh state (hidden = None).

The vocabulary comes from the training text, so the network (`net`, a partial taking the vocabulary size) is
built in `setup` from the datamodule's `net_inputs()` (its characters), which travel in the checkpoint
(hw2lab.training.TaskModule).
Optimiser, learning-rate schedule and gradient clipping come from config (hw2lab.training.TaskModule and
`trainer.gradient_clip_val`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from functools import partial

import torch
import torch.nn.functional as F
from lightning.pytorch.trainer.states import TrainerFn

from datamodules.charlm import IGNORE_INDEX, CharBatch, Vocabulary
from hw2lab.errors import check
from hw2lab.training import TaskModule, eval_mode

# CharRNN: older checkpoints and configs name lightning_modules.charlm.CharRNN (the package re-exports it).
from lightning_modules.charlm.nets import CharNet, CharRNN, Hidden  # noqa: F401


def detach_hidden(hidden: Hidden | None) -> Hidden | None:
    """Cut the graph between chunks (truncated BPTT) while keeping the values (None: a net without state)."""
    if hidden is None:
        return None
    if isinstance(hidden, tuple):
        return tuple(h.detach() for h in hidden)
    return hidden.detach()


def bits_per_character(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy in bits over the targets that are not padding."""
    nats = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)
    return nats / math.log(2)


def warmup_cosine_decay(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 100, min_lr_ratio: float = 0.1
) -> torch.optim.lr_scheduler.LambdaLR:
    """nanoGPT's schedule: the rate rises linearly over `warmup_steps` (step k at (k + 1) / (warmup + 1) of
    the peak), then falls along half a cosine to `min_lr_ratio` of it at the last planned step."""
    check(warmup_steps >= 0, f"scheduler warmup_steps must be >= 0, got {warmup_steps}")
    check(0 <= min_lr_ratio <= 1, f"scheduler min_lr_ratio must be in [0, 1], got {min_lr_ratio}")
    total_steps = max(1, int(total_steps))
    warmup = min(warmup_steps, total_steps - 1)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, partial(_warmup_cosine, warmup=warmup, total=total_steps, floor=min_lr_ratio)
    )


def _warmup_cosine(step: int, warmup: int, total: int, floor: float) -> float:
    if step < warmup:
        return (step + 1) / (warmup + 1)
    progress = min(1.0, (step - warmup) / max(1, total - 1 - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def plain_step(
    net: CharNet,
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


def stream_bpc(net: CharNet, batches: Iterable[CharBatch]) -> float:
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


class CharLMModule(TaskModule):
    """Trains a char-LM net; logs per epoch the streamed loss (nats) and bpc (bits), the window metrics
    (`window_nll`, `window_bpc`) for validation and test, training chars/s and the training minutes so far
    (`train/minutes`, validation excluded: the x axis of the sweep's learning curves).

    `net` is a partial taking `vocab_size` (`model.net` in config), completed with the data's characters
    (`build_net({"characters": ...})`, which `setup` calls); `optimizer`, `scheduler` and
    `scheduler_interval` are TaskModule's (`model.optimizer`, `model.scheduler`), and so is the checkpoint:
    `CharLMModule.load_from_checkpoint(path)` needs nothing else.
    """

    def __init__(
        self,
        net: Callable[..., CharNet] | Mapping,
        optimizer: Callable[..., torch.optim.Optimizer] | Mapping,
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | Mapping | None = None,
        scheduler_interval: str = "step",
    ) -> None:
        super().__init__(optimizer, scheduler, scheduler_interval, net=net)
        # A bad network setting fails now, in one line: built on the meta device (no memory, no random draws).
        with torch.device("meta"):
            self.net_factory(vocab_size=1)
        self.vocabulary: Vocabulary | None = None
        # The state carried between batches, one per stage: validation runs in the middle of a training
        # epoch's stream must not clobber it.
        self._hidden: dict[str, Hidden | None] = {}
        # Training characters scored this epoch (on the device: no host sync per step), and training time
        # without the validation runs inside it: all epochs so far, at this epoch's start, and the clock.
        self._train_chars: torch.Tensor | None = None
        self._train_seconds = 0.0
        self._epoch_began = 0.0
        self._clock: float | None = None

    def make_net(self, inputs: dict) -> CharNet:
        self.vocabulary = Vocabulary(inputs["characters"])
        return self.net_factory(vocab_size=len(self.vocabulary))

    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = self.trainer.datamodule
        context = self.net.context_size
        if context is not None:
            time_step = getattr(datamodule, "time_step", 0)
            check(
                time_step <= context,
                f"time_step {time_step} is longer than the net's context (model.net.block_size {context})",
            )
            window = (
                getattr(datamodule, "eval_window_length", 0) if getattr(datamodule, "eval_windows", 0) else 0
            )
            check(
                window <= context,
                f"the evaluation windows (data.eval_window_length {window}) are longer than the net's context "
                f"(model.net.block_size {context}): lower the one or raise the other",
            )

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["train_seconds"] = self._train_seconds

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        self._train_seconds = float(checkpoint.get("train_seconds", 0.0))

    def forward(self, ids: torch.Tensor, hidden: Hidden | None = None) -> tuple[torch.Tensor, Hidden | None]:
        return self.net(ids, hidden)

    def _step(self, batch: CharBatch, stage: str) -> torch.Tensor:
        """Score one batch as part of `stage`'s epoch means: "train", "val", "test" (streamed) or
        "val_window", "test_window" (nanoGPT's windows: every batch `reset`, so no state comes in)."""
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

    def validation_step(self, batch: CharBatch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._step(batch, "val" if dataloader_idx == 0 else "val_window")

    def test_step(self, batch: CharBatch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._step(batch, "test" if dataloader_idx == 0 else "test_window")

    def _log_windows(self, stage: str) -> None:
        """The window scores as `<stage>/window_nll` (nats) and `<stage>/window_bpc` (bits)."""
        values = self.epoch_values(f"{stage}_window")
        names = {f"{stage}_window/loss": f"{stage}/window_nll", f"{stage}_window/bpc": f"{stage}/window_bpc"}
        if values:
            self.log_dict(
                {names[key]: value for key, value in values.items()}, sync_dist=True, add_dataloader_idx=False
            )

    def _fitting(self) -> bool:
        return self.trainer.state.fn == TrainerFn.FITTING and not self.trainer.sanity_checking

    def _clock_training(self) -> None:
        """Add the training time since the clock last started to the total."""
        now = time.perf_counter()
        if self._clock is not None:
            self._train_seconds += now - self._clock
        self._clock = now

    def on_train_epoch_start(self) -> None:
        # No state reset here: a stream batch says when it starts a pass (an epoch may be part of one).
        self._train_chars = None
        self._clock = time.perf_counter()
        self._epoch_began = self._train_seconds

    def on_validation_epoch_start(self) -> None:
        self._hidden.pop("val", None)
        if self._fitting():
            self._clock_training()  # validation inside a training epoch is not training time

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        self._log_windows("val")
        if self._fitting():
            self._clock = time.perf_counter()

    def on_train_epoch_end(self) -> None:
        self._clock_training()
        if self._train_chars is None:
            return
        elapsed = max(self._train_seconds - self._epoch_began, 1e-9)
        self.log_epoch("train", chars_per_s=self._train_chars / elapsed, minutes=self._train_seconds / 60)

    def on_test_epoch_start(self) -> None:
        self._hidden.pop("test", None)

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        self._log_windows("test")

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

        A net with a `context_size` (the GPT) carries no state: it reads the last `context_size` characters
        (of context, prime and what it generated) afresh at every step.
        """
        check(bool(prime), "the sampling prime must not be empty")
        check_sampling(temperature, top_k)
        prime_ids = self.vocabulary.encode(prime, f"the prime {prime!r}")
        ids = torch.cat([self.vocabulary.encode(context, "the sampling context"), prime_ids]).to(self.device)
        window = self.net.context_size
        chosen: list[int] = []
        with eval_mode(self):
            logits, hidden = self.net(ids[None] if window is None else ids[None, -window:], None)
            for _ in range(length):
                next_id = choose(logits[0, -1].float(), temperature, top_k, greedy, generator)
                chosen.append(next_id)
                step = torch.tensor([next_id], device=self.device)
                if window is None:  # the state holds the past: feed only the new character
                    logits, hidden = self.net(step[None], hidden)
                else:
                    ids = torch.cat([ids[-(window - 1) :] if window > 1 else ids[:0], step])
                    logits, _ = self.net(ids[None], None)
        return prime + self.vocabulary.decode(chosen)


def choose(
    logits: torch.Tensor,
    temperature: float,
    top_k: int | None,
    greedy: bool,
    generator: torch.Generator | None,
) -> int:
    """The next character's id: the argmax when greedy, else a draw from softmax(logits / temperature)
    over the top_k most likely characters (all when None), on the CPU generator."""
    if greedy:
        return int(logits.argmax())
    scaled = logits / temperature
    if top_k is not None and top_k < scaled.numel():
        threshold = torch.topk(scaled, top_k).values[-1]
        scaled = scaled.masked_fill(scaled < threshold, float("-inf"))
    probabilities = torch.softmax(scaled, dim=-1).cpu()
    return int(torch.multinomial(probabilities, 1, generator=generator))
