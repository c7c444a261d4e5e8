"""ItemTower: the one seam between a recommender and how items become vectors.

A model asks the tower to embed item ids, or every item; whether that is an ID table, a frozen
feature matrix or an encoder over frames, covers or titles is configuration, not model code.
"""
from __future__ import annotations

import torch
from torch import nn


class ItemTower(nn.Module):
    """Base class: ``forward(ids) -> [..., dim]`` with id 0 (padding) mapped to zeros."""

    def __init__(self, n_items: int, dim: int):
        super().__init__()
        self.n_items = n_items
        self.dim = dim

    def all_items(self) -> torch.Tensor:
        """Vectors of every item id 0..n_items-1, [n_items, dim]."""
        ids = torch.arange(self.n_items, device=self.device)
        return self(ids)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


class IDItemTower(ItemTower):
    """A learned embedding table (IDRec)."""

    def __init__(self, n_items: int, dim: int):
        super().__init__(n_items, dim)
        self.embedding = nn.Embedding(n_items, dim, padding_idx=0)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embedding(ids)

    def all_items(self) -> torch.Tensor:
        return self.embedding.weight


ITEM_TOWERS = {"id": IDItemTower}


def build_item_tower(config, dataset, dim: int) -> ItemTower:
    """The tower named by ``item_tower`` (default ``id``)."""
    name = config["item_tower"] or "id"
    if name not in ITEM_TOWERS:
        raise ValueError(f"item_tower {name!r} is unknown; choose one of {sorted(ITEM_TOWERS)}")
    return ITEM_TOWERS[name](dataset.item_num, dim)
