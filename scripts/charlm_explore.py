"""Char-LM exploration loop: a preset variant trained on a fixed character budget, val BPC at the end.

The 15-minute bench (bench/charlm.py) needs both cores alone; this plain loop runs one thread per
process, so two variants can be compared side by side. It trains the model that the task config (plus
Hydra overrides) describes (`model.net`), on the same stream batches, with the module's optimiser
(`model.optimizer` on hw2lab.training's parameter groups) on a cosine (hw2lab.training.cosine_decay) from
the optimiser's rate down to `model.scheduler.min_lr_ratio` of it at the last step of `--mchars` million
training characters (the characters the bench trains in 15 minutes: about 6.6 M), clipping at
`trainer.gradient_clip_val`, as the module does. It then scores the whole validation stream with the final
weights and, for each `--ema` decay, with an exponential moving average of the weights kept alongside
(cheap: one lerp per parameter per step).

    HW2LAB_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python scripts/charlm_explore.py --mchars 6.6 \
        --ema 0.999 seed=1 model.optimizer.weight_decay=0.1
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch
from hydra.utils import instantiate

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from datamodules.charlm import CharTextDataModule  # noqa: E402
from hw2lab.compose import compose_config  # noqa: E402
from hw2lab.training import cosine_decay, parameter_groups  # noqa: E402
from lightning_modules.charlm import plain_step, stream_bpc  # noqa: E402


def steps_for(datamodule: CharTextDataModule, budget: float) -> int:
    """The training steps the loop below takes to read `budget` characters (epochs of the same batches)."""
    sizes = [batch.inputs.numel() for batch in datamodule.train_dataloader()]
    chars, steps = 0, 0
    while chars < budget:
        for size in sizes:
            if chars >= budget:
                break
            chars += size
            steps += 1
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mchars", type=float, default=6.6, help="training budget, million characters")
    parser.add_argument(
        "--ema", type=float, action="append", default=[], help="an EMA decay to score as well (repeatable)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. seed=1 model.net.dropout=0.1")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    cfg = compose_config(["task=charlm", *args.overrides])
    torch.manual_seed(cfg.seed)
    datamodule: CharTextDataModule = instantiate(cfg.data)
    datamodule.setup("fit")
    net = instantiate(cfg.model.net)(len(datamodule.vocabulary))
    optimizer = instantiate(cfg.model.optimizer)(params=parameter_groups(net))
    budget = args.mchars * 1e6
    min_lr_ratio = (cfg.model.scheduler or {}).get("min_lr_ratio", 1.0)
    scheduler = cosine_decay(optimizer, steps_for(datamodule, budget), min_lr_ratio)
    clip = cfg.trainer.gradient_clip_val
    averages = {decay: copy.deepcopy(net) for decay in args.ema}
    hp, opt = cfg.model.net, cfg.model.optimizer
    print(
        f"seed={cfg.seed} cell={hp.cell} embedding={hp.embedding_dim} hidden={hp.hidden_size} "
        f"layers={hp.num_layers} dropout={hp.dropout} optimizer={opt._target_} lr={opt.lr} "
        f"weight_decay={opt.get('weight_decay')} min_lr_ratio={min_lr_ratio} clip={clip} "
        f"batch={cfg.data.batch_size} time_step={cfg.time_step} budget={args.mchars}M chars ema={args.ema}",
        flush=True,
    )

    chars, steps, epoch, started = 0, 0, 0, time.perf_counter()
    while chars < budget:
        epoch += 1
        hidden = None
        for batch in datamodule.train_dataloader():
            if chars >= budget:
                break
            _, hidden = plain_step(net, optimizer, batch, hidden, clip)
            scheduler.step()
            with torch.no_grad():
                for decay, average in averages.items():
                    for kept, current in zip(average.parameters(), net.parameters()):
                        kept.lerp_(current, 1 - decay)
            chars += batch.inputs.numel()
            steps += 1
        print(
            f"  epoch {epoch}: {chars / 1e6:.2f}M chars, {time.perf_counter() - started:.0f} s",
            flush=True,
        )

    elapsed = time.perf_counter() - started
    scores = [f"val BPC {stream_bpc(net, datamodule.val_dataloader()):.4f}"]
    scores += [
        f"EMA {decay}: {stream_bpc(average, datamodule.val_dataloader()):.4f}"
        for decay, average in averages.items()
    ]
    print(
        f"result: {steps} steps, {chars / 1e6:.2f}M chars, {chars / elapsed:.0f} chars/s; {'; '.join(scores)}",
        flush=True,
    )


if __name__ == "__main__":
    main()
