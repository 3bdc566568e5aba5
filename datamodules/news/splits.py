"""Leak-free splits of news articles: duplicates grouped, then split (or folded) whole groups at a time,
stratified by class and seeded."""

from __future__ import annotations

import numpy as np

from hw2lab.errors import check


def group_duplicates(keys_per_article: list[tuple[str, ...]]) -> list[int]:
    """Union-find over articles that share any key: one group id per article."""
    parent = list(range(len(keys_per_article)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_with_key: dict[str, int] = {}
    for index, keys in enumerate(keys_per_article):
        for key in keys:
            if key in first_with_key:
                parent[find(index)] = find(first_with_key[key])
            else:
                first_with_key[key] = index
    return [find(i) for i in range(len(keys_per_article))]


def grouped_stratified_split(
    labels: list[str], groups: list[int], ratios: list[float], seed: int
) -> list[list[int]]:
    """Seeded split of article indices into len(ratios) parts, stratified by label, whole groups at a time
    (duplicates never straddle two splits). Each group goes with its first article's label."""
    check(
        len(ratios) >= 2 and all(r >= 0 for r in ratios), f"split must be 2 or more ratios >= 0, got {ratios}"
    )
    check(abs(sum(ratios) - 1) < 1e-6, f"split ratios must sum to 1, got {ratios}")
    members: dict[int, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    by_label: dict[str, list[int]] = {}
    for group, indices in members.items():
        by_label.setdefault(labels[indices[0]], []).append(group)
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in ratios]
    for label in sorted(by_label):
        label_groups = sorted(by_label[label])
        rng.shuffle(label_groups)
        total = sum(len(members[g]) for g in label_groups)
        targets = np.cumsum(ratios) * total
        taken = 0
        for group in label_groups:
            part = int(np.searchsorted(targets, taken + len(members[group]) / 2))
            part = min(part, len(ratios) - 1)
            parts[part].extend(members[group])
            taken += len(members[group])
    return [sorted(part) for part in parts]


def grouped_fold_split(
    labels: list[str], groups: list[int], folds: int, fold: int, train_val: list[float], seed: int
) -> list[list[int]]:
    """(train, val, test) article indices for fold `fold` of a grouped, stratified `folds`-fold split: the
    test part is that fold, and the other folds are split into train and val at the ratio `train_val`.
    With one seed the folds are disjoint and cover every article, so their test scores pool into a
    cross-validated score of the whole set."""
    parts = grouped_stratified_split(labels, groups, [1 / folds] * folds, seed)
    rest = sorted(i for k, part in enumerate(parts) if k != fold for i in part)
    share = train_val[0] / sum(train_val)
    inner = grouped_stratified_split(
        [labels[i] for i in rest], [groups[i] for i in rest], [share, 1 - share], seed
    )
    return [[rest[i] for i in part] for part in inner] + [parts[fold]]
