"""Training throughput of the food task: Lightning (as run.py trains) against a plain PyTorch loop.

Both train the same network (same initial weights) on the same in-memory uint8 images, with the same
per-batch augmentation, loss and optimizer; rounds alternate between the two so a shared machine's load
hits both alike. Reported: images/s per round, the median of each, and the ratio.

    HW2LAB_DATA_DIR=../shared/data python bench/food.py --epochs 3 --rounds 3
    python bench/food.py --model food_cnn3          # the report's CNN

Without HW2LAB_DATA_DIR (or with --synthetic) it trains on random images of the same shape.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

import hw2lab  # noqa: F401  (registers resolvers)
from datamodules.tensor_batches import TensorBatches
from hw2lab.pipeline import build

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def load(model: str, synthetic: bool, image_size: int):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["task=food", f"model={model}", f"data.image_size={image_size}"])
    with open_dict(cfg):
        cfg.paths.output_dir = "/tmp/hw2lab-bench-food"
    datamodule = build(cfg.data)
    if synthetic:
        generator = torch.Generator().manual_seed(0)
        count, classes = 590, len(datamodule.class_names)
        datamodule.images = {
            split: torch.randint(
                0, 256, (count, 3, image_size, image_size), dtype=torch.uint8, generator=generator
            )
            for split in ("train", "val", "test")
        }
        datamodule.labels = {split: torch.arange(count) % classes for split in ("train", "val", "test")}
    else:
        datamodule.setup()
    torch.manual_seed(0)
    return datamodule, build(cfg.model)


def lightning_round(module: L.LightningModule, datamodule, epochs: int) -> float:
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[],
    )
    started = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    return time.perf_counter() - started


def plain_round(module: L.LightningModule, datamodule, epochs: int) -> float:
    """The loop one would write by hand: batches, augmentation, forward (with the module's Mixup/CutMix),
    loss, backward, step."""
    net = module.net
    optimizer = module.configure_optimizers()  # not attached to a trainer: the optimizer alone
    batches = TensorBatches(
        datamodule.images["train"],
        datamodule.labels["train"],
        batch_size=datamodule.batch_size,
        shuffle=True,
        seed=0,
    )
    net.train()
    started = time.perf_counter()
    for _ in range(epochs):
        for images, labels in batches:
            inputs = datamodule.prepare(images, training=True)
            _, loss = module.training_forward(inputs, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="food_cnn", help="food_cnn (default) or food_cnn3")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per timed round")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per loop, alternating")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--synthetic", action="store_true", help="random images instead of the real data")
    args = parser.parse_args()
    synthetic = args.synthetic or not os.environ.get("HW2LAB_DATA_DIR")
    datamodule, template = load(args.model, synthetic, args.image_size)
    train_images = len(datamodule.images["train"])
    print(
        f"food bench: model={args.model}, {train_images} training images of {args.image_size}px "
        f"({'synthetic' if synthetic else 'real food101_subset'}), batch {datamodule.batch_size}, "
        f"{args.epochs} epochs per round, {args.rounds} rounds, torch threads {torch.get_num_threads()}"
    )
    loops = {"lightning": lightning_round, "plain": plain_round}
    for run in loops.values():  # warm-up: allocator, oneDNN kernels, imports
        run(copy.deepcopy(template), datamodule, 1)
    rates: dict[str, list[float]] = {name: [] for name in loops}
    for round_index in range(args.rounds):
        for name, run in loops.items():
            seconds = run(copy.deepcopy(template), datamodule, args.epochs)
            rates[name].append(args.epochs * train_images / seconds)
            print(f"round {round_index + 1} {name:>9}: {rates[name][-1]:7.1f} images/s ({seconds:.1f}s)")
    medians = {name: statistics.median(values) for name, values in rates.items()}
    print("| loop | median images/s | rounds |")
    print("|---|---|---|")
    for name, values in rates.items():
        print(f"| {name} | {medians[name]:.1f} | {', '.join(f'{v:.1f}' for v in values)} |")
    print(f"lightning / plain = {medians['lightning'] / medians['plain']:.3f}")


if __name__ == "__main__":
    main()
