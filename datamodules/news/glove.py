"""Reading a GloVe text file (`word v1 ... vD`): the vectors of a vocabulary's words."""

from __future__ import annotations

from pathlib import Path

import torch

from hw2lab.errors import HW2LabError, check


def load_glove(path: Path, itos: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Vectors for the words of `itos` from a GloVe text file (`word v1 ... vD`, D read from the first
    line). Returns (vectors (V, D), found mask (V,)); rows of missing words are zero."""
    wanted = {word: index for index, word in enumerate(itos)}
    vectors: torch.Tensor | None = None
    found = torch.zeros(len(itos), dtype=torch.bool)
    dim = 0
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            word, _, rest = line.rstrip("\n").rstrip().partition(" ")
            if number == 1:
                dim = len(rest.split())
                check(dim > 0, f"{path}: line 1 has no vector after the word (expected 'word v1 ... vD')")
                vectors = torch.zeros(len(itos), dim)
            index = wanted.get(word)
            if index is None and not rest:
                continue
            values = rest.split()
            check(
                len(values) == dim,
                f"{path}: line {number} ({word!r}) has {len(values)} values, expected {dim} as on line 1",
            )
            if index is not None and not found[index]:
                try:
                    vectors[index] = torch.tensor([float(v) for v in values])
                except ValueError:
                    raise HW2LabError(
                        f"{path}: line {number} ({word!r}) has a value that is not a number"
                    ) from None
                found[index] = True
    check(vectors is not None, f"{path} is empty (expected GloVe lines 'word v1 ... vD')")
    return vectors, found
