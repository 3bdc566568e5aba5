"""VAE benchmark: Lightning (as run.py builds it) against a plain PyTorch loop, side by side in one process.

Measures, on the same model, data, batches and seed:
  - training throughput (images/s over the training steps of each epoch, validation excluded), alternating
    plain and Lightning runs so both see the same machine load; reported as the ratio Lightning / plain;
  - test -ELBO (nats per image, λ = 1, single-sample estimate as in training) after the same number of epochs;
  - with --sweep, the wall time of `python run.py -m task=vae kl_weight=0,1,10,100` (the default sweep).

The result is printed and written as JSON (--out, default bench/results/vae-<time>.json).

Usage:
    HW2LAB_DATA_DIR=../shared/data python bench/vae.py --epochs 15 --repeats 3 --sweep
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate

from hw2lab.compose import bench_config, write_bench_result
from hw2lab.step_timer import StepTimer
from lightning_modules.vae import EVAL_NOISE_SEED, VAEOutput, vae_loss

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_lightning(cfg) -> tuple[float, float, int]:
    """Train and test as hw2lab's pipeline does; return (images/s, test -ELBO, train images per epoch)."""
    L.seed_everything(cfg.seed, verbose=False)
    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model)
    timer = StepTimer()  # each epoch's training steps, validation left out
    callbacks = [instantiate(c) for c in cfg.callbacks.values() if c and "_target_" in c] + [timer]
    loggers = [instantiate(c) for c in cfg.logger.values() if c and "_target_" in c]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    trainer.fit(model, datamodule=datamodule)
    (result,) = trainer.test(model, datamodule=datamodule, verbose=False)
    images = len(datamodule.images("train"))
    return images * len(timer.epoch_seconds) / timer.seconds, result["test/neg_elbo"], images


def run_plain(cfg) -> tuple[float, float]:
    """The same model, batches and optimiser (model.optimizer) in a hand-written loop."""
    L.seed_everything(cfg.seed, verbose=False)
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    net = instantiate(cfg.model.net)(**datamodule.net_inputs())
    optimizer = instantiate(cfg.model.optimizer)(params=net.parameters())
    # One minibatch per update, in the same (seed, epoch) order the datamodule gives Lightning.
    train_batches = datamodule.train_dataloader()
    likelihood, kl_weight = cfg.model.likelihood, float(cfg.model.kl_weight)
    seconds = 0.0
    for _ in range(cfg.trainer.max_epochs):
        net.train()
        start = time.perf_counter()
        for (images,) in train_batches:
            mu, logvar = net.encode(images)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            loss = vae_loss(VAEOutput(net.decode(z), mu, logvar), images, likelihood, kl_weight).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        seconds += time.perf_counter() - start
    net.eval()
    total, count = 0.0, 0
    generator = torch.Generator().manual_seed(EVAL_NOISE_SEED)  # the module's evaluation noise
    with torch.no_grad():
        for (images,) in datamodule.test_dataloader():
            mu, logvar = net.encode(images)
            z = mu + torch.randn(mu.shape, generator=generator) * torch.exp(0.5 * logvar)
            total += vae_loss(
                VAEOutput(net.decode(z), mu, logvar), images, likelihood, 1.0
            ).neg_elbo.item() * len(images)
            count += len(images)
    images = len(datamodule.images("train"))
    return images * cfg.trainer.max_epochs / seconds, total / count


def time_default_sweep() -> float:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                str(REPO_ROOT / "run.py"),
                "-m",
                "task=vae",
                "kl_weight=0,1,10,100",
                f"hydra.sweep.dir={tmp}/sweep",
            ],
            check=True,
            cwd=REPO_ROOT,
            capture_output=True,
        )
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument(
        "--repeats", type=int, default=3, help="plain/Lightning pairs, alternated, one seed each"
    )
    parser.add_argument("--model", default="vae_mlp")
    parser.add_argument("--sweep", action="store_true", help="also time the default 4-job λ sweep")
    parser.add_argument("--out", default=None, help="the JSON result (default bench/results/vae-<time>.json)")
    args = parser.parse_args()

    print(
        f"torch {torch.__version__}, lightning {L.__version__}, threads {torch.get_num_threads()}, "
        f"data {os.environ.get('HW2LAB_DATA_DIR', './data')}"
    )
    plain_rates, lightning_rates, plain_elbos, lightning_elbos = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            # Each repeat is its own seed. Evaluation noise comes from its own generator in both, so the
            # training RNG streams are the same and the two -ELBOs should agree to rounding.
            cfg = bench_config(
                [
                    "task=vae",
                    f"model={args.model}",
                    "kl_weight=1",
                    f"trainer.max_epochs={args.epochs}",
                    f"seed={42 + repeat}",
                ],
                tmp,
                logger=True,  # Lightning as run.py builds it
            )
            rate, elbo = run_plain(cfg)
            plain_rates.append(rate)
            plain_elbos.append(elbo)
            rate, elbo, images = run_lightning(cfg)
            lightning_rates.append(rate)
            lightning_elbos.append(elbo)
            print(
                f"seed {cfg.seed}: plain {plain_rates[-1]:.0f} img/s, test -ELBO {plain_elbos[-1]:.2f} | "
                f"lightning {lightning_rates[-1]:.0f} img/s, test -ELBO {lightning_elbos[-1]:.2f}"
            )
    ratio = statistics.median(lightning_rates) / statistics.median(plain_rates)
    print(
        f"\nmodel {args.model}, {args.epochs} epochs, {images} training images, batch {cfg.data.batch_size}, "
        f"one update per Lightning step"
    )
    print(
        f"throughput  plain {statistics.median(plain_rates):.0f} img/s  lightning "
        f"{statistics.median(lightning_rates):.0f} img/s  ratio {ratio:.3f}  (goal >= 0.95)"
    )
    differences = [lit - plain for lit, plain in zip(lightning_elbos, plain_elbos)]
    spread = statistics.stdev(differences) if len(differences) > 1 else float("nan")
    print(
        f"test -ELBO  plain {statistics.mean(plain_elbos):.2f}  lightning {statistics.mean(lightning_elbos):.2f} "
        f"nats/image (mean over {len(differences)} seeds); lightning - plain {statistics.mean(differences):+.2f} "
        f"(sd {spread:.2f})  (goal: lightning <= plain)"
    )
    result = {
        "model": args.model,
        "epochs": args.epochs,
        "repeats": args.repeats,
        "train_images": images,
        "batch_size": cfg.data.batch_size,
        "torch_threads": torch.get_num_threads(),
        "seeds": [42 + repeat for repeat in range(args.repeats)],
        "plain_images_per_s": plain_rates,
        "lightning_images_per_s": lightning_rates,
        "ratio_of_medians": ratio,
        "plain_test_neg_elbo": plain_elbos,
        "lightning_test_neg_elbo": lightning_elbos,
    }
    if args.sweep:
        seconds = time_default_sweep()
        result["default_sweep_seconds"] = seconds
        print(f"default sweep `run.py -m task=vae kl_weight=0,1,10,100`: {seconds:.0f} s (goal <= 600 s)")
    write_bench_result("vae", result, args.out)


if __name__ == "__main__":
    main()
