"""Char-LM exploration loop: a preset variant trained on a fixed character budget, val BPC at the end.

The 15-minute bench (bench/charlm.py) needs both cores alone; this plain loop runs one thread per
process, so two variants can be compared side by side. It trains the model that the task config (plus
Hydra overrides) describes, on the same stream batches, with the module's AdamW on a cosine from
`model.lr` down to `model.lr * model.min_lr_ratio` at `--mchars` million training characters (the
characters the bench trains in 15 minutes: about 6.6 M), clipping at `grad_clip`, as the module does. It
then scores the whole validation stream with the final weights and, for each `--ema` decay, with an
exponential moving average of the weights kept alongside (cheap: one lerp per parameter per step).

    HW2LAB_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python bench/charlm_explore.py --mchars 6.6 \
        --ema 0.999 seed=1 model.weight_decay=0.1
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra.utils import instantiate

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "tests")]

from helpers import compose_config  # noqa: E402

from datamodules.charlm import IGNORE_INDEX, CharBatch, CharTextDataModule  # noqa: E402
from lightning_modules.charlm import CharRNN, Hidden, cosine_rate, detach_hidden  # noqa: E402


def plain_step(
    net: CharRNN,
    optimizer: torch.optim.Optimizer,
    batch: CharBatch,
    hidden: Hidden | None,
    grad_clip: float | None,
) -> tuple[torch.Tensor, Hidden]:
    """One hand-written training step as the module takes it: state carried and detached, clipping.
    Returns the loss and the state for the next chunk."""
    logits, hidden = net(batch.inputs, None if batch.reset else hidden)
    loss = F.cross_entropy(logits.flatten(0, 1), batch.targets.flatten(), ignore_index=IGNORE_INDEX)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
    optimizer.step()
    return loss, detach_hidden(hidden)


@torch.no_grad()
def stream_bpc(net: CharRNN, batches: Iterable[CharBatch]) -> float:
    """Bits per character over every scored target of a stream, the state carried (as the module scores)."""
    net.eval()
    nats, scored, hidden = 0.0, 0, None
    for batch in batches:
        logits, hidden = net(batch.inputs, None if batch.reset else hidden)
        targets = batch.targets.flatten()
        nats += F.cross_entropy(
            logits.flatten(0, 1), targets, ignore_index=IGNORE_INDEX, reduction="sum"
        ).item()
        scored += int((targets != IGNORE_INDEX).sum())
    net.train()
    return nats / scored / math.log(2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mchars", type=float, default=6.6, help="training budget, million characters")
    parser.add_argument(
        "--ema", type=float, action="append", default=[], help="an EMA decay to score as well (repeatable)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. seed=1 model.dropout=0.1")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    cfg = compose_config(["task=charlm", *args.overrides])
    hp = cfg.model
    torch.manual_seed(cfg.seed)
    datamodule: CharTextDataModule = instantiate(cfg.data)
    datamodule.setup("fit")
    net = CharRNN(
        len(datamodule.vocabulary), hp.cell, hp.embedding_dim, hp.hidden_size, hp.num_layers, hp.dropout
    )
    optimizer = torch.optim.AdamW(net.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
    averages = {decay: copy.deepcopy(net) for decay in args.ema}
    print(
        f"AdamW seed={cfg.seed} cell={hp.cell} embedding={hp.embedding_dim} "
        f"hidden={hp.hidden_size} layers={hp.num_layers} dropout={hp.dropout} lr={hp.lr} "
        f"min_lr_ratio={hp.min_lr_ratio} weight_decay={hp.weight_decay} batch={cfg.data.batch_size} "
        f"time_step={cfg.time_step} budget={args.mchars}M chars ema={args.ema}",
        flush=True,
    )

    budget = args.mchars * 1e6
    chars, steps, epoch, started = 0, 0, 0, time.perf_counter()
    while chars < budget:
        epoch += 1
        hidden = None
        for batch in datamodule.train_dataloader():
            if chars >= budget:
                break
            for group in optimizer.param_groups:
                group["lr"] = hp.lr * cosine_rate(chars / budget, hp.min_lr_ratio)
            _, hidden = plain_step(net, optimizer, batch, hidden, hp.grad_clip)
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
