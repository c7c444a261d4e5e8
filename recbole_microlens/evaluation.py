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


class RankCollector:
    """Accumulates target ranks over evaluation batches."""

    def __init__(self):
        self._ranks: list[np.ndarray] = []

    def add(self, ranks: torch.Tensor) -> None:
        self._ranks.append(ranks.cpu().numpy())

    @property
    def ranks(self) -> np.ndarray:
        return np.concatenate(self._ranks) if self._ranks else np.zeros(0, dtype=np.int64)
