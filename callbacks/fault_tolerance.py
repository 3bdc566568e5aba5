"""Never losing a run: a checkpoint on Ctrl-C / SIGTERM, exact resumption, and a clear stop on NaN loss.

Resumption continues from `checkpoints/last.ckpt`, which the `last_checkpoint` callback writes every epoch;
with the RNG states below and epoch-seeded shuffling (`TensorBatches`), a resumed run retraces the
uninterrupted one. The checkpoint written on an interrupt (`interrupted.ckpt`) holds the weights of the
unfinished epoch for inspection; it is not used for resumption, since the rest of that epoch cannot be
replayed exactly.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from hw2lab.errors import HW2LabError

log = logging.getLogger("hw2lab")


class CheckpointOnInterrupt(L.Callback):
    """Ctrl-C or SIGTERM (e.g. SLURM pre-emption): save `<dirpath>/interrupted.ckpt` before exiting."""

    def __init__(self, dirpath: str, filename: str = "interrupted") -> None:
        self.path = Path(dirpath) / f"{filename}.ckpt"

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, KeyboardInterrupt | SystemExit) or trainer.state.fn != "fit":
            return
        trainer.save_checkpoint(self.path)
        if trainer.is_global_zero:
            log.warning(
                "interrupted at epoch %d, step %d: saved %s; resume from the last finished epoch with "
                "ckpt_path=%s",
                trainer.current_epoch,
                trainer.global_step,
                self.path,
                self.path.with_name("last.ckpt"),
            )


class RNGState(L.Callback):
    """Keep the Python, NumPy and torch (CPU and CUDA) RNG states in checkpoints and restore them when the
    resumed run starts its first epoch (after the sanity check, which draws random numbers too)."""

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        state = {
            "python": random.getstate(),
            # as a tensor: checkpoints load with torch.load(weights_only=True), which refuses numpy arrays
            "numpy": _numpy_state_as_tensors(np.random.get_state()),
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._pending is None:
            return
        state, self._pending = self._pending, None
        random.setstate(state["python"])
        name, keys, position, has_gauss, cached = state["numpy"]
        np.random.set_state((name, keys.numpy(), position, has_gauss, cached))
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


def _numpy_state_as_tensors(state: tuple) -> tuple:
    name, keys, position, has_gauss, cached = state
    return name, torch.from_numpy(keys.copy()), int(position), int(has_gauss), float(cached)


class StopOnNonFiniteLoss(L.Callback):
    """Stop with one clear line naming the epoch and step where the training loss became NaN or inf.

    The check reads the loss on the host only every `check_every_n_steps` steps and before anything is
    checkpointed (validation start, epoch end), so it adds no per-step device sync, and `last.ckpt` stays
    the last good one.
    """

    def __init__(self, check_every_n_steps: int = 50) -> None:
        self.check_every_n_steps = max(1, check_every_n_steps)
        self._first_bad_step: torch.Tensor | None = None
        self._first_bad_value: torch.Tensor | None = None
        self._step = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._first_bad_step = None
        self._first_bad_value = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self._step = trainer.global_step  # the optimizer steps done before this batch: its step index

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor):
            return
        loss = loss.detach()
        step = torch.full((), self._step, device=loss.device)
        bad = ~torch.isfinite(loss)
        if self._first_bad_step is None:
            self._first_bad_step = torch.where(bad, step, torch.full_like(step, -1))
            self._first_bad_value = loss.clone()
        else:
            new = bad & (self._first_bad_step < 0)
            self._first_bad_step = torch.where(new, step, self._first_bad_step)
            self._first_bad_value = torch.where(new, loss, self._first_bad_value)
        if (batch_idx + 1) % self.check_every_n_steps == 0:
            self._raise_if_bad(trainer)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._raise_if_bad(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._raise_if_bad(trainer)

    def _raise_if_bad(self, trainer: L.Trainer) -> None:
        if self._first_bad_step is None or int(self._first_bad_step) < 0:
            return
        last = (
            Path(trainer.checkpoint_callback.dirpath) / "last.ckpt" if trainer.checkpoint_callback else None
        )
        kept = f"; last good checkpoint: {last}" if last is not None and last.exists() else ""
        raise HW2LabError(
            f"training loss became {float(self._first_bad_value)} at epoch {trainer.current_epoch}, "
            f"step {int(self._first_bad_step)}; lower the learning rate or check the data{kept}"
        )
