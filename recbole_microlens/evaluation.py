"""Full ranking with the user's history masked: the one evaluation path of every model.

The official MicroLens protocol scores every item, masks the items the user has already seen
(except the target), and reports HR@K and NDCG@K for one held-out item per user.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch

SUPPORTED_METRICS = ("hit", "recall", "ndcg", "mrr")


def mask_scores(scores: torch.Tensor, mask_rows, mask_items, target_rows, target_items) -> None:
    """In place: padding item 0 and the given (row, item) pairs to -inf, targets kept."""
    target_scores = scores[target_rows, target_items].clone()
    scores[:, 0] = -torch.inf
    scores[mask_rows, mask_items] = -torch.inf
    scores[target_rows, target_items] = target_scores


def target_ranks(scores: torch.Tensor, target_rows, target_items) -> torch.Tensor:
    """0-based rank of each target: how many items score strictly higher (ties favour the target)."""
    target_scores = scores[target_rows, target_items].unsqueeze(1)
    return (scores[target_rows] > target_scores).sum(dim=1)


def metrics_from_ranks(ranks: np.ndarray, topk, metrics) -> "OrderedDict[str, float]":
    """HR/Recall/NDCG/MRR@K for one relevant item per evaluated row."""
    ranks = np.asarray(ranks)
    result = OrderedDict()
    names = [name.lower() for name in metrics]
    unknown = sorted(set(names) - set(SUPPORTED_METRICS))
    if unknown:
        raise ValueError(f"metrics {unknown} are not supported; use some of {SUPPORTED_METRICS}")
    for k in topk:  # paper layout: HR@10, NDCG@10, HR@20, NDCG@20
        hit = ranks < k
        for name in names:
            if name in ("hit", "recall"):
                value = hit.mean()
            elif name == "ndcg":
                value = (hit / np.log2(ranks + 2.0)).mean()
            else:
                value = (hit / (ranks + 1.0)).mean()
            result[f"{name}@{k}"] = round(float(value), 6) if len(ranks) else 0.0
    return result


def popularity_groups(train_counts: np.ndarray, num_groups: int) -> np.ndarray:
    """Group 1..``num_groups`` of every item id (0, padding, gets 0) by training popularity.

    Equal-count item groups: items ranked by (training count, id) ascending and cut into
    ``num_groups`` groups of (nearly) the same number of items, so group 1 holds the coldest items
    (those never seen in training first) and the last group the most popular, as the paper's
    Figure 6 numbers its groups.
    """
    items = np.arange(1, len(train_counts))
    ranked = items[np.lexsort((items, train_counts[1:]))]
    groups = np.zeros(len(train_counts), dtype=np.int64)
    groups[ranked] = 1 + np.arange(len(ranked)) * num_groups // max(len(ranked), 1)
    return groups


def metrics_by_popularity(ranks: np.ndarray, target_items: np.ndarray, train_counts: np.ndarray,
                          num_groups: int, topk, metrics) -> dict:
    """``{group: {metric: value, n_users, items, train_count_min, train_count_max}}`` for the
    targets of each popularity group; weighted by ``n_users`` they average to the overall ones."""
    item_groups = popularity_groups(train_counts, num_groups)
    target_groups = item_groups[target_items]
    report = {}
    for group in range(1, num_groups + 1):
        rows, counts = target_groups == group, train_counts[item_groups == group]
        report[str(group)] = {
            **metrics_from_ranks(ranks[rows], topk, metrics),
            "n_users": int(rows.sum()),
            "items": int(counts.size),
            "train_count_min": int(counts.min()) if counts.size else 0,
            "train_count_max": int(counts.max()) if counts.size else 0,
        }
    return report


class RankCollector:
    """Accumulates target ranks, and the target items they belong to, over evaluation batches."""

    def __init__(self):
        self._ranks: list[np.ndarray] = []
        self._items: list[np.ndarray] = []

    def add(self, ranks: torch.Tensor, target_items: torch.Tensor) -> None:
        self._ranks.append(ranks.cpu().numpy())
        self._items.append(target_items.cpu().numpy())

    def gather(self) -> None:
        """Under DDP each process ranked its shard of users: collect every shard everywhere."""
        shards = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(shards, (self.ranks, self.target_items))
        self._ranks = [ranks for ranks, _ in shards]
        self._items = [items for _, items in shards]

    @property
    def ranks(self) -> np.ndarray:
        return np.concatenate(self._ranks) if self._ranks else np.zeros(0, dtype=np.int64)

    @property
    def target_items(self) -> np.ndarray:
        return np.concatenate(self._items) if self._items else np.zeros(0, dtype=np.int64)
