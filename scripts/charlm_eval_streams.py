"""How the number of evaluation streams (`data.eval_batch_size`) moves validation BPC.

Each stream starts from a zero hidden state, so splitting the validation text into more streams adds cold
starts. This trains the preset's cell at a small size for one stream epoch (or `--seconds`, whichever ends
first) with a plain loop, then scores the same weights on the whole validation split read as 64, 16, 4 and 1 streams.

    HW2LAB_DATA_DIR=../shared/data python scripts/charlm_eval_streams.py --seconds 240 --threads 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from hydra.utils import instantiate

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from datamodules.charlm import StreamChunks  # noqa: E402
from hw2lab.compose import compose_config  # noqa: E402
from lightning_modules.charlm import CharRNN, plain_step, stream_bpc  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=240)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = compose_config(["task=charlm"])
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    cell, embedding_dim = cfg.model.net.cell, cfg.model.net.embedding_dim
    net = CharRNN(len(datamodule.vocabulary), cell, embedding_dim, args.hidden, 2, 0.1)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.model.optimizer.lr)
    started, hidden, steps = time.perf_counter(), None, 0
    for batch in datamodule.train_dataloader():
        if time.perf_counter() - started > args.seconds:
            break
        steps += 1
        _, hidden = plain_step(net, optimizer, batch, hidden, gradient_clip_val=1.0)
    print(f"2 x {args.hidden} {cell}, trained {steps} steps; time_step {cfg.time_step}")
    for streams in (64, 16, 4, 1):
        started = time.perf_counter()
        bpc = stream_bpc(net, StreamChunks(datamodule.splits["val"], streams, cfg.time_step))
        print(f"{streams:3d} streams: val BPC {bpc:.4f} ({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
