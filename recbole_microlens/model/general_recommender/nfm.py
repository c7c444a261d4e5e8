"""NFM (He & Chua, 2017) over the fields of the official MicroLens code: the user's previous
items and the candidate item, all embedded by the same item tower.

``y = w0 + sum_j w_j + h^T MLP(BN(BiInteraction))`` over the fields. The bi-interaction of
history H plus candidate c splits exactly into a user part and an item part,
``f(H + c) = f(H) + (sum_H e) * e_c``, so full ranking never re-embeds a pair; only the MLP
runs per (user, item), in chunks.
"""
from __future__ import annotations

import torch
from recbole.model.layers import MLPLayers
from torch import nn

from recbole_microlens.model.general_recommender.base import (
    HistoryPairRecommender,
    masked_first_order,
    masked_item_vectors,
)


class NFM(HistoryPairRecommender):
    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        dim, hidden = self.item_dim, config["mlp_hidden_size"]
        self.global_bias = nn.Parameter(torch.zeros(1))
        self.item_bias = nn.Embedding(self.n_items, 1, padding_idx=0)  # first-order weights
        self.bi_interaction_norm = nn.BatchNorm1d(dim)
        self.mlp = MLPLayers([dim, *hidden], config["dropout_prob"])
        self.prediction = nn.Linear(hidden[-1] if hidden else dim, 1, bias=False)
        self.init_weights()

    def pair_width(self) -> int:
        return max([self.item_dim, *self.mlp.layers])

    def user_part(self, item_seq, item_seq_len):
        vectors = masked_item_vectors(self.item_tower, item_seq)
        total = vectors.sum(dim=1)
        self_interaction = 0.5 * (total.pow(2) - vectors.pow(2).sum(dim=1))
        bias = self.global_bias + masked_first_order(self.item_bias, item_seq)
        return total, self_interaction, bias

    def item_part(self, items):
        return self.item_tower(items), self.item_bias(items).squeeze(-1)

    def score_pairs(self, user, item):
        (total, self_interaction, user_bias), (vectors, item_bias) = user, item
        bi_interaction = self_interaction + total * vectors
        shape = bi_interaction.shape
        normed = self.bi_interaction_norm(bi_interaction.reshape(-1, shape[-1])).view(shape)
        return self.prediction(self.mlp(normed)).squeeze(-1) + user_bias + item_bias
