"""Frozen-encoder bench: what the pretrained Transformer's features know before any fine-tuning.

Every article is embedded once by the encoder exactly as it was pretrained (no gradient, dropout off): the
masked mean of its last-layer token states in each window of `--max-length` tokens (the data module's
`data.windows`, at most 8 windows from the start), L2-normalised and averaged over the article's windows.
Logistic regression is then fitted on each fold's training split of the same grouped, stratified K-fold
split as `bench/news.py --folds K` (seeded 42), its C chosen by the pooled validation accuracy, and scored
on the test folds; TF-IDF (1-2-gram) + logistic regression is fitted on the same training splits beside it.
Read it against the fine-tuned model's figure under `bench/news.py --folds K` on the same folds: the
difference is what fine-tuning adds; where the frozen features match the fine-tuned model, the encoder, not
the recipe, is the limit.

    HW2LAB_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python bench/news_frozen.py --text title --max-length 64
    HW2LAB_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python bench/news_frozen.py --text full --max-length 256

The table is printed and written as JSON (`--out`, default under bench/results/).
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings

import numpy as np
import torch
import transformers
from sklearn.linear_model import LogisticRegression

from hw2lab.compose import bench_config, write_bench_result
from hw2lab.pipeline import build
from lightning_modules.news.baselines import tfidf_baseline
from lightning_modules.news.nets import load_pretrained_encoder, masked_mean

SPLITS = ("train", "val", "test")


@torch.inference_mode()
def embed_articles(datamodule, encoder: torch.nn.Module, batch_size: int) -> dict[str, np.ndarray]:
    """Article id -> the mean over its windows of the L2-normalised masked-mean token state."""
    vectors: dict[str, np.ndarray] = {}
    for split in SPLITS:
        input_ids, mask, _ = datamodule.split_tensors[split]
        present = mask[:, :, 0].bool()  # (articles, windows): the windows an article has
        owner = present.nonzero()[:, 0]
        flat_ids, flat_mask = input_ids[present], mask[present]
        pooled = []
        for start in range(0, len(flat_ids), batch_size):
            ids, m = flat_ids[start : start + batch_size], flat_mask[start : start + batch_size]
            width = int(m.sum(1).max())  # windows are padded to max_length: trim the common padding
            states = encoder(input_ids=ids[:, :width], attention_mask=m[:, :width]).last_hidden_state
            pooled.append(torch.nn.functional.normalize(masked_mean(states, m[:, :width]), dim=-1))
        per_window = torch.cat(pooled)
        summed = torch.zeros(len(input_ids), per_window.shape[1]).index_add_(0, owner, per_window)
        means = summed / present.sum(1, keepdim=True)
        vectors.update(zip(datamodule.ids(split), means.numpy()))
    return vectors


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--text", default="title", choices=["title", "body", "full"])
    parser.add_argument("--folds", type=int, default=7)
    parser.add_argument("--max-length", type=int, default=256, help="tokens per window")
    parser.add_argument("--c", default="0.1,1,10,100", help="logistic regression C values to choose from")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--override", nargs="*", default=[], help="extra Hydra overrides (data, model)")
    parser.add_argument("--out", default=None, help="the result's JSON file (default: under bench/results/)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s", datefmt="%H:%M:%S")
    warnings.filterwarnings("ignore")
    transformers.utils.logging.disable_progress_bar()
    started = time.perf_counter()
    folds, baselines, vectors = [], [], {}
    encoder = None
    for fold in range(args.folds):
        overrides = [
            f"text={args.text}",
            "model=transformer",
            "data.windows=true",
            f"data.max_length={args.max_length}",
            f"data.folds={args.folds}",
            f"data.fold={fold}",
            *args.override,
        ]
        cfg = bench_config(["task=news", *overrides])
        datamodule = build(cfg.data)
        if encoder is None:
            pretrained = cfg.model.net.encoder.pretrained
            encoder = load_pretrained_encoder(pretrained).eval()
            seeds = cfg.data.seed
        if not all(i in vectors for s in SPLITS for i in datamodule.ids(s)):
            vectors.update(embed_articles(datamodule, encoder, args.batch_size))
        folds.append({s: (datamodule.ids(s), np.asarray(datamodule.labels(s))) for s in SPLITS})
        baselines.append(tfidf_baseline(datamodule, cross_validate=False))
    embedded = time.perf_counter() - started

    def pooled_accuracy(c: float) -> dict[str, tuple[float, list[float]]]:
        """Per split (val, test): the pooled accuracy over the folds and each fold's, one fit per fold."""
        right = {s: [] for s in ("val", "test")}
        for fold in folds:
            features = {s: np.stack([vectors[i] for i in fold[s][0]]) for s in SPLITS}
            model = LogisticRegression(C=c, max_iter=5000).fit(features["train"], fold["train"][1])
            for split in right:
                right[split].append(
                    (int((model.predict(features[split]) == fold[split][1]).sum()), len(fold[split][1]))
                )
        return {
            split: (sum(r for r, _ in counts) / sum(n for _, n in counts), [r / n for r, n in counts])
            for split, counts in right.items()
        }

    print(
        f"\nnews frozen-encoder bench: text={args.text}, {pretrained} frozen, windows of {args.max_length} "
        f"tokens, {args.folds}-fold cross-validation (grouped, stratified, folds seeded {seeds}); "
        f"{len(vectors)} articles embedded, {embedded:.0f} s with the TF-IDF fits"
    )
    print("| logistic regression C | pooled val acc | pooled test acc | test acc per fold |")
    print("|---|---|---|---|")
    results = {}
    for c in (float(v) for v in args.c.split(",")):
        scores = pooled_accuracy(c)
        (val, _), (test, per_fold) = scores["val"], scores["test"]
        results[c] = (val, test)
        print(f"| {c:g} | {val:.4f} | {test:.4f} | {' / '.join(f'{a:.4f}' for a in per_fold)} |")
    chosen = max(results, key=lambda c: results[c][0])
    sizes = [len(fold["test"][1]) for fold in folds]
    tfidf = sum(b["test"] * n for b, n in zip(baselines, sizes)) / sum(sizes)
    print(
        f"chosen by validation: C={chosen:g}, pooled test {results[chosen][1]:.4f} over {sum(sizes)} articles; "
        f"TF-IDF(1-2-gram)+LogReg on the same folds {tfidf:.4f} ({results[chosen][1] - tfidf:+.4f})"
    )
    result = {
        "text": args.text,
        "pretrained": pretrained,
        "window_tokens": args.max_length,
        "folds": args.folds,
        "articles": sum(sizes),
        "by_c": {
            str(c): {"pooled_val_acc": val, "pooled_test_acc": test} for c, (val, test) in results.items()
        },
        "chosen_c": chosen,
        "pooled_val_acc": results[chosen][0],
        "pooled_test_acc": results[chosen][1],
        "tfidf_pooled_test_acc": tfidf,
        "embed_and_tfidf_s": round(embedded, 1),
    }
    write_bench_result("news_frozen", result, args.out)


if __name__ == "__main__":
    main()
