"""What every task's LightningModule shares: epoch means of per-step values, the optimiser and learning-rate
schedule from config, the weight-decay parameter groups, and an evaluation-mode guard.

A task module subclasses `TaskModule`, calls `self.accumulate(stage, weight, name=value, ...)` in its steps
and gets `<stage>/<name>` logged once per epoch; its config gives `optimizer` (and optionally `scheduler`) as
`_partial_` Hydra targets, e.g.

    optimizer: {_target_: torch.optim.AdamW, _partial_: true, lr: 1e-3, weight_decay: 0.01}
    scheduler: {_target_: hw2lab.training.warmup_linear_decay, _partial_: true, warmup_ratio: 0.1}

What the data tells the net (sizes, vocabulary, channels, features) reaches it one way: the datamodule's
`net_inputs()` (a small mapping of plain values, validated there), which `TaskModule.setup` gives to the
config's `_partial_` net (`model.net`) and saves in the checkpoint with the net's config, so that
`load_from_checkpoint(path)` rebuilds the net without the data.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

import lightning as L
import torch
from torch import nn
from torchmetrics import Metric, MetricCollection

from hw2lab.errors import HW2LabError, check
from hw2lab.partial_configs import as_config, from_config, plain

STAGES = ("train", "val", "test")
# The checkpoint key of the data's net inputs (TaskModule.on_save_checkpoint).
NET_INPUTS_KEY = "net_inputs"
SCHEDULER_INTERVALS = ("step", "epoch")
# The recurrent cells a config names by `cell`.
RECURRENT_CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
# Modules whose weights are not decayed: embeddings (a row per token, most rarely seen) and normalisation
# layers (a scale that decay would pull towards zero).
NOT_DECAYED = (
    nn.Embedding,
    nn.EmbeddingBag,
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.RMSNorm,
)


class EpochMeans(Metric):
    """Weighted means over an epoch of several named values: one in-place add per step and no host sync,
    summed across processes under DDP.

    Not torchmetrics' MeanMetric: its NaN check reads every value back to the host each step, and its
    `nan_strategy="disable"` drops the weights (torchmetrics 1.9).
    """

    full_state_update = False

    def __init__(self, names: tuple[str, ...]) -> None:
        super().__init__()
        self.names = tuple(names)
        self.add_state("sums", torch.zeros(len(self.names)), dist_reduce_fx="sum")
        self.add_state("weight", torch.zeros(()), dist_reduce_fx="sum")

    def update(self, values: torch.Tensor, weight: torch.Tensor | float) -> None:
        self.sums += values * weight
        self.weight += weight

    def compute(self) -> dict[str, torch.Tensor]:
        means = self.sums / self.weight
        return dict(zip(self.names, means))


def decayed_parameters(module: nn.Module) -> Iterator[nn.Parameter]:
    """The trainable weights weight decay applies to: matrices and kernels (2 or more dimensions), except
    those of embeddings and normalisation layers. Biases and norm scales are 1-D and never decayed."""
    for owner in module.modules():
        if isinstance(owner, NOT_DECAYED):
            continue
        for parameter in owner.parameters(recurse=False):
            if parameter.requires_grad and parameter.ndim >= 2:
                yield parameter


def parameter_groups(module: nn.Module) -> list[dict]:
    """Two optimiser groups: the decayed weights (the optimiser's own weight_decay) and the rest (none)."""
    decayed = {id(p) for p in decayed_parameters(module)}
    trainable = [p for p in module.parameters() if p.requires_grad]
    return [
        {"params": [p for p in trainable if id(p) in decayed]},
        {"params": [p for p in trainable if id(p) not in decayed], "weight_decay": 0.0},
    ]


def warmup_linear_decay(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float = 0.0
) -> torch.optim.lr_scheduler.LRScheduler:
    """BERT's schedule from torch's LinearLR: the rate rises linearly over the first `warmup_ratio` of the
    steps (step k of w at (k + 1) / (w + 1) of the peak), then falls linearly to 0 at the last step."""
    check(0 <= warmup_ratio < 1, f"scheduler warmup_ratio must be in [0, 1), got {warmup_ratio}")
    total_steps = max(1, int(total_steps))
    warmup = int(warmup_ratio * total_steps)
    decay = torch.optim.lr_scheduler.LinearLR(
        optimizer, start_factor=1.0, end_factor=0.0, total_iters=max(1, total_steps - warmup)
    )
    if warmup < 2:
        if warmup == 1:  # a one-step warm-up is half the peak rate for that step
            return torch.optim.lr_scheduler.SequentialLR(
                optimizer,
                [torch.optim.lr_scheduler.ConstantLR(optimizer, factor=0.5, total_iters=1), decay],
                milestones=[1],
            )
        return decay
    rise = torch.optim.lr_scheduler.LinearLR(
        optimizer, start_factor=1 / (warmup + 1), end_factor=warmup / (warmup + 1), total_iters=warmup - 1
    )
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [rise, decay], milestones=[warmup])


def cosine_decay(
    optimizer: torch.optim.Optimizer, total_steps: int, min_lr_ratio: float = 0.0
) -> torch.optim.lr_scheduler.CosineAnnealingLR:
    """Half a cosine from the optimiser's rate down to `min_lr_ratio` of it at the last planned step."""
    check(0 <= min_lr_ratio <= 1, f"scheduler min_lr_ratio must be in [0, 1], got {min_lr_ratio}")
    peak = optimizer.param_groups[0]["lr"]
    return torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=max(1, int(total_steps)), eta_min=min_lr_ratio * peak
    )


class NetInputs(Protocol):
    """A datamodule that tells the net what only the data knows (once `setup` has read it)."""

    def net_inputs(self) -> dict[str, Any]:
        """E.g. {"features": [...]}, {"image_shape": [1, 28, 28]}, {"classes": [...], "itos": [...]}."""
        ...


def accepted(factory: Callable, values: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of `values` that `factory` takes as keywords (all of them if it takes **kwargs)."""
    parameters = inspect.signature(factory).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return dict(values)
    names = {p.name for p in parameters}
    return {key: value for key, value in values.items() if key in names}


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Evaluation mode and no gradients for the block (figures drawn mid-training), then the previous mode."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        module.train(was_training)


class TaskModule(L.LightningModule):
    """The LightningModule every task subclasses.

    - Epoch metrics: `accumulate(stage, weight, **values)` in a step adds batch values to the epoch's
      weighted means; `stage_metrics(stage)` is the task's own torchmetrics collection for that stage (if it
      registered one with `add_stage_metrics`). Both are logged as `<stage>/<name>` at the epoch's end.
    - Optimiser: `optimizer` is a partial taking `params` (the decayed / not-decayed groups of
      `parameter_groups`); `scheduler`, if given, a partial taking `optimizer`, and also `total_steps` (the
      run's optimiser steps) when its signature has it, stepped every `scheduler_interval`.
    - Net: `net` is a partial completed in `setup` with the datamodule's `net_inputs()` (`build_net`; the
      inputs it takes by name, or as the task's `make_net` says), or a net built already (tests, scripts).
      The checkpoint keeps the inputs (under "net_inputs") and the `_partial_` configs of net, optimizer and
      schedule (hyper-parameters), so `<Module>.load_from_checkpoint(path)` rebuilds the net without data.
      Each of the three may be given as its config (a mapping), as a checkpoint gives them.
    """

    # The module prefixes a checkpoint's configs may name (it loads with weights_only); a task under
    # another package extends them.
    CONFIG_TARGETS: dict[str, tuple[str, ...]] = {
        "net": ("lightning_modules.", "torch.nn."),
        "optimizer": ("torch.optim.",),
        "scheduler": ("torch.optim.lr_scheduler.", "hw2lab.training.", "lightning_modules."),
    }

    def __init__(
        self,
        optimizer: Callable[..., torch.optim.Optimizer] | Mapping,
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | Mapping | None = None,
        scheduler_interval: str = "step",
        net: Callable[..., nn.Module] | nn.Module | Mapping | None = None,
    ) -> None:
        super().__init__()
        optimizer = from_config(optimizer, "model.optimizer", self.CONFIG_TARGETS["optimizer"])
        scheduler = from_config(scheduler, "model.scheduler", self.CONFIG_TARGETS["scheduler"])
        net = from_config(net, "model.net", self.CONFIG_TARGETS["net"])
        check(
            scheduler_interval in SCHEDULER_INTERVALS,
            f"model.scheduler_interval must be one of {SCHEDULER_INTERVALS}, got {scheduler_interval!r}",
        )
        check(
            callable(optimizer),
            "model.optimizer must be a _partial_ optimizer target (e.g. torch.optim.Adam)",
        )
        # A bad rate or beta fails now, in one line, not when fitting starts.
        try:
            optimizer(params=[nn.Parameter(torch.zeros(1))])
        except (TypeError, ValueError) as error:
            raise HW2LabError(f"bad model.optimizer: {' '.join(str(error).split())}") from None
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_interval = scheduler_interval
        built = isinstance(net, nn.Module)
        self.net_factory: Callable[..., nn.Module] | None = None if built else net
        self.net: nn.Module | None = net if built else None
        self.net_inputs: dict[str, Any] | None = None
        # What the checkpoint's hyper-parameters add (a net built already has no config).
        self.saved_hparams = {
            "net": None if built else as_config(net),
            "optimizer": as_config(optimizer),
            "scheduler": as_config(scheduler),
            "scheduler_interval": scheduler_interval,
        }
        # Keyed "<stage>_means" / "<stage>_metrics": a ModuleDict key may not be "train" (nn.Module.train).
        self.epoch_means = nn.ModuleDict()
        self.epoch_metrics = nn.ModuleDict()

    # -- the net, from what the data tells it
    def make_net(self, inputs: dict[str, Any]) -> nn.Module:
        """The net for the data's inputs: `net` called with those it takes by name. A task whose net wants
        them in another form (a count of the classes named) overrides this."""
        check(self.net_factory is not None, "model.net must be a _partial_ net target")
        return self.net_factory(**accepted(self.net_factory, inputs))

    def build_net(self, inputs: Mapping[str, Any]) -> None:
        """Record the data's net inputs and build the net from them (once; a net given built is kept). Data
        that tells a built net something else (another vocabulary) is a user error."""
        inputs = plain(inputs)
        if self.net_inputs is not None:
            changed = sorted(
                k for k in {*inputs, *self.net_inputs} if inputs.get(k) != self.net_inputs.get(k)
            )
            check(not changed, f"the data's {', '.join(changed)} differ from those this model was built for")
            return
        self.net_inputs = inputs
        if self.net is None:
            self.net = self.make_net(inputs)

    def setup(self, stage: str) -> None:
        datamodule: NetInputs | None = self.trainer.datamodule
        if datamodule is not None and hasattr(datamodule, "net_inputs"):
            self.build_net(datamodule.net_inputs())
        check(
            self.net is not None,
            f"{type(self).__name__} needs a datamodule with net_inputs() to build its net",
        )

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[NET_INPUTS_KEY] = self.net_inputs
        saved = dict(checkpoint.get(self.CHECKPOINT_HYPER_PARAMS_KEY) or {})
        checkpoint[self.CHECKPOINT_HYPER_PARAMS_KEY] = {
            **saved,
            **{
                key: value
                for key, value in self.saved_hparams.items()
                if value is not None or key not in saved
            },
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        inputs = checkpoint.get(NET_INPUTS_KEY)
        if inputs is not None:
            self.build_net(inputs)

    # -- epoch metrics
    def accumulate(self, stage: str, weight: int | torch.Tensor, **values: torch.Tensor) -> None:
        """Add this batch's values (each a scalar, the batch's mean) with `weight` (its size) to the epoch."""
        key = f"{stage}_means"
        stacked = torch.stack([torch.as_tensor(v).detach().float().reshape(()) for v in values.values()])
        if key not in self.epoch_means:
            # Normal tensors even when the first call is under inference mode (validation), so the same store
            # can be updated outside it later (a module validated, then fitted).
            with torch.inference_mode(False):
                self.epoch_means[key] = EpochMeans(tuple(values)).to(stacked.device)
        self.epoch_means[key].update(stacked, weight)

    def add_stage_metrics(self, make: Callable[[], MetricCollection]) -> None:
        """Register a torchmetrics collection per stage (made by `make`), logged and reset each epoch."""
        for stage in STAGES:
            self.epoch_metrics[f"{stage}_metrics"] = make().to(self.device)

    def stage_metrics(self, stage: str) -> MetricCollection:
        return self.epoch_metrics[f"{stage}_metrics"]

    def epoch_values(self, stage: str) -> dict[str, torch.Tensor]:
        """The stage's epoch values by their logged names, and resets them; empty if the stage did not run."""
        values: dict[str, torch.Tensor] = {}
        for key, store in ((f"{stage}_means", self.epoch_means), (f"{stage}_metrics", self.epoch_metrics)):
            metric = store[key] if key in store else None
            if metric is None or not _updated(metric):
                continue
            values.update({f"{stage}/{name}": value for name, value in metric.compute().items()})
            with torch.inference_mode(False):  # fresh states as normal tensors (see accumulate)
                metric.reset()
        return values

    def log_epoch(self, stage: str, **extra: torch.Tensor | float) -> None:
        values = self.epoch_values(stage)
        if values:
            values.update({f"{stage}/{name}": value for name, value in extra.items()})
            self.log_dict(values, sync_dist=True, add_dataloader_idx=False)

    def on_train_epoch_end(self) -> None:
        self.log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        self.log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self.log_epoch("test")

    # -- optimiser and schedule
    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=parameter_groups(self))
        if self.scheduler_factory is None:
            return optimizer
        kwargs = {}
        if "total_steps" in inspect.signature(self.scheduler_factory).parameters:
            kwargs["total_steps"] = _finite_steps(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(optimizer=optimizer, **kwargs)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval},
        }


def _updated(metric: Metric | MetricCollection) -> bool:
    if isinstance(metric, MetricCollection):  # a collection has no update_called of its own
        return any(member.update_called for member in metric.values())
    return metric.update_called


def _finite_steps(value: float | int) -> int:
    if value is None or not math.isfinite(value):
        raise HW2LabError(
            "this learning-rate schedule needs the number of steps: set trainer.max_epochs or trainer.max_steps"
        )
    return max(1, int(value))
