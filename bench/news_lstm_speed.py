"""Speed of the news LSTM's recurrence: `PaddedLSTM` (what the task uses) against torch's packed nn.LSTM
with the same weights, on the same batches, in one process.

Both read the real articles of `experiment=news_lstm_full` (full text, first 400 word tokens, batch 32); a
step is forward + backward of the biLSTM over GloVe-sized inputs. The two alternate batch by batch so a
busy machine slows both alike. The maximum difference of their outputs is printed as a check that they
compute the same thing.

    HW2LAB_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python bench/news_lstm_speed.py --batches 20

The result is printed and written as JSON (`--out`, default under bench/results/).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from hw2lab.compose import compose_config, write_bench_result
from hw2lab.pipeline import build
from lightning_modules.news.nets import PaddedLSTM


def packed_twin(padded: PaddedLSTM) -> torch.nn.LSTM:
    """A one-layer bidirectional nn.LSTM holding the same weights as `padded`."""
    twin = torch.nn.LSTM(
        padded.forward_layers[0].input_size, padded.hidden_size, batch_first=True, bidirectional=True
    )
    for suffix, layer in (("", padded.forward_layers[0]), ("_reverse", padded.backward_layers[0])):
        for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(twin, f"{kind}_l0{suffix}").data.copy_(getattr(layer, f"{kind}_l0"))
    return twin


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=20, help="training batches timed per implementation")
    parser.add_argument("--max-length", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="the result's JSON file (default: under bench/results/)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    cfg = compose_config(
        [
            "experiment=news_lstm_full",
            f"data.max_length={args.max_length}",
            f"data.batch_size={args.batch_size}",
        ]
    )
    datamodule = build(cfg.data)
    datamodule.setup()
    ids, lengths, _ = datamodule.split_tensors["train"]
    embedding = torch.nn.Embedding(len(datamodule.vocab), 50, padding_idx=0)
    padded = PaddedLSTM(50, args.hidden, bidirectional=True)
    packed = packed_twin(padded)

    order = torch.randperm(len(ids))
    seconds: dict[str, list[float]] = {"packed": [], "padded": []}
    largest_difference = 0.0
    for start in range(0, args.batches * args.batch_size, args.batch_size):
        rows = order[start : start + args.batch_size]
        if len(rows) == 0:
            break
        batch_lengths = lengths[rows]
        inputs = embedding(ids[rows, : int(batch_lengths.max())]).detach().requires_grad_()
        began = time.perf_counter()
        sequence = pack_padded_sequence(inputs, batch_lengths, batch_first=True, enforce_sorted=False)
        reference, _ = pad_packed_sequence(packed(sequence)[0], batch_first=True)
        reference.sum().backward()
        seconds["packed"].append(time.perf_counter() - began)
        began = time.perf_counter()
        outputs, _ = padded(inputs, batch_lengths)
        real = torch.arange(inputs.shape[1])[None, :] < batch_lengths[:, None]
        (outputs * real[:, :, None]).sum().backward()
        seconds["padded"].append(time.perf_counter() - began)
        largest_difference = max(largest_difference, (outputs[real] - reference[real]).abs().max().item())

    packed_s, padded_s = (statistics.median(seconds[k]) for k in ("packed", "padded"))
    print(
        f"news LSTM step (forward + backward, biLSTM 50 -> {args.hidden}, batch {args.batch_size}, "
        f"<= {args.max_length} tokens, {len(seconds['packed'])} real training batches, {args.threads} thread(s))"
    )
    print(f"  packed nn.LSTM  median {packed_s * 1000:8.1f} ms per step")
    print(f"  PaddedLSTM      median {padded_s * 1000:8.1f} ms per step")
    print(
        f"  speed-up packed/padded: {packed_s / padded_s:.2f}x   largest output difference: {largest_difference:.2e}"
    )
    result = {
        "batches": len(seconds["packed"]),
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "hidden": args.hidden,
        "threads": args.threads,
        "packed_median_ms": packed_s * 1000,
        "padded_median_ms": padded_s * 1000,
        "speed_up": packed_s / padded_s,
        "largest_output_difference": largest_difference,
    }
    write_bench_result("news_lstm_speed", result, args.out)


if __name__ == "__main__":
    main()
