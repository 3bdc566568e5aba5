"""Training throughput of the food task: Lightning (as run.py trains) against a plain PyTorch loop.

Both train the same network (same initial weights) on the same in-memory uint8 images, with the same
per-batch augmentation, loss and optimizer; rounds alternate between the two so a shared machine's load
hits both alike. Reported: images/s per round, the median of each, and the ratio.

    HW2LAB_DATA_DIR=../shared/data python bench/food.py --epochs 3 --rounds 3
    python bench/food.py --model food_cnn3          # the report's CNN

Without HW2LAB_DATA_DIR (or with --synthetic) it trains on random images of the same shape. The result
also goes to a JSON file (--out; default under bench/results/).
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time

import lightning as L
import torch

from datamodules.tensor_batches import TensorBatches
from hw2lab.compose import compose_config, write_bench_result
from hw2lab.pipeline import build


def load(model: str, synthetic: bool, image_size: int):
    overrides = ["task=food", f"model={model}", f"data.image_size={image_size}"]
    cfg = compose_config(overrides, output_dir="/tmp/hw2lab-bench-food")
    datamodule = build(cfg.data)
    if synthetic:
        generator = torch.Generator().manual_seed(0)
        count, classes = 590, len(datamodule.class_names)
        datamodule.split_tensors = {
            split: (
                torch.randint(
                    0, 256, (count, 3, image_size, image_size), dtype=torch.uint8, generator=generator
                ),
                torch.arange(count) % classes,
            )
            for split in ("train", "val", "test")
        }
    else:
        datamodule.setup()
    torch.manual_seed(0)
    module = build(cfg.model)
    module.build_net(datamodule.net_inputs())
    return datamodule, module


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
    configured = module.configure_optimizers()  # the schedule, if any, is not stepped: a few epochs only
    optimizer = configured["optimizer"] if isinstance(configured, dict) else configured
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
    parser.add_argument("--out", help="the result's JSON file (default: bench/results/food-<time>.json)")
    args = parser.parse_args()
    synthetic = args.synthetic or not os.environ.get("HW2LAB_DATA_DIR")
    datamodule, template = load(args.model, synthetic, args.image_size)
    train_images = len(datamodule.images["train"])
    data_name = datamodule.root.split("/")[0]  # e.g. food101_10class
    print(
        f"food bench: model={args.model}, {train_images} training images of {args.image_size}px "
        f"({'synthetic' if synthetic else 'real ' + data_name}), batch {datamodule.batch_size}, "
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
    ratio = medians["lightning"] / medians["plain"]
    print(f"lightning / plain = {ratio:.3f}")
    result = {
        "model": args.model,
        "data": "synthetic" if synthetic else data_name,
        "train_images": train_images,
        "image_size": args.image_size,
        "batch_size": datamodule.batch_size,
        "epochs_per_round": args.epochs,
        "torch_threads": torch.get_num_threads(),
        "images_per_s": rates,
        "median_images_per_s": medians,
        "lightning_over_plain": ratio,
    }
    write_bench_result("food", result, args.out)


if __name__ == "__main__":
    main()
