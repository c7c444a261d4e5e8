"""YouTube DNN candidate generation (Covington et al., 2016), the paper's YouTubeID(+V).

The user is a ReLU tower over the average vector of the items watched before the target; the
score is a dot product with the item's vector (softmax over items). Averaging ignores order,
which is what makes it CF rather than sequential. At every window position the user is the
running average up to that position, so the official all-position in-batch loss applies as is.
"""
from __future__ import annotations

from recbole.model.layers import MLPLayers
from torch import nn

from recbole_microlens.model.sequential_recommender.base import MLSequentialRecommender


class YouTubeID(MLSequentialRecommender):
    item_dim_key = "embedding_size"

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        hidden = config["mlp_hidden_size"]
        self.user_tower = nn.Sequential(
            MLPLayers([self.item_dim, *hidden], config["dropout_prob"], activation="relu"),
            nn.Linear(hidden[-1] if hidden else self.item_dim, self.item_dim))
        self.init_weights()

    def encode(self, item_emb, item_seq, item_seq_len):
        present = (item_seq != 0).unsqueeze(-1).to(item_emb.dtype)
        running_sum = (item_emb * present).cumsum(dim=1)
        running_count = present.cumsum(dim=1).clamp(min=1)
        return self.user_tower(running_sum / running_count)


class YouTubeIDV(YouTubeID):
    """VIDRec (Table 2 "YouTubeID+V"): item vectors fuse the ID embedding with frozen item
    features. Defaults: properties/model/YouTubeIDV.yaml (``item_tower: id+features``)."""
