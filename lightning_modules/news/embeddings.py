"""The word models' embedding (`model.embedding`): GloVe-initialised or random, made once the vocabulary
built on the training split is known."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from datamodules.news.glove import load_glove
from hw2lab.data_files import require
from hw2lab.errors import check

log = logging.getLogger("hw2lab")


def glove_embedding(path: Path, itos: list[str], freeze: bool) -> nn.Embedding:
    """An embedding initialised from GloVe; words GloVe lacks (and <unk>) get random vectors of the
    same scale, <pad> (index 0) stays zero. Logs the vocabulary's coverage."""
    vectors, found = load_glove(path, itos)
    scale = vectors[found].std().item() if found.sum() > 1 else 1.0
    generator = torch.Generator().manual_seed(0)
    random_rows = torch.randn(vectors.shape, generator=generator) * scale
    weights = torch.where(found[:, None], vectors, random_rows)
    weights[0] = 0
    coverage = found[2:].float().mean().item() if len(itos) > 2 else 0.0
    log.info(
        "GloVe %s: dimension %d, covers %d of %d vocabulary words (%.1f%%); embeddings %s",
        path.name,
        vectors.shape[1],
        int(found[2:].sum()),
        len(itos) - 2,
        100 * coverage,
        "frozen" if freeze else "fine-tuned",
    )
    embedding = nn.Embedding.from_pretrained(weights, freeze=freeze, padding_idx=0)
    embedding.glove_coverage = coverage
    return embedding


class WordEmbedding:
    """How a word model's embedding is made once the vocabulary is known (`model.embedding`): from the
    GloVe file `glove_file` (relative to `data_dir`; its dimension is read from the file), or random of
    dimension `dim` without one; `freeze` keeps it fixed. A missing GloVe file fails when the config is
    instantiated, before the data is read."""

    def __init__(
        self, data_dir: str = ".", glove_file: str | None = None, dim: int = 50, freeze: bool = False
    ) -> None:
        check(dim > 0, f"model.embedding.dim must be > 0, got {dim}")
        self.glove_path = require(data_dir, glove_file) if glove_file else None
        self.dim, self.freeze = dim, freeze

    def __call__(self, itos: list[str], dim: int | None = None) -> nn.Embedding:
        """The embedding of the words `itos`. With `dim` (restoring a checkpoint, whose weights replace
        these), a blank one of that dimension: the GloVe file is not read."""
        check(len(itos) > 2, "the vocabulary is empty: no training tokens survived the text pipeline")
        if self.glove_path is not None and dim is None:
            return glove_embedding(self.glove_path, itos, self.freeze)
        embedding = nn.Embedding(len(itos), dim or self.dim, padding_idx=0)
        embedding.weight.requires_grad_(not self.freeze)
        return embedding
