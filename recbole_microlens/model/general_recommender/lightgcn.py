"""LightGCN (He et al., 2020): RecBole's model, trained as the paper trains it.

RecBole's LightGCN (propagation, adjacency from the training interactions) is reused as it is;
only the objective changes, from BPR on sampled negatives to the official in-batch softmax
with logQ correction, and full ranking propagates afresh instead of RecBole's cached
embeddings (a cache would outlive the best checkpoint our trainer reloads). Building the
adjacency needs ``compat.restore_dok_update`` on scipy >= 1.13.
"""
from __future__ import annotations

from recbole.model.general_recommender.lightgcn import LightGCN as RecBoleLightGCN

from recbole_microlens.model.general_recommender.base import UserIDRecommender


class LightGCN(UserIDRecommender, RecBoleLightGCN):
    def vectors(self, users, items):
        user_vectors, item_vectors = self.forward()
        return user_vectors[users], item_vectors[items]
