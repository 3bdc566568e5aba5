"""Char-LM bench: Lightning vs a plain PyTorch loop, side by side in one process, and BPC after a time budget.

1. Throughput (characters/s): the default preset's model, optimiser (and its parameter groups), gradient
   clipping and stream batches, trained for the same steps by a hand-written loop
   (lightning_modules.charlm.plain_step: hidden state carried and detached, as the module does) and by the
   project's Trainer + CharLMModule, back to back, `--repeats` times, so load from other processes hits
   both alike; the median of the per-repeat ratios is reported. Goal: Lightning >= 0.95x plain.
2. With `--minutes M` (> 0): the preset trained by the Trainer as configured (its `trainer.max_epochs`,
   and the learning-rate schedule planned over them), stopped early only if M minutes of wall clock
   (validation epochs included) run out first, then scored on the whole validation stream. Goal: val
   BPC <= 2.05 within 15 minutes.

The result is printed and written as JSON (`--out`, default bench/results/charlm-<time>.json).

    HW2LAB_DATA_DIR=../shared/data python bench/charlm.py --steps 60 --repeats 3 --minutes 15
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import lightning as L
import torch
from hydra.utils import instantiate

from datamodules.charlm import CharTextDataModule
from hw2lab.compose import compose_config, write_bench_result
from hw2lab.step_timer import StepTimer
from hw2lab.training import parameter_groups
from lightning_modules.charlm import CharLMModule, plain_step


def plain_loop(cfg, datamodule: CharTextDataModule, steps: int, warmup: int) -> float:
    """Characters/s of a hand-written truncated-BPTT loop on the same model, optimiser and batches (the
    learning-rate schedule is left out: a few multiplications per step)."""
    torch.manual_seed(cfg.seed)
    net = instantiate(cfg.model.net)(len(datamodule.vocabulary))
    optimizer = instantiate(cfg.model.optimizer)(params=parameter_groups(net))
    net.train()
    hidden, chars, started = None, 0, 0.0
    for step, batch in enumerate(datamodule.train_dataloader()):
        if step == warmup:
            started, chars = time.perf_counter(), 0
        if step == warmup + steps:
            break
        _, hidden = plain_step(net, optimizer, batch, hidden, cfg.trainer.gradient_clip_val)
        chars += batch.inputs.numel()
    return chars / (time.perf_counter() - started)


def lightning_loop(cfg, datamodule: CharTextDataModule, steps: int, warmup: int) -> float:
    torch.manual_seed(cfg.seed)
    module: CharLMModule = instantiate(cfg.model)
    timer = StepTimer(warmup, count=lambda batch: batch.inputs.numel())  # batches [warmup, warmup + steps)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=warmup + steps,
        gradient_clip_val=cfg.trainer.gradient_clip_val,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(module, datamodule=datamodule)
    return timer.counted / timer.seconds


def bpc_after(cfg, datamodule: CharTextDataModule, minutes: float) -> tuple[float, int, float]:
    """Train the preset (its max_epochs, at most `minutes` of wall clock); return (val BPC on the whole
    stream, steps, epochs)."""
    torch.manual_seed(cfg.seed)
    module: CharLMModule = instantiate(cfg.model)
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=cfg.trainer.max_epochs,
        max_time={"seconds": minutes * 60},
        gradient_clip_val=cfg.trainer.gradient_clip_val,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=datamodule)
    result = trainer.validate(module, datamodule=datamodule, verbose=False)[0]  # [0]: the streamed loader
    epochs = trainer.global_step / len(datamodule.train_dataloader())
    return result["val/bpc"], trainer.global_step, epochs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=60, help="timed training steps per throughput run")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before each throughput run")
    parser.add_argument("--repeats", type=int, default=3, help="alternating plain/Lightning runs")
    parser.add_argument("--minutes", type=float, default=0.0, help="train for this long and report val BPC")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--out", default=None, help="result JSON (default: bench/results/charlm-<time>.json)")
    parser.add_argument(
        "overrides", nargs="*", help="Hydra overrides, e.g. cell=gru model.net.hidden_size=512"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    cfg = compose_config(["task=charlm", *args.overrides])
    datamodule: CharTextDataModule = instantiate(cfg.data)
    datamodule.setup("fit")
    net, optimizer, scheduler = cfg.model.net, cfg.model.optimizer, cfg.model.scheduler
    schedule = "constant" if scheduler is None else scheduler._target_.rsplit(".", 1)[-1]
    if scheduler is not None and "min_lr_ratio" in scheduler:
        schedule += f" (min_lr_ratio={scheduler.min_lr_ratio})"
    preset = (
        f"cell={net.cell} embedding={net.embedding_dim} hidden={net.hidden_size} layers={net.num_layers} "
        f"batch={cfg.data.batch_size} time_step={cfg.time_step} dropout={net.dropout} mode={cfg.mode} "
        f"lr={optimizer.lr} weight_decay={optimizer.weight_decay} schedule={schedule} "
        f"clip={cfg.trainer.gradient_clip_val} max_epochs={cfg.trainer.max_epochs}"
    )
    print(f"preset: {preset}; torch threads {torch.get_num_threads()}")
    result = {"preset": preset, "overrides": args.overrides, "threads": torch.get_num_threads()}

    plain, lightning = [], []
    for repeat in range(args.repeats):
        plain.append(plain_loop(cfg, datamodule, args.steps, args.warmup))
        lightning.append(lightning_loop(cfg, datamodule, args.steps, args.warmup))
        print(f"  repeat {repeat + 1}: plain {plain[-1]:.0f} chars/s, Lightning {lightning[-1]:.0f} chars/s")
    # Each repeat runs the two loops back to back, so their ratio sees about the same load from other
    # processes; the median of those ratios is the number to read on a shared machine.
    ratio = statistics.median(ours / theirs for ours, theirs in zip(lightning, plain))
    verdict = "met" if ratio >= 0.95 else "NOT met"
    print(
        f"throughput: plain {statistics.median(plain):.0f} chars/s, Lightning {statistics.median(lightning):.0f} "
        f"chars/s (medians of {args.repeats}); Lightning/plain per repeat "
        f"{', '.join(f'{ours / theirs:.3f}' for ours, theirs in zip(lightning, plain))}, median {ratio:.3f} "
        f"(goal >= 0.95: {verdict})"
    )
    result["throughput"] = {
        "plain_chars_per_s": plain,
        "lightning_chars_per_s": lightning,
        "ratio_per_repeat": [ours / theirs for ours, theirs in zip(lightning, plain)],
        "median_ratio": ratio,
        "goal": ">= 0.95",
        "met": ratio >= 0.95,
    }

    if args.minutes > 0:
        started = time.perf_counter()
        bpc, steps, epochs = bpc_after(cfg, datamodule, args.minutes)
        elapsed = (time.perf_counter() - started) / 60
        verdict = "met" if bpc <= 2.05 else "NOT met"
        print(
            f"trained {epochs:.2f} of {cfg.trainer.max_epochs} epochs ({steps} steps) under a {args.minutes:g}-minute "
            f"cap; {elapsed:.1f} min with the final validation: val BPC {bpc:.4f} = {bpc * math.log(2):.4f} nats "
            f"(goal <= 2.05 within 15 min: {verdict if args.minutes <= 15 else 'n/a, budget over 15 min'})"
        )
        result["quality"] = {
            "minutes": args.minutes,
            "val_bpc": bpc,
            "steps": steps,
            "epochs": epochs,
            "elapsed_minutes": elapsed,
            "goal": "val bpc <= 2.05 within 15 minutes",
            "met": bpc <= 2.05 if args.minutes <= 15 else None,
        }
    write_bench_result("charlm", result, args.out)


if __name__ == "__main__":
    main()
