"""The food task: both on-disk layouts on generated JPEGs, bad files, L2 by hand, the optimiser and schedule
from config, transforms, networks, the test-time training accuracy, the real 10-class Food-101 set's split, and a
2-job weight-decay sweep through run.py."""

from __future__ import annotations

import copy
import functools
import logging
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_run_outputs, compose_config, model_for_data, quiet_trainer
from PIL import Image

from callbacks.food import FoodData, FoodModel, TrainAccuracyAtTest, predict_split
from datamodules.food import (
    FoodDataModule,
    FoodTransforms,
    LabelledFiles,
    decode_images,
    jitter_colors,
    stratified_split,
)
from hw2lab.errors import HW2LabError
from hw2lab.pipeline import build
from hw2lab.training import decayed_parameters
from lightning_modules.food import (
    FoodClassifier,
    FoodCNN,
    FoodResNet,
    ReportCNN,
    averaged_logits,
    l2_penalty,
    mix_batch,
    tta_views,
)

FOOD11_CLASSES = [
    "Bread",
    "Dairy product",
    "Dessert",
    "Egg",
    "Fried food",
    "Meat",
    "Noodles/Pasta",
    "Rice",
    "Seafood",
    "Soup",
    "Vegetable/Fruit",
]
FOLDER_CLASSES = ["apple_pie", "bibimbap", "beignets"]
FIGURES = ["learning_curves", "weight_histograms", "misclassified", "confusion_matrix", "feature_maps"]


def write_jpeg(path: Path, label: int, index: int, size: tuple[int, int] = (40, 30)) -> None:
    """A photo-like JPEG whose colour depends on the class (so a model could learn it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(1000 * label + index)
    base = torch.tensor([(label * 67) % 256, (label * 131) % 256, (label * 29) % 256], dtype=torch.float32)
    noise = torch.randint(0, 40, (size[1], size[0], 3), generator=generator).float()
    pixels = (base + noise).clamp(0, 255).to(torch.uint8).numpy()
    Image.fromarray(pixels).save(path, format="JPEG")


def make_food11(root: Path, per_split: dict[str, int], classes: int = len(FOOD11_CLASSES)) -> Path:
    for folder, count in per_split.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for label in range(classes):
            for index in range(count):
                write_jpeg(root / folder / f"{label}_{index}.jpg", label, index)
    return root


def make_image_folder(root: Path, per_class: int = 6) -> Path:
    """images/<class>/<id>.jpg plus Food-101 style meta lists naming some files that are absent."""
    train_lines, test_lines = [], []
    for label, name in enumerate(FOLDER_CLASSES):
        for index in range(per_class):
            image_id = 100 + index
            write_jpeg(root / "images" / name / f"{image_id}.jpg", label, index, size=(30, 44))
            (test_lines if index % 3 == 0 else train_lines).append(f"{name}/{image_id}")
        train_lines.append(f"{name}/999999")  # listed, not present
    (root / "meta").mkdir(parents=True, exist_ok=True)
    (root / "meta" / "train.txt").write_text("\n".join(train_lines) + "\n")
    (root / "meta" / "test.txt").write_text("\n".join(test_lines) + "\n")
    return root


def adam(lr: float = 1e-3) -> functools.partial:
    """What `model.optimizer` instantiates to."""
    return functools.partial(torch.optim.Adam, lr=lr)


def food11_module(data_dir: Path, **overrides) -> FoodDataModule:
    settings = dict(
        data_dir=str(data_dir),
        root="food11",
        class_names=FOOD11_CLASSES,
        layout="food11",
        food11_folders={"train": "training", "val": "validation", "test": "evaluation"},
        image_size=16,
        batch_size=8,
    )
    return FoodDataModule(**{**settings, **overrides})


def folder_module(data_dir: Path, **overrides) -> FoodDataModule:
    settings = dict(
        data_dir=str(data_dir),
        root="images",
        class_names=FOLDER_CLASSES,
        layout="image_folder",
        split_lists={"train": "meta/train.txt", "test": "meta/test.txt"},
        val_fraction=0.25,
        image_size=16,
        batch_size=4,
    )
    return FoodDataModule(**{**settings, **overrides})


# --- reading the layouts -----------------------------------------------------------------------------


def test_food11_layout_labels_come_from_file_names(tmp_path):
    make_food11(tmp_path / "food11", {"training": 2, "validation": 1, "evaluation": 1})
    datamodule = food11_module(tmp_path)
    datamodule.setup()
    assert {split: len(images) for split, images in datamodule.images.items()} == {
        "train": 22,
        "val": 11,
        "test": 11,
    }
    assert datamodule.images["train"].dtype == torch.uint8
    assert datamodule.images["train"].shape[1:] == (3, 16, 16)
    assert sorted(datamodule.labels["train"].tolist()) == sorted(list(range(11)) * 2)
    # The colour of each decoded image is its class's colour: labels and pixels stay paired.
    red = datamodule.images["val"][:, 0].float().mean(dim=(1, 2))
    expected = torch.tensor([(label * 67) % 256 + 19.5 for label in datamodule.labels["val"].tolist()])
    assert torch.allclose(red, expected.clamp(max=255), atol=12)


def test_image_folder_layout_with_split_lists(tmp_path, caplog):
    make_image_folder(tmp_path)
    (tmp_path / "images" / "not_a_class").mkdir()
    datamodule = folder_module(tmp_path)
    with caplog.at_level(logging.INFO, logger="hw2lab"):
        datamodule.setup()
    # 6 per class: indices 0 and 3 are test (2 per class), 4 train per class of which 1 is validation.
    assert len(datamodule.images["test"]) == 6
    assert torch.bincount(datamodule.labels["val"]).tolist() == [1, 1, 1]
    assert torch.bincount(datamodule.labels["train"]).tolist() == [3, 3, 3]
    assert "12 of 15 train entries and 6 of 6 test entries present" in caplog.text
    assert "not_a_class" in caplog.text


def test_image_folder_layout_without_lists_splits_each_class(tmp_path):
    make_image_folder(tmp_path, per_class=10)
    datamodule = folder_module(tmp_path, split_lists=None, split=[0.6, 0.2, 0.2])
    datamodule.setup()
    for split, per_class in (("train", 6), ("val", 2), ("test", 2)):
        assert torch.bincount(datamodule.labels[split]).tolist() == [per_class] * 3
    again = folder_module(tmp_path, split_lists=None, split=[0.6, 0.2, 0.2])
    again.setup()
    assert torch.equal(again.images["test"], datamodule.images["test"]), "the split is seeded"


def test_decoding_centre_crops_to_a_square(tmp_path):
    path = tmp_path / "wide.jpg"
    pixels = torch.zeros(20, 60, 3, dtype=torch.uint8)
    pixels[:, 20:40] = 255  # a white centre square between black side bands
    Image.fromarray(pixels.numpy()).save(path, quality=100)
    files = LabelledFiles([path], [0])
    images, _ = decode_images(files, image_size=10, crop=None)
    assert images.shape == (1, 3, 10, 10)
    assert images.float().mean() > 240, "the centre square, not the black bands"


# --- bad input -------------------------------------------------------------------------------------


def test_a_file_that_is_not_an_image_is_skipped_and_counted(tmp_path, caplog):
    make_food11(tmp_path / "food11", {"training": 2, "validation": 1, "evaluation": 1})
    (tmp_path / "food11" / "training" / "3_99.jpg").write_text("not a jpeg")
    (tmp_path / "food11" / "training" / "4_98.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    datamodule = food11_module(tmp_path)
    with caplog.at_level(logging.WARNING, logger="hw2lab"):
        datamodule.setup()
    assert len(datamodule.images["train"]) == 22
    assert "skipped 2 unreadable image file(s)" in caplog.text


def test_a_name_without_class_prefix_is_skipped_and_counted(tmp_path, caplog):
    make_food11(tmp_path / "food11", {"training": 2, "validation": 1, "evaluation": 1})
    write_jpeg(tmp_path / "food11" / "training" / "pizza.jpg", 0, 0)
    write_jpeg(tmp_path / "food11" / "training" / "x_1.jpg", 0, 1)
    datamodule = food11_module(tmp_path)
    with caplog.at_level(logging.WARNING, logger="hw2lab"):
        datamodule.setup()
    assert len(datamodule.images["train"]) == 22
    assert "skipped 2 file(s)" in caplog.text and "pizza.jpg" in caplog.text


def test_an_empty_split_folder_is_one_clear_error(tmp_path):
    make_food11(tmp_path / "food11", {"training": 1, "evaluation": 1})
    (tmp_path / "food11" / "validation").mkdir()
    with pytest.raises(HW2LabError, match="no <class>_<index>.jpg images in the Food-11 split folder"):
        food11_module(tmp_path).setup()


def test_a_split_of_only_unreadable_files_is_one_clear_error(tmp_path):
    make_food11(tmp_path / "food11", {"training": 1, "evaluation": 1})
    (tmp_path / "food11" / "validation").mkdir()
    (tmp_path / "food11" / "validation" / "0_1.jpg").write_text("text")
    with pytest.raises(HW2LabError, match="the val split has no readable images"):
        food11_module(tmp_path).setup()


def test_class_index_beyond_class_names_is_an_error(tmp_path):
    make_food11(tmp_path / "food11", {"training": 1, "validation": 1, "evaluation": 1}, classes=3)
    with pytest.raises(HW2LabError, match="class 2 but class_names lists only 2"):
        food11_module(tmp_path, class_names=["Bread", "Dairy product"]).setup()


def test_missing_data_and_bad_values_are_clear_errors(tmp_path):
    with pytest.raises(HW2LabError, match="missing dataset file food11"):
        food11_module(tmp_path).setup()
    with pytest.raises(HW2LabError, match="data.layout"):
        food11_module(tmp_path, layout="csv")
    with pytest.raises(HW2LabError, match="data.crop_scale"):
        food11_module(tmp_path, crop_scale=[0.5, 1.5])
    with pytest.raises(HW2LabError, match="l2_mode"):
        FoodClassifier(FoodCNN, adam(), l2_mode="decoupled")
    with pytest.raises(HW2LabError, match="weight_decay"):
        FoodClassifier(FoodCNN, adam(), weight_decay=-1)
    with pytest.raises(HW2LabError, match="not model.optimizer.weight_decay"):
        FoodClassifier(FoodCNN, functools.partial(torch.optim.Adam, weight_decay=0.1))
    with pytest.raises(HW2LabError, match="bad model.optimizer"):
        FoodClassifier(FoodCNN, adam(lr=-1))
    with pytest.raises(HW2LabError, match="divisible by 8"):
        ReportCNN(num_classes=11, image_size=60)


# --- transforms and networks -----------------------------------------------------------------------


def test_evaluation_only_normalises_and_training_flips_whole_images():
    images = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    transforms = FoodTransforms(mean=[0.5] * 3, std=[0.5] * 3, hflip=True, crop_scale=None)
    evaluated = transforms.evaluate(images)
    assert torch.allclose(evaluated, images.float() / 127.5 - 1)
    trained = transforms.train(images, torch.Generator().manual_seed(0))
    for plain, augmented in zip(evaluated, trained, strict=True):
        same = torch.allclose(augmented, plain, atol=1e-5)
        mirrored = torch.allclose(augmented, plain.flip(-1), atol=1e-5)
        assert same or mirrored
    cropped = FoodTransforms(crop_scale=[0.3, 0.5]).train(images, torch.Generator().manual_seed(0))
    assert cropped.shape == evaluated.shape and not torch.allclose(cropped, evaluated)


def test_color_jitter_factors_mean_brightness_contrast_saturation():
    pixels = torch.rand(2, 3, 4, 4) * 0.5
    assert torch.allclose(jitter_colors(pixels, torch.ones(2, 3)), pixels, atol=1e-6)
    darker = jitter_colors(pixels, torch.tensor([[0.5, 1.0, 1.0]] * 2))
    assert torch.allclose(darker, pixels * 0.5, atol=1e-6)
    gray = jitter_colors(pixels, torch.tensor([[1.0, 1.0, 0.0]] * 2))
    assert torch.allclose(gray[:, 0], gray[:, 1]) and torch.allclose(gray[:, 1], gray[:, 2])
    flat = jitter_colors(pixels, torch.tensor([[1.0, 0.0, 1.0]] * 2))
    assert torch.allclose(flat.std(dim=(2, 3)).sum(1), torch.zeros(2), atol=1e-6)  # contrast 0: uniform
    images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    jittered = FoodTransforms(hflip=False, crop_scale=None, color_jitter=0.4).train(images)
    assert jittered.shape == images.shape and not torch.allclose(jittered, images.float() / 127.5 - 1)
    with pytest.raises(HW2LabError, match="color_jitter"):
        FoodTransforms(color_jitter=1.5)


def test_mixup_and_cutmix_keep_the_larger_share_and_its_area():
    torch.manual_seed(0)
    images = torch.arange(2, dtype=torch.float32).view(2, 1, 1, 1).expand(2, 3, 8, 8).contiguous()
    seen = set()
    for _ in range(40):
        mixed, partners, share = mix_batch(images, alpha=1.0)
        assert 0.5 <= share <= 1 and mixed.shape == images.shape
        own = (mixed == images).float().mean(dim=(1, 2, 3))
        if torch.all((mixed == 0) | (mixed == 1)):  # CutMix: whole pixels from one image or the other
            seen.add("cutmix")
            changed = partners != torch.arange(2)
            assert torch.allclose(own[changed], torch.full_like(own[changed], share))
        else:  # Mixup: a convex blend of the two
            seen.add("mixup")
            assert torch.allclose(mixed, share * images + (1 - share) * images[partners])
    assert seen == {"mixup", "cutmix"}


def test_label_smoothing_composes_with_the_mixed_targets():
    """On a mixed batch the loss is the cross-entropy against the smoothed mix of the two one-hot targets,
    (1 - ε)·(λ·y + (1 - λ)·y') + ε/K: smoothing is linear in the target, so weighting the two smoothed
    losses by the share is the same."""
    smoothing, classes = 0.2, len(FOLDER_CLASSES)
    module = FoodClassifier(
        FoodCNN(num_classes=classes, widths=[4, 8], dropout=0.0),
        adam(),
        label_smoothing=smoothing,
        mix_prob=1.0,
    )
    images, labels = torch.randn(6, 3, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2])
    for seed in range(4):  # both Mixup and CutMix draws
        torch.manual_seed(seed)
        logits, loss = module.training_forward(images, labels)
        torch.manual_seed(seed)
        torch.rand(())  # the draw that decides to mix
        _, partners, share = mix_batch(images, module.mix_alpha)
        mixed = share * F.one_hot(labels, classes) + (1 - share) * F.one_hot(labels[partners], classes)
        target = (1 - smoothing) * mixed + smoothing / classes
        expected = -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
        assert torch.allclose(loss, expected, atol=1e-6)
        unsmoothed = -(mixed * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
        assert not torch.allclose(loss, unsmoothed, atol=1e-4), "the smoothing is in the loss"


# --- networks ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "net",
    [
        ReportCNN(num_classes=11, image_size=32),
        FoodCNN(num_classes=11, widths=[8, 16]),
        FoodResNet(num_classes=11, widths=[8, 16, 32], blocks_per_stage=2, drop_path=0.2),
        FoodResNet(num_classes=11, widths=[8, 16], stem_pool=False),
    ],
    ids=["report", "cnn", "resnet", "resnet_no_pool"],
)
def test_networks_give_one_logit_per_class(net):
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 11)


@pytest.mark.parametrize("size", [48, 64])
def test_resnet_stages_halve_the_size_and_any_input_size_works(size):
    net = FoodResNet(num_classes=10, widths=[8, 16, 32, 64], blocks_per_stage=2)
    assert net(torch.randn(2, 3, size, size)).shape == (2, 10)
    shapes = []
    hooks = [
        block.register_forward_hook(lambda _m, _i, out: shapes.append(out.shape[1:])) for block in net.blocks
    ]
    net(torch.randn(1, 3, size, size))
    for hook in hooks:
        hook.remove()
    half = size // 2  # after the stem's max-pooling
    assert shapes == [
        (w, half // 2**stage, half // 2**stage) for stage, w in enumerate([8, 16, 32, 64]) for _ in "ab"
    ]


def test_stochastic_depth_rises_over_the_blocks_and_is_off_in_eval():
    torch.manual_seed(0)
    dropping = FoodResNet(num_classes=3, widths=[4, 8], blocks_per_stage=2, drop_path=0.5)
    rates = [block.drop_path.p for block in dropping.blocks]
    assert rates == pytest.approx([0.125, 0.25, 0.375, 0.5])
    for module in dropping.modules():  # branches start at zero (last BN scale 0): give them weight
        if isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.ones_(module.weight)
    keeping = FoodResNet(num_classes=3, widths=[4, 8], blocks_per_stage=2, drop_path=0.0)
    keeping.load_state_dict(dropping.state_dict())
    images = torch.randn(8, 3, 16, 16)
    dropping.eval(), keeping.eval()
    assert torch.allclose(dropping(images), keeping(images)), "eval: every branch counts, unscaled"
    assert torch.equal(dropping(images), dropping(images))
    dropping.train(), keeping.train()
    assert torch.allclose(keeping(images), keeping(images))
    assert not torch.allclose(dropping(images), dropping(images)), "training: branches are dropped at random"


def test_report_cnn_is_the_report_architecture():
    net = ReportCNN(num_classes=11, image_size=64)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [(16, (5, 5)), (32, (5, 5)), (32, (5, 5))]
    assert net.classifier[-1].in_features == 32 * 8 * 8


# --- L2 ----------------------------------------------------------------------------------------------


def test_l2_loss_term_matches_the_formula_by_hand():
    torch.manual_seed(0)
    module = FoodClassifier(FoodCNN(num_classes=3, widths=[4, 8]), adam(), weight_decay=0.1, l2_mode="loss")
    logits, labels = torch.randn(5, 3), torch.tensor([0, 1, 2, 1, 0])
    squared = sum(
        parameter.pow(2).sum()
        for name, parameter in module.net.named_parameters()
        if name.endswith("weight") and parameter.ndim > 1  # conv kernels and the linear matrix, not BN
    )
    expected = F.cross_entropy(logits, labels) + 0.5 * 0.1 * squared
    assert torch.allclose(module.training_loss(logits, labels), expected)
    assert torch.allclose(l2_penalty(module.net, 0.1), 0.5 * 0.1 * squared)
    in_optimizer = FoodClassifier(module.net, adam(), weight_decay=0.1, l2_mode="optimizer")
    assert torch.allclose(in_optimizer.training_loss(logits, labels), F.cross_entropy(logits, labels))


def trained_parameters(module: FoodClassifier, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """All parameters, flattened, after three optimizer steps on one batch."""
    optimizer = module.configure_optimizers()  # not attached to a trainer: the optimizer alone
    for _ in range(3):
        optimizer.zero_grad()
        module.training_loss(module(images), labels).backward()
        optimizer.step()
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def test_l2_in_the_loss_and_in_the_optimizer_give_the_same_update():
    torch.manual_seed(0)
    net = FoodCNN(num_classes=3, widths=[4, 8], dropout=0.0)
    images, labels = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])

    def train(weight_decay: float, mode: str) -> torch.Tensor:
        module = FoodClassifier(copy.deepcopy(net), adam(0.01), weight_decay=weight_decay, l2_mode=mode)
        return trained_parameters(module, images, labels)

    in_optimizer, in_loss, without = train(0.5, "optimizer"), train(0.5, "loss"), train(0.0, "optimizer")
    assert torch.allclose(in_optimizer, in_loss, atol=1e-6)
    assert not torch.allclose(in_optimizer, without, atol=1e-4), "L2 changes the update"


@pytest.mark.parametrize(
    "net", [ReportCNN(num_classes=3, image_size=16), FoodCNN(num_classes=3, widths=[4, 8])], ids=str
)
def test_l2_applies_to_exactly_the_conv_and_linear_weights(net):
    """The shared rule (>= 2-D, not norm layers) picks the set food always decayed: no bias, no BatchNorm."""
    expected = [m.weight for m in net.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)]
    assert [id(p) for p in decayed_parameters(net)] == [id(p) for p in expected]


@pytest.mark.parametrize("mode, decay", [("optimizer", 0.3), ("loss", 0.0)])
def test_the_optimizer_decays_only_the_weights_and_only_in_optimizer_mode(mode, decay):
    module = FoodClassifier(FoodCNN(num_classes=3, widths=[4, 8]), adam(), weight_decay=0.3, l2_mode=mode)
    optimizer = module.configure_optimizers()
    decayed, others = optimizer.param_groups
    assert {id(p) for p in decayed["params"]} == {id(p) for p in decayed_parameters(module.net)}
    assert decayed["weight_decay"] == decay and others["weight_decay"] == 0.0
    assert len(decayed["params"]) + len(others["params"]) == len(list(module.parameters()))


def test_model_configs_give_adam_and_the_per_epoch_cosine_schedule(tmp_path):
    cfg = compose_config(["task=food", "trainer.max_epochs=7", "model.optimizer.lr=0.005"], tmp_path)
    module = model_for_data(cfg)
    configured = module.configure_optimizers()
    optimizer, schedule = configured["optimizer"], configured["lr_scheduler"]
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.defaults["lr"] == 0.005
    assert optimizer.param_groups[0]["weight_decay"] == cfg.weight_decay
    assert isinstance(schedule["scheduler"], torch.optim.lr_scheduler.CosineAnnealingLR)
    assert schedule["scheduler"].T_max == 7 and schedule["interval"] == "epoch"
    report = model_for_data(compose_config(["experiment=food_report_cnn3"], tmp_path))
    constant = report.configure_optimizers()  # the report's setting: Adam 1e-3, no schedule, no L2
    assert isinstance(constant, torch.optim.Adam) and constant.defaults["lr"] == 1e-3
    assert constant.param_groups[0]["weight_decay"] == 0.0


def test_the_module_and_datamodule_offer_what_the_callbacks_declare(tmp_path):
    module = FoodClassifier(FoodCNN(num_classes=3, widths=[4, 8], convs_per_stage=1), adam())
    datamodule = folder_module(tmp_path)
    for protocol, instance in ((FoodModel, module), (FoodData, datamodule)):
        declared = [name for name in vars(protocol) if not name.startswith("_")]
        declared += list(protocol.__annotations__)
        assert all(hasattr(instance, name) for name in declared), protocol.__name__
    layers = module.weight_layers()
    assert [name for name, _ in layers] == ["features.0.0", "features.2.0", "classifier.3"]
    module.train()
    logits = module.predict_images(torch.randn(2, 3, 16, 16))
    assert logits.shape == (2, 3) and not logits.requires_grad and module.training, "eval only inside"


def test_training_accuracy_at_test_time_is_a_callback(tmp_path):
    """test/train_acc: the un-augmented training images, as the figures predict them; the gap subtracts the
    test accuracy the module logs."""
    make_food11(tmp_path / "food11", {"training": 2, "validation": 1, "evaluation": 1}, classes=3)
    datamodule = food11_module(tmp_path, class_names=FOOD11_CLASSES[:3], batch_size=4)
    torch.manual_seed(0)
    module = FoodClassifier(FoodCNN(num_classes=3, widths=[4]), adam())
    trainer = quiet_trainer(callbacks=[TrainAccuracyAtTest()])
    (metrics,) = trainer.test(module, datamodule=datamodule, verbose=False)
    predicted, true = predict_split(module, datamodule, "train")
    assert metrics["test/train_acc"] == pytest.approx((predicted == true).float().mean().item())
    assert metrics["test/train_test_gap"] == pytest.approx(metrics["test/train_acc"] - metrics["test/acc"])
    without = quiet_trainer()
    (plain,) = without.test(module, datamodule=datamodule, verbose=False)
    assert set(plain) == {"test/loss", "test/acc"}, "the module alone makes no extra pass"


# --- test-time averaging -----------------------------------------------------------------------------


class MirrorInvariant(torch.nn.Module):
    """A net that gives the same logits for an image and its mirror, by construction."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.inner = FoodCNN(num_classes=classes, widths=[4, 8], dropout=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) + self.inner(x.flip(-1))


def test_flip_averaging_is_the_mean_of_the_two_passes():
    torch.manual_seed(0)
    images = torch.randn(5, 3, 16, 16)
    invariant = MirrorInvariant(3).eval()
    assert torch.allclose(
        averaged_logits(invariant, images, flip=True, crop=None), invariant(images), atol=1e-6
    )
    net = FoodCNN(num_classes=3, widths=[4, 8]).eval()
    module = FoodClassifier(net, adam(), tta_flip=True)
    plain, mirrored = net(images), net(images.flip(-1))
    assert not torch.allclose(plain, mirrored, atol=1e-4), "a general net sees the mirror differently"
    assert torch.allclose(module.predict_images(images, tta=True), (plain + mirrored) / 2, atol=1e-6)
    assert torch.allclose(module.predict_images(images), plain)


def test_crop_views_are_the_corners_and_centre_resized_back():
    quadrants = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).repeat_interleave(4, 0).repeat_interleave(4, 1)
    images = quadrants.expand(2, 3, 8, 8)
    views = tta_views(images, flip=False, crop=0.5)
    assert len(views) == 6 and torch.equal(views[0], images)
    for view, value in zip(views[1:5], [1.0, 2.0, 3.0, 4.0], strict=True):  # TL, TR, BL, BR
        assert view.shape == images.shape and torch.allclose(view, torch.full_like(view, value))
    assert torch.allclose(views[5], F.interpolate(images[..., 2:6, 2:6], size=(8, 8), mode="bilinear"))
    mirrored = tta_views(images, flip=True, crop=0.5)
    assert len(mirrored) == 12 and all(torch.equal(m, v.flip(-1)) for m, v in zip(mirrored[6:], views))
    with pytest.raises(HW2LabError, match="tta_crop"):
        FoodClassifier(FoodCNN(num_classes=3, widths=[4]), adam(), tta_crop=1.5)
    with pytest.raises(HW2LabError, match="tta_val"):
        FoodClassifier(FoodCNN(num_classes=3, widths=[4]), adam(), tta_val=True)


def test_averaged_metrics_are_logged_beside_the_plain_ones(tmp_path):
    """One test run gives test/acc (as without averaging) and test/acc_tta (the averaged logits), and the
    training accuracy and gap of each."""
    make_food11(tmp_path / "food11", {"training": 2, "validation": 1, "evaluation": 2}, classes=3)
    datamodule = food11_module(tmp_path, class_names=FOOD11_CLASSES[:3], batch_size=4)
    torch.manual_seed(0)
    net = FoodCNN(num_classes=3, widths=[4, 8])
    averaged = FoodClassifier(net, adam(), tta_flip=True, tta_crop=0.75, tta_val=True)
    (metrics,) = quiet_trainer(callbacks=[TrainAccuracyAtTest()]).test(
        averaged, datamodule=datamodule, verbose=False
    )
    plain = FoodClassifier(net, adam())
    (without,) = quiet_trainer(callbacks=[TrainAccuracyAtTest()]).test(
        plain, datamodule=datamodule, verbose=False
    )
    assert set(metrics) == set(without) | {f"{name}_tta" for name in without}
    assert all(metrics[name] == pytest.approx(value) for name, value in without.items()), "plain unchanged"
    for split, prefix in (("test", "test/"), ("train", "test/train_")):
        inputs = datamodule.prepare(datamodule.images[split], training=False)
        logits = averaged.predict_images(inputs, tta=True)
        accuracy = (logits.argmax(dim=1) == datamodule.labels[split]).float().mean().item()
        assert metrics[f"{prefix}acc_tta"] == pytest.approx(accuracy)
    inputs = datamodule.prepare(datamodule.images["test"], training=False)
    loss = F.cross_entropy(averaged.predict_images(inputs, tta=True), datamodule.labels["test"])
    assert metrics["test/loss_tta"] == pytest.approx(loss.item(), rel=1e-5)
    gap = metrics["test/train_acc_tta"] - metrics["test/acc_tta"]
    assert metrics["test/train_test_gap_tta"] == pytest.approx(gap)
    (validated,) = quiet_trainer().validate(averaged, datamodule=datamodule, verbose=False)
    assert set(validated) == {"val/loss", "val/acc", "val/loss_tta", "val/acc_tta"}
    (validated_plain,) = quiet_trainer().validate(
        FoodClassifier(net, adam(), tta_flip=True), datamodule=datamodule, verbose=False
    )
    assert set(validated_plain) == {"val/loss", "val/acc"}, "validation averages only with tta_val"


def test_the_resnet_and_the_70_percent_preset_compose(tmp_path):
    module = model_for_data(compose_config(["task=food", "model=food_resnet"], tmp_path))
    assert isinstance(module.net, FoodResNet) and not module.tta
    assert len(module.net.blocks) == 8 and module.net.blocks[-1].drop_path.p == pytest.approx(0.1)
    cfg = compose_config(["experiment=food_70"], tmp_path)
    preset = model_for_data(cfg)
    assert isinstance(preset.net, FoodResNet) and preset.tta_flip and preset.tta_crop is None
    assert cfg.data.image_size == 48 and preset.mix_prob == 1.0 and preset.label_smoothing == 0.1
    default = model_for_data(compose_config(["task=food"], tmp_path))
    assert isinstance(default.net, FoodCNN) and not default.tta, "the default stays without averaging"


# --- real data -------------------------------------------------------------------------------------


def test_validation_is_a_seeded_stratified_carve_out():
    labels = [label for label in range(4) for _ in range(25 + 5 * label)]  # 25, 30, 35, 40 per class
    fit, val = stratified_split(labels, [0.8, 0.2], seed=3)
    assert sorted(fit + val) == list(range(len(labels))), "every position in exactly one part"
    per_class = torch.bincount(torch.tensor([labels[i] for i in val])).tolist()
    assert per_class == [5, 6, 7, 8], "20 % of each class"
    assert stratified_split(labels, [0.8, 0.2], seed=3) == [fit, val]
    assert stratified_split(labels, [0.8, 0.2], seed=4)[1] != val


def test_real_food101_10class_uses_the_official_split(real_data_dir):
    """The default data on the real copy: Food-101's meta lists (375 / 125 photos per class, all present);
    a seeded 20 % of each class's training list (75) is the validation split."""
    cfg = compose_config(["task=food", f"paths.data_dir={real_data_dir}"])
    datamodule = build(cfg.data)
    files = datamodule.list_files()
    counts = {split: torch.bincount(torch.tensor(files[split].labels)).tolist() for split in files}
    assert counts == {"train": [300] * 10, "val": [75] * 10, "test": [125] * 10}
    meta = real_data_dir / "food101_10class" / "meta"

    def keys(paths: list[Path]) -> set[str]:
        return {f"{path.parent.name}/{path.stem}" for path in paths}

    listed = {split: set((meta / f"{split}.txt").read_text().split()) for split in ("train", "test")}
    assert keys(files["train"].paths) | keys(files["val"].paths) == listed["train"]
    assert not keys(files["train"].paths) & keys(files["val"].paths)
    assert keys(files["test"].paths) == listed["test"]
    for files_of_split in files.values():  # the label is the folder's class
        names = [datamodule.class_names[label] for label in files_of_split.labels]
        assert names == [path.parent.name for path in files_of_split.paths]
    images, labels = decode_images(files["test"].subset(range(0, 1250, 125)), image_size=64, crop=None)
    assert images.shape == (10, 3, 64, 64) and labels.tolist() == list(range(10))
    assert 20 < images.float().mean() < 235, "real photos, not blank"


# --- end to end --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_weight_decay_sweep_end_to_end(cli, tmp_path):
    data_dir = tmp_path / "data"
    make_food11(data_dir / "food11", {"training": 3, "validation": 1, "evaluation": 2})
    result = cli(
        [
            "-m",
            "task=food",
            "data=food11",
            "model.weight_decay=0,1e-4",
            "trainer=debug",
            "trainer.max_epochs=2",
            "data.image_size=16",
            "data.batch_size=8",
            "model.net.widths=[8,16]",
            "model.mix_prob=1.0",  # every batch mixed (Mixup or CutMix) and colour-jittered: the paths run
            "data.color_jitter=0.3",
            "callbacks.test_figures.gallery_size=6",
            "callbacks.feature_maps.channels=4",
        ],
        data_dir=data_dir,
    )
    sweep = tmp_path / "sweep"
    jobs = [assert_run_outputs(sweep / str(number), FIGURES) for number in (0, 1)]
    for job, weight_decay in zip(jobs, (0.0, 1e-4), strict=True):
        assert job["hparams"]["model.weight_decay"] == weight_decay
        metrics = job["metrics"]
        assert 0 <= metrics["test/acc"] <= 1 and 0 <= metrics["test/train_acc"] <= 1
        assert math.isclose(
            metrics["test/train_test_gap"], metrics["test/train_acc"] - metrics["test/acc"], abs_tol=1e-6
        )
    assert jobs[0]["metrics"]["train/l2"] == 0 and jobs[1]["metrics"]["train/l2"] > 0
    history = (sweep / "0" / "history.csv").read_text().splitlines()
    assert len(history) == 3 and all(
        k in history[0] for k in ("train/acc", "val/acc", "val/loss", "train/l2")
    )
    assert (sweep / "summary.csv").is_file() and (sweep / "summary.md").is_file()
    assert (sweep / "comparison.png").stat().st_size > 10_000
    assert "model.weight_decay=0.0001" in (sweep / "summary.md").read_text()

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(sweep / "1" / "tensorboard"), size_guidance={"histograms": 0})
    events.Reload()
    histograms = events.Tags()["histograms"]
    assert "classifier.3.weight" in histograms and "features.0.0.weight" in histograms
    assert len(events.Histograms("classifier.3.weight")) == 2, "one histogram per epoch"
    assert result.returncode == 0


@pytest.mark.slow
def test_bad_config_value_fails_before_training_in_one_line(cli, tmp_path):
    result = cli(["task=food", "l2_mode=decoupled", "trainer=debug"], data_dir=tmp_path, expect_ok=False)
    assert result.returncode != 0
    assert "l2_mode must be one of" in result.stderr and "Traceback" not in result.stderr
