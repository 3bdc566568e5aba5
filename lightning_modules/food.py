"""Food image classifiers: the course report's small CNN, a stronger from-scratch CNN and a small ResNet,
with L2, and test-time averaging over flips and crops.

L2 regularisation adds ½·λ·Σ‖w‖² over the weights `hw2lab.training.decayed_parameters` picks (here: every
conv kernel and linear matrix; not biases or BatchNorm) to the objective. `l2_mode` says where it enters:
- `optimizer`: Adam's `weight_decay=λ` on those weights (Adam adds λ·w to their gradient: coupled L2);
- `loss`: the term itself is added to the training loss, and autograd yields the same λ·w.
Both give the same updates; `train/l2` logs the penalty's value either way, so its effect shows.

Test-time averaging (`tta_flip`, `tta_crop`) averages the logits over several views of each evaluation image
and logs them beside the plain ones (`test/acc_tta` beside `test/acc`), so one run measures both.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import StochasticDepth

from hw2lab.errors import check
from hw2lab.training import TaskModule, accepted, decayed_parameters, eval_mode

L2_MODES = ("optimizer", "loss")


class ReportCNN(nn.Module):
    """The report's CNN: 3 × (conv 5×5 'same' - ReLU - maxpool 2), 16/32/32 channels, one linear layer."""

    def __init__(
        self, num_classes: int, image_size: int, channels: Sequence[int] = (16, 32, 32), kernel_size: int = 5
    ) -> None:
        super().__init__()
        check(kernel_size % 2 == 1, f"model.net.kernel_size must be odd, got {kernel_size}")
        check(
            image_size % 2 ** len(channels) == 0,
            f"ReportCNN needs image_size divisible by {2 ** len(channels)}, got {image_size}",
        )
        layers, in_channels = [], 3
        for out_channels in channels:
            layers += [
                nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        side = image_size // 2 ** len(channels)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(in_channels * side * side, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class FoodCNN(nn.Module):
    """VGG-style stages of conv3-BN-ReLU, max-pooled between stages, then global average pooling,
    dropout and a linear layer: few parameters for 700 images and no dependence on the input size."""

    def __init__(
        self,
        num_classes: int,
        widths: Sequence[int] = (32, 64, 128, 256),
        convs_per_stage: int = 2,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        check(len(widths) >= 1 and convs_per_stage >= 1, "model.net needs >= 1 stage and >= 1 conv per stage")
        check(0 <= dropout < 1, f"model.net.dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = []
        in_channels = 3
        for stage, width in enumerate(widths):
            if stage > 0:
                layers.append(nn.MaxPool2d(2))
            for _ in range(convs_per_stage):
                layers.append(conv_bn_relu(in_channels, width))
                in_channels = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(in_channels, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def conv3x3_bn(in_channels: int, out_channels: int, stride: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
    ]


class ResidualBlock(nn.Module):
    """ResNet's basic block: relu(shortcut(x) + branch(x)), the branch two conv3-BN (ReLU between), the
    shortcut a 1×1 conv-BN where the shape changes. Stochastic depth drops the branch for a random share
    `drop_path` of the samples in training (scaling the kept ones by 1 / (1 - drop_path)); in eval mode
    the branch always counts, unscaled."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, drop_path: float = 0.0) -> None:
        super().__init__()
        self.branch = nn.Sequential(
            *conv3x3_bn(in_channels, out_channels, stride),
            nn.ReLU(inplace=True),
            *conv3x3_bn(out_channels, out_channels),
        )
        # The branch starts at zero (its last BN scale 0): each block begins as the identity.
        nn.init.zeros_(self.branch[-1].weight)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.drop_path = StochasticDepth(drop_path, mode="row")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.shortcut(x) + self.drop_path(self.branch(x)))


class FoodResNet(nn.Module):
    """A small ResNet from scratch: a conv3-BN-ReLU stem (optionally max-pooled to half size), stages of
    residual blocks (`widths`, `blocks_per_stage` each; every stage after the first halves the size),
    global average pooling, dropout, linear. Stochastic depth grows linearly over the blocks, from
    drop_path / n at the first to `drop_path` at the last (Huang et al. 2016)."""

    def __init__(
        self,
        num_classes: int,
        widths: Sequence[int] = (32, 64, 128, 256),
        blocks_per_stage: int = 1,
        stem_pool: bool = True,
        drop_path: float = 0.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check(
            len(widths) >= 1 and blocks_per_stage >= 1, "model.net needs >= 1 stage and >= 1 block per stage"
        )
        check(0 <= drop_path < 1, f"model.net.drop_path must be in [0, 1), got {drop_path}")
        check(0 <= dropout < 1, f"model.net.dropout must be in [0, 1), got {dropout}")
        stem: list[nn.Module] = [*conv3x3_bn(3, widths[0]), nn.ReLU(inplace=True)]
        if stem_pool:
            stem.append(nn.MaxPool2d(2))
        self.stem = nn.Sequential(*stem)
        count = len(widths) * blocks_per_stage
        blocks: list[nn.Module] = []
        in_channels = widths[0]
        for stage, width in enumerate(widths):
            for index in range(blocks_per_stage):
                stride = 2 if stage > 0 and index == 0 else 1
                rate = drop_path * (len(blocks) + 1) / count
                blocks.append(ResidualBlock(in_channels, width, stride, rate))
                in_channels = width
        self.blocks = nn.Sequential(*blocks)
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(in_channels, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.blocks(self.stem(x)))


def l2_penalty(net: nn.Module, weight_decay: float) -> torch.Tensor:
    """½·λ·Σ‖w‖² over the decayed weights (conv kernels and linear matrices here), whose gradient λ·w is
    what Adam's weight_decay adds."""
    return 0.5 * weight_decay * sum(weight.pow(2).sum() for weight in decayed_parameters(net))


def mix_batch(images: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mixup or CutMix (one of the two, evenly) of a batch with a shuffled copy of itself.

    Returns the mixed images, the partner of each image (an index into the batch) and the share λ of the
    original image, drawn from Beta(alpha, alpha) and folded to λ >= 1/2 so that the original labels stay
    the larger part; for CutMix λ is the exact area left uncovered. Draws use torch's global generator
    (seeded by the run's seed and restored on resume), on the CPU, so the draw is the same on any device.
    """
    share = float(torch.distributions.Beta(alpha, alpha).sample())
    share = max(share, 1 - share)
    partners = torch.randperm(images.shape[0]).to(images.device)
    if float(torch.rand(())) < 0.5:
        return share * images + (1 - share) * images[partners], partners, share
    height, width = images.shape[-2:]
    # Rounded down, so the uncovered share stays >= 1/2.
    cut_h, cut_w = int(height * (1 - share) ** 0.5), int(width * (1 - share) ** 0.5)
    top = int(torch.randint(0, height - cut_h + 1, ()))
    left = int(torch.randint(0, width - cut_w + 1, ()))
    mixed = images.clone()
    rows, cols = slice(top, top + cut_h), slice(left, left + cut_w)
    mixed[..., rows, cols] = images[partners, :, rows, cols]  # only the patch is gathered
    return mixed, partners, 1 - cut_h * cut_w / (height * width)


def tta_views(images: torch.Tensor, flip: bool, crop: float | None) -> list[torch.Tensor]:
    """The views test-time averaging scores: the image; with `crop`, its 4 corner crops and centre crop
    of side `crop` × the image's, each resized back (bilinear); with `flip`, the mirror of each of these."""
    views = [images]
    if crop is not None:
        height, width = images.shape[-2:]
        side_h, side_w = max(1, round(crop * height)), max(1, round(crop * width))
        tops, lefts = (0, height - side_h, (height - side_h) // 2), (0, width - side_w, (width - side_w) // 2)
        corners = [(tops[i], lefts[j]) for i in (0, 1) for j in (0, 1)] + [(tops[2], lefts[2])]
        for top, left in corners:
            patch = images[..., top : top + side_h, left : left + side_w]
            views.append(F.interpolate(patch, size=(height, width), mode="bilinear", align_corners=False))
    if flip:
        views += [view.flip(-1) for view in views]
    return views


def averaged_logits(net: nn.Module, images: torch.Tensor, flip: bool, crop: float | None) -> torch.Tensor:
    """The mean of the net's logits over `tta_views` (all views in one forward pass)."""
    views = tta_views(images, flip, crop)
    logits = net(torch.cat(views))
    return logits.view(len(views), images.shape[0], *logits.shape[1:]).mean(dim=0)


class FoodClassifier(TaskModule):
    """Cross-entropy training of a food CNN; logs loss (plain cross-entropy), acc and the L2 penalty per
    epoch. (The un-augmented training accuracy at test time is callbacks.food.TrainAccuracyAtTest's.)

    `optimizer` is a partial without weight_decay: the L2 strength is `weight_decay`, which goes to the
    optimiser (decayed parameter group only) when `l2_mode` is "optimizer" and into the loss when "loss".

    Test-time averaging: with `tta_flip` and/or `tta_crop` (the side fraction of 5 crops), the test step
    also scores the logits averaged over those views (`averaged_logits`) as `test/loss_tta`, `test/acc_tta`;
    `tta_val` does the same for validation (`val/acc_tta`). The plain metrics are computed as without it.

    `net`: a partial taking `num_classes` (the count of the data's `class_names`) and, if it asks, the
    data's `image_size` (see TaskModule), or a net built already.
    """

    def __init__(
        self,
        net: Callable[..., nn.Module] | nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        scheduler_interval: str = "epoch",
        weight_decay: float = 0.0,
        l2_mode: str = "optimizer",
        label_smoothing: float = 0.0,
        mix_prob: float = 0.0,
        mix_alpha: float = 1.0,
        tta_flip: bool = False,
        tta_crop: float | None = None,
        tta_val: bool = False,
    ) -> None:
        check(weight_decay >= 0, f"model.weight_decay must be >= 0, got {weight_decay}")
        check(l2_mode in L2_MODES, f"l2_mode must be one of {L2_MODES}, got {l2_mode!r}")
        check(0 <= label_smoothing < 1, f"model.label_smoothing must be in [0, 1), got {label_smoothing}")
        check(0 <= mix_prob <= 1, f"model.mix_prob must be in [0, 1], got {mix_prob}")
        check(mix_alpha > 0, f"model.mix_alpha must be > 0, got {mix_alpha}")
        check(
            tta_crop is None or 0 < tta_crop < 1, f"model.tta_crop must be null or in (0, 1), got {tta_crop}"
        )
        check(
            not tta_val or tta_flip or tta_crop is not None,
            "model.tta_val needs test-time views: set model.tta_flip=true and/or model.tta_crop",
        )
        super().__init__(optimizer, scheduler, scheduler_interval, net=net)
        check(
            "weight_decay" not in getattr(self.optimizer_factory, "keywords", {}),
            "set the L2 strength with weight_decay (model.weight_decay), not model.optimizer.weight_decay",
        )
        # The checkpoint keeps the optimiser's config as given (TaskModule); the L2 strength joins it here.
        optimizer_decay = float(weight_decay) if l2_mode == "optimizer" else 0.0
        self.optimizer_factory = functools.partial(self.optimizer_factory, weight_decay=optimizer_decay)
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"], logger=False)
        self.weight_decay = float(weight_decay)
        self.l2_mode = l2_mode
        self.label_smoothing = float(label_smoothing)
        self.mix_prob, self.mix_alpha = float(mix_prob), float(mix_alpha)
        self.tta_flip, self.tta_crop = bool(tta_flip), None if tta_crop is None else float(tta_crop)
        self.tta = self.tta_flip or self.tta_crop is not None
        self.tta_val = bool(tta_val)

    def make_net(self, inputs: dict) -> nn.Module:
        sizes = {"num_classes": len(inputs["class_names"]), "image_size": inputs["image_size"]}
        return self.net_factory(**accepted(self.net_factory, sizes))

    @property
    def class_names(self) -> list[str]:
        """The data's class names (once the net is built for them)."""
        return list((self.net_inputs or {}).get("class_names", []))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def training_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """What backward sees: smoothed cross-entropy, plus the L2 term when l2_mode is 'loss'."""
        loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        if self.l2_mode == "loss" and self.weight_decay > 0:
            loss = loss + l2_penalty(self.net, self.weight_decay)
        return loss

    def tta_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Logits averaged over the test-time views (the plain logits when none is configured)."""
        return averaged_logits(self.net, images, self.tta_flip, self.tta_crop)

    def _add_batch(
        self,
        stage: str,
        logits: torch.Tensor,
        labels: torch.Tensor,
        tta_logits: torch.Tensor | None = None,
    ) -> None:
        """Plain cross-entropy and accuracy of the batch, and of the averaged logits as `*_tta` if given."""
        logits = logits.detach().float()
        values = dict(
            loss=F.cross_entropy(logits, labels), acc=(logits.argmax(dim=1) == labels).float().mean()
        )
        if tta_logits is not None:
            tta_logits = tta_logits.detach().float()
            values["loss_tta"] = F.cross_entropy(tta_logits, labels)
            values["acc_tta"] = (tta_logits.argmax(dim=1) == labels).float().mean()
        self.accumulate(stage, labels.shape[0], **values)

    def training_forward(
        self, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the loss backward sees, Mixup/CutMix included (also bench/food.py's plain loop)."""
        if self.mix_prob > 0 and float(torch.rand(())) < self.mix_prob:
            images, partners, share = mix_batch(images, self.mix_alpha)
            logits = self.net(images)
            own, other = self.training_loss(logits, labels), self.training_loss(logits, labels[partners])
            return logits, share * own + (1 - share) * other
        logits = self.net(images)
        return logits, self.training_loss(logits, labels)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        logits, loss = self.training_forward(images, labels)
        self._add_batch("train", logits, labels)  # on mixed batches: against the larger share's labels
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        tta_logits = self.tta_logits(images) if self.tta_val else None
        self._add_batch("val", self.net(images), labels, tta_logits)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        """Returns the batch's logits, and the averaged ones with test-time views, as {"logits",
        "logits_tta"} (callbacks see them in on_test_batch_end)."""
        images, labels = batch
        logits = self.net(images)
        outputs = {"logits": logits.detach()}
        if self.tta:
            outputs["logits_tta"] = self.tta_logits(images).detach()
        self._add_batch("test", logits, labels, outputs.get("logits_tta"))
        return outputs

    def on_train_epoch_end(self) -> None:
        with torch.no_grad():
            self.log_epoch("train", l2=l2_penalty(self.net, self.weight_decay).detach())

    # -- what the figure callbacks use (callbacks.food.FoodModel)
    def predict_images(self, images: torch.Tensor, tta: bool = False) -> torch.Tensor:
        """Logits for normalised images on the module's device, in evaluation mode; averaged over the
        test-time views with `tta`."""
        with eval_mode(self):
            return (self.tta_logits(images) if tta else self.net(images)).float()

    def weight_layers(self) -> list[tuple[str, nn.Module]]:
        """The net's conv and linear layers by name (as in the net's state dict), in network order."""
        return [
            (name, module)
            for name, module in self.net.named_modules()
            if isinstance(module, nn.Conv2d | nn.Linear)
        ]
