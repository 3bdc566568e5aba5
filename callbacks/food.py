"""Food callbacks: weight/bias histograms, misclassified test images, confusion matrix, feature maps, the
un-augmented training accuracy at test time, and the weight-decay sweep's comparison.

Histograms go to TensorBoard every epoch and to figures/ when training ends. The test-set figures are drawn
after testing, so they show the checkpoint that was tested (the best by val/acc); `test=false` skips them.
The callbacks ask the module only for what `FoodModel` declares, and the datamodule for what `FoodData`
declares.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Protocol

import lightning as L
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from hw2lab.figures import overlay_curves, plot_confusion_matrix, save_figure, tensorboard_writers


class FoodModel(Protocol):
    """What the food callbacks use of the LightningModule (lightning_modules.food.FoodClassifier)."""

    class_names: list[str]
    device: torch.device

    def predict_images(self, images: torch.Tensor, tta: bool = False) -> torch.Tensor:
        """Logits for normalised images on the module's device, in evaluation mode, without gradients;
        with `tta`, averaged over the module's test-time views."""
        ...

    def weight_layers(self) -> list[tuple[str, nn.Module]]:
        """The conv and linear layers by name, in network order."""
        ...

    def log(self, name: str, value: Any, **kwargs: Any) -> None: ...


class FoodData(Protocol):
    """What the food callbacks use of the datamodule (datamodules.food.FoodDataModule)."""

    images: dict[str, torch.Tensor]
    labels: dict[str, torch.Tensor]

    def batches(self, split: str, shuffle: bool = False) -> Any:
        """(uint8 images, labels) batches of a split, in order."""
        ...

    def prepare(self, images: torch.Tensor, training: bool) -> torch.Tensor:
        """uint8 batch -> the network's float input (augmented when training)."""
        ...


def plot_weight_histograms(
    layers: list[tuple[str, nn.Module]], bins: int = 60, title: str = ""
) -> plt.Figure:
    """One row per conv/linear layer: its weights (left) and biases (right, when it has them)."""
    fig, axes = plt.subplots(len(layers), 2, figsize=(8, 1.5 * len(layers) + 0.6), squeeze=False)
    for row, (name, module) in enumerate(layers):
        for column, (kind, tensor) in enumerate((("weight", module.weight), ("bias", module.bias))):
            axis = axes[row, column]
            if tensor is None:
                axis.text(0.5, 0.5, "no bias (BatchNorm follows)", ha="center", va="center", fontsize=8)
                axis.set_axis_off()
                continue
            values = tensor.detach().float().cpu().numpy().ravel()
            axis.hist(values, bins=bins, color="tab:blue" if kind == "weight" else "tab:orange")
            axis.set_title(f"{name} {kind} (n={values.size}, std={values.std():.3g})", fontsize=8)
            axis.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


class WeightHistograms(L.Callback):
    """Weight and bias histograms of every conv and linear layer: TensorBoard each epoch, figures/ at the end."""

    def __init__(self, figures_dir: str, bins: int = 60) -> None:
        self.figures_dir = Path(figures_dir)
        self.bins = bins

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: FoodModel) -> None:
        if not trainer.is_global_zero:
            return
        for writer in tensorboard_writers(trainer):
            for name, module in pl_module.weight_layers():
                for kind in ("weight", "bias"):
                    tensor = getattr(module, kind)
                    if tensor is not None:
                        writer.add_histogram(
                            f"{name}.{kind}", tensor.detach().float().cpu(), trainer.current_epoch
                        )

    def on_train_end(self, trainer: L.Trainer, pl_module: FoodModel) -> None:
        if trainer.is_global_zero:
            fig = plot_weight_histograms(pl_module.weight_layers(), self.bins)
            save_figure(fig, self.figures_dir, "weight_histograms", trainer, step=trainer.current_epoch)


def predict_split(module: FoodModel, datamodule: FoodData, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted, true) class indices for a whole split, un-augmented, computed on the module's device."""
    predictions, labels = [], []
    for images, batch_labels in datamodule.batches(split):
        inputs = datamodule.prepare(images.to(module.device), training=False)
        predictions.append(module.predict_images(inputs).argmax(dim=1).cpu())
        labels.append(batch_labels)
    return torch.cat(predictions), torch.cat(labels)


def plot_misclassified(
    images: torch.Tensor, true: list[str], predicted: list[str], per_row: int, title: str
) -> plt.Figure:
    """A gallery of uint8 (N, 3, H, W) images titled with true and predicted class names."""
    count = max(len(images), 1)
    rows = math.ceil(count / per_row)
    fig, axes = plt.subplots(rows, per_row, figsize=(2.1 * per_row, 2.4 * rows), squeeze=False)
    for index, axis in enumerate(axes.ravel()):
        axis.set_axis_off()
        if index < len(images):
            axis.imshow(images[index].permute(1, 2, 0).numpy())
            axis.set_title(f"true: {true[index]}\npred: {predicted[index]}", fontsize=7)
    if not len(images):
        axes[0, 0].text(0.5, 0.5, "no misclassified test images", ha="center", va="center")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


class TestSetFigures(L.Callback):
    """After testing: a gallery of misclassified test images and the test confusion matrix."""

    def __init__(self, figures_dir: str, gallery_size: int = 24, per_row: int = 6) -> None:
        self.figures_dir = Path(figures_dir)
        self.gallery_size, self.per_row = gallery_size, max(1, per_row)

    def on_test_end(self, trainer: L.Trainer, pl_module: FoodModel) -> None:
        if not trainer.is_global_zero:
            return
        datamodule: FoodData = trainer.datamodule
        names = pl_module.class_names
        predicted, true = predict_split(pl_module, datamodule, "test")
        accuracy = (predicted == true).float().mean().item()
        wrong = torch.nonzero(predicted != true).flatten()[: self.gallery_size]
        fig = plot_misclassified(
            datamodule.images["test"][wrong],
            [names[i] for i in true[wrong].tolist()],
            [names[i] for i in predicted[wrong].tolist()],
            self.per_row,
            f"misclassified test images: first {len(wrong)} of {int((predicted != true).sum())} "
            f"(test accuracy {accuracy:.1%})",
        )
        save_figure(fig, self.figures_dir, "misclassified", trainer)
        matrix = np.zeros((len(names), len(names)), dtype=np.int64)
        np.add.at(matrix, (true.numpy(), predicted.numpy()), 1)
        title = f"test confusion matrix (accuracy {accuracy:.1%}, {len(true)} images)"
        save_figure(
            plot_confusion_matrix(matrix, names, title), self.figures_dir, "confusion_matrix", trainer
        )


class FeatureMaps(L.Callback):
    """After testing: for a few test images, the first `channels` output maps of every conv layer."""

    def __init__(self, figures_dir: str, num_images: int = 2, channels: int = 8) -> None:
        self.figures_dir = Path(figures_dir)
        self.num_images, self.channels = max(1, num_images), max(1, channels)

    def feature_maps(self, module: FoodModel, inputs: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        captured: list[tuple[str, torch.Tensor]] = []
        hooks = [
            conv.register_forward_hook(
                lambda _m, _i, output, name=name: captured.append((name, output.detach()))
            )
            for name, conv in module.weight_layers()
            if isinstance(conv, nn.Conv2d)
        ]
        try:
            module.predict_images(inputs)
        finally:
            for hook in hooks:
                hook.remove()
        return captured

    def on_test_end(self, trainer: L.Trainer, pl_module: FoodModel) -> None:
        if not trainer.is_global_zero:
            return
        datamodule: FoodData = trainer.datamodule
        images = datamodule.images["test"][: self.num_images]
        labels = datamodule.labels["test"][: self.num_images].tolist()
        maps = self.feature_maps(pl_module, datamodule.prepare(images.to(pl_module.device), training=False))
        rows = len(images) * len(maps)
        columns = self.channels + 1
        fig, axes = plt.subplots(rows, columns, figsize=(1.3 * columns, 1.35 * rows), squeeze=False)
        for axis in axes.ravel():
            axis.set_axis_off()
        for image_index in range(len(images)):
            for layer_index, (name, output) in enumerate(maps):
                row = image_index * len(maps) + layer_index
                if layer_index == 0:
                    axes[row, 0].imshow(images[image_index].permute(1, 2, 0).numpy())
                    axes[row, 0].set_title(pl_module.class_names[labels[image_index]], fontsize=7)
                axes[row, 1].set_title(
                    f"{name} ({output.shape[1]} ch, {output.shape[-1]}px)", fontsize=6, loc="left"
                )
                for channel in range(min(self.channels, output.shape[1])):
                    axes[row, channel + 1].imshow(
                        output[image_index, channel].float().cpu().numpy(), cmap="viridis"
                    )
        fig.suptitle("feature maps: the first channels of each conv layer, per test image", fontsize=10)
        fig.tight_layout()
        save_figure(fig, self.figures_dir, "feature_maps", trainer)


class TrainAccuracyAtTest(L.Callback):
    """At test time, the training accuracy as the report measured it (the training images without
    augmentation, one extra pass) and the train-test gap, logged with the test metrics as
    `test/train_acc` and `test/train_test_gap`; when the module scores test-time views too, the same with
    averaged logits as `test/train_acc_tta` and `test/train_test_gap_tta`.

    The gap needs the test accuracy, which the module logs after the callbacks' on_test_epoch_end: this
    callback counts it from the logits test_step returns ({"logits", "logits_tta"}), over the same batches.
    """

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: FoodModel) -> None:
        self.correct: dict[str, torch.Tensor] = {}
        self.total = 0

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: FoodModel,
        outputs: dict[str, torch.Tensor],
        batch: tuple[torch.Tensor, torch.Tensor],
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        labels = batch[1]
        for key, logits in outputs.items():
            correct = (logits.argmax(dim=1) == labels).sum()
            self.correct[key] = self.correct[key] + correct if key in self.correct else correct
        self.total += labels.shape[0]

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: FoodModel) -> None:
        if self.total == 0:
            return
        datamodule: FoodData = trainer.datamodule
        suffixes = {"logits": "", "logits_tta": "_tta"}
        kinds = [key for key in suffixes if key in self.correct]
        correct = {key: torch.zeros((), device=pl_module.device) for key in kinds}
        total = 0
        for images, labels in datamodule.batches("train"):
            images, labels = images.to(pl_module.device), labels.to(pl_module.device)
            inputs = datamodule.prepare(images, training=False)
            for key in kinds:
                predictions = pl_module.predict_images(inputs, tta=key == "logits_tta").argmax(dim=1)
                correct[key] += (predictions == labels).sum()
            total += labels.shape[0]
        for key in kinds:
            train_acc = correct[key] / max(total, 1)
            suffix = suffixes[key]
            pl_module.log(f"test/train_acc{suffix}", train_acc, sync_dist=True)
            gap = train_acc - self.correct[key] / self.total
            pl_module.log(f"test/train_test_gap{suffix}", gap, sync_dist=True)


def _conv_linear_weights(checkpoint: Path) -> np.ndarray:
    """All conv and linear weights of a checkpoint (4-D conv kernels and 2-D linear matrices)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    values = [
        t.float().numpy().ravel() for key, t in state.items() if key.endswith(".weight") and t.ndim in (2, 4)
    ]
    return np.concatenate(values) if values else np.zeros(0)


def compare_weight_decay(jobs: list, sweep_dir: Path) -> Path:
    """The sweep in one figure: accuracy and loss curves of all jobs overlaid (train dashed, val solid), the
    distribution of their conv/linear weights overlaid, and below, each job's weight histograms side by side."""
    fig = plt.figure(figsize=(max(15, 5.5 * len(jobs)), 13))
    grid = fig.add_gridspec(2, max(3, len(jobs)), height_ratios=[1, 2.4])
    top = [fig.add_subplot(grid[0, i]) for i in range(3)]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for axis, metric in zip(top[:2], ("acc", "loss")):
        overlay_curves(axis, jobs, metric, splits=("train", "val"))
    for index, job in enumerate(jobs):
        colour = colours[index % len(colours)]
        checkpoint = job.dir / "checkpoints" / "last.ckpt"
        if checkpoint.exists():
            weights = _conv_linear_weights(checkpoint)
            top[2].hist(
                weights,
                bins=120,
                histtype="step",
                color=colour,
                label=f"{job.label} (std {weights.std():.3g})",
            )
    top[2].set_title("all conv/linear weights at the last epoch", fontsize=10)
    top[2].set_yscale("log")
    top[2].grid(alpha=0.3)
    top[2].legend(fontsize=8)
    for index, job in enumerate(jobs):
        axis = fig.add_subplot(grid[1, index])
        path = job.dir / "figures" / "weight_histograms.png"
        if path.exists():
            axis.imshow(plt.imread(path))
        axis.set_axis_off()
        axis.set_title(f"{job.label}: weight and bias histograms", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, sweep_dir, "comparison")
