"""Side features beside the item ID (paper Table 11: SASRecID+Pop, +Tag, +Pop+Tag).

The ``id+side`` item tower averages the item ID embedding with one embedding per side feature,
the paper's "summing and averaging". Features are categorical columns of the dataset's ``.item``
file as the converter writes it: ``pop_bin`` (a token, the training popularity decile) and
``tags`` (a token sequence, averaged over its tokens). The tower is registered in
``ITEM_TOWERS``, so every backbone can use it (``item_tower: id+side``); ``SASRecSide`` is SASRec
with it switched on (properties/model/SASRecSide.yaml).
"""
from __future__ import annotations

import torch
from recbole.utils import FeatureType
from torch import nn

from recbole_microlens.model.layers import ITEM_TOWERS, ItemTower
from recbole_microlens.model.sequential_recommender.sasrec import SASRec

SIDE_FEATURE_TYPES = (FeatureType.TOKEN, FeatureType.TOKEN_SEQ)


class TokenBagEmbedding(nn.Module):
    """One side feature: each item's bag of tokens (``[n_items, L]``, 0 = none) -> the mean of
    their embeddings, and whether the item has any token."""

    def __init__(self, item_tokens: torch.Tensor, vocab_size: int, dim: int):
        super().__init__()
        self.register_buffer("item_tokens", item_tokens, persistent=False)  # data, not weights
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=0)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.item_tokens[ids]
        present = (tokens != 0).unsqueeze(-1)
        count = present.sum(dim=-2)
        # the padding row is masked, not trusted to be zero: weight init overwrites it
        vectors = (self.embedding(tokens) * present).sum(dim=-2) / count.clamp(min=1)
        return vectors, count > 0


class SideFeatureItemTower(ItemTower):
    """``(e_id + sum of the item's side-feature vectors) / number of parts the item has``: an
    item without tags averages its ID and popularity parts only."""

    def __init__(self, n_items: int, dim: int, features: dict[str, TokenBagEmbedding]):
        super().__init__(n_items, dim)
        self.embedding = nn.Embedding(n_items, dim, padding_idx=0)
        self.features = nn.ModuleDict(features)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        total = self.embedding(ids)
        parts = torch.ones_like(total[..., :1])
        for feature in self.features.values():
            vectors, present = feature(ids)
            total = total + vectors
            parts = parts + present.to(parts.dtype)
        return total / parts * (ids != 0).unsqueeze(-1).to(total.dtype)  # padding -> zeros


def item_token_matrix(dataset, field: str) -> torch.Tensor:
    """``[n_items, L]`` token ids of ``field`` per item id (RecBole's item_feat rows are ids)."""
    values = dataset.get_item_feature()[field]
    return values.unsqueeze(-1) if values.dim() == 1 else values


def build_side_feature_tower(config, dataset, dim: int) -> SideFeatureItemTower:
    names = list(config["side_features"] or [])
    if not names:
        raise ValueError("item_tower id+side needs side_features, e.g. [pop_bin, tags]")
    loaded = set(dataset.get_item_feature().columns)
    missing = [name for name in names if name not in loaded]
    if missing:
        raise ValueError(
            f"side features {missing} are not loaded: the .item file lacks them or load_col.item "
            f"does not list them (load_col: {{item: [item_id, {', '.join(names)}]}})")
    wrong = [name for name in names if dataset.field2type[name] not in SIDE_FEATURE_TYPES]
    if wrong:
        raise ValueError(f"side features {wrong} are not token or token_seq columns")
    features = {name: TokenBagEmbedding(item_token_matrix(dataset, name), dataset.num(name), dim)
                for name in names}
    return SideFeatureItemTower(dataset.item_num, dim, features)


ITEM_TOWERS["id+side"] = build_side_feature_tower


class SASRecSide(SASRec):
    """SASRec over ID + side-feature item vectors (``side_features``). Defaults:
    properties/model/SASRecSide.yaml."""
