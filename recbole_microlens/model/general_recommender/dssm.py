"""DSSM (Huang et al., 2013) as a two-tower recommender: a user-id tower and an item tower.

Each tower is an MLP with tanh and batch norm (as in the official MicroLens code) over an
embedding: the user's id, and the item's vector from the ItemTower, so DSSMID+V is this model
with ``item_tower: id+features``. Score: dot product, or cosine over a temperature.
"""
from __future__ import annotations

import torch.nn.functional as F
from recbole.model.layers import MLPLayers
from torch import nn

from recbole_microlens.model.general_recommender.base import UserIDRecommender
from recbole_microlens.model.layers import build_item_tower
from recbole_microlens.model.options import choose


def _dot(users, items, temperature):
    return users, items


def _cosine(users, items, temperature):
    return F.normalize(users, dim=-1) / temperature, F.normalize(items, dim=-1)


SIMILARITIES = {"dot": _dot, "cosine": _cosine}


class DSSM(UserIDRecommender):
    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        dim = config["embedding_size"]
        self.similarity = choose(config, "similarity", SIMILARITIES)
        self.temperature = config["temperature"]
        sizes = [dim, *config["mlp_hidden_size"]]
        self.user_embedding = nn.Embedding(self.n_users, dim)
        self.item_tower = build_item_tower(config, dataset, dim)
        self.user_mlp = MLPLayers(sizes, config["dropout_prob"], activation="tanh", bn=True)
        self.item_mlp = MLPLayers(sizes, config["dropout_prob"], activation="tanh", bn=True)
        self.apply(_xavier_normal)

    def vectors(self, users, items):
        user_vectors = self.user_mlp(self.user_embedding(users))
        item_vectors = self.item_mlp(self.item_tower(items))
        return self.similarity(user_vectors, item_vectors, self.temperature)


def _xavier_normal(module: nn.Module) -> None:
    """The official initialisation: xavier-normal embeddings and linear weights, zero biases."""
    if isinstance(module, (nn.Embedding, nn.Linear)):
        nn.init.xavier_normal_(module.weight)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


class DSSMIDV(DSSM):
    """VIDRec (Table 2 "DSSMID+V"): DSSM whose item tower fuses the ID embedding with frozen
    item features. Defaults: properties/model/DSSMIDV.yaml (``item_tower: id+features``)."""
