"""DeepFM (Guo et al., 2017) over the fields of the official MicroLens code: the previous items,
one field per position (most recent first), and the candidate item, sharing one item tower.

``y = w0 + sum_j w_j + sum_{j<k} <e_j, e_k> + DNN([e_1; ...; e_L; e_c])``. The FM part splits
into history-only terms and ``<sum_H e, e_c>``; the DNN's first layer into ``W_H [e_1..e_L]``
(once per user) plus ``W_c e_c`` (once per item), so only the ReLU layers run per pair.
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


def most_recent_first(item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
    """``[B, L]`` window reordered so field k is the k-th most recent item (padding after)."""
    positions = torch.arange(item_seq.size(1), device=item_seq.device).unsqueeze(0)
    source = (item_seq_len.unsqueeze(1) - 1 - positions).clamp(min=0)
    return item_seq.gather(1, source).masked_fill(positions >= item_seq_len.unsqueeze(1), 0)


class DeepFM(HistoryPairRecommender):
    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        dim, hidden = self.item_dim, config["mlp_hidden_size"]
        self.history_width = self.max_seq_length * dim
        self.global_bias = nn.Parameter(torch.zeros(1))
        self.item_bias = nn.Embedding(self.n_items, 1, padding_idx=0)  # first-order weights
        self.first_layer = nn.Linear(self.history_width + dim, hidden[0])
        self.upper_layers = nn.Sequential(
            nn.ReLU(), MLPLayers(hidden, config["dropout_prob"]), nn.Linear(hidden[-1], 1))
        self.init_weights()

    def pair_width(self) -> int:
        return max(self.upper_layers[1].layers)

    def user_part(self, item_seq, item_seq_len):
        fields = most_recent_first(item_seq, item_seq_len)
        vectors = masked_item_vectors(self.item_tower, fields)
        total = vectors.sum(dim=1)
        pairwise = 0.5 * (total.pow(2).sum(-1) - vectors.pow(2).sum(dim=(1, 2)))
        first_order = self.global_bias + masked_first_order(self.item_bias, fields)
        weight = self.first_layer.weight[:, :self.history_width]
        deep = vectors.flatten(1) @ weight.T + self.first_layer.bias
        return total, first_order + pairwise, deep

    def item_part(self, items):
        vectors = self.item_tower(items)
        deep = vectors @ self.first_layer.weight[:, self.history_width:].T
        return vectors, self.item_bias(items).squeeze(-1), deep

    def score_pairs(self, user, item):
        (total, user_terms, user_deep), (vectors, item_bias, item_deep) = user, item
        fm = user_terms + item_bias + (total * vectors).sum(-1)
        return fm + self.upper_layers(user_deep + item_deep).squeeze(-1)
