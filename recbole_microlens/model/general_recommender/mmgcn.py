"""MMGCN (Wei et al., MM 2019): one graph convolution branch per item modality.

In a branch, users hold a learned preference and items the (projected) modality input; each
layer aggregates the neighbours (mean), transforms the node itself and adds the ID embedding
shared by all branches, then combines both (``combination: concat | sum``). User and item
vectors are the mean of the branches, scored by dot product. MMGCNID has one branch whose
items are a learned ID table; MMGCNID+V adds a branch over the frozen item features.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recbole_microlens.model.general_recommender.base import UserIDRecommender
from recbole_microlens.model.general_recommender.graph import TrainingGraph, build_item_modalities
from recbole_microlens.model.options import choose

COMBINATIONS = ("concat", "sum")


class MMGCNBranch(nn.Module):
    def __init__(self, n_users: int, input_dim: int, dim: int, n_layers: int, concat: bool):
        super().__init__()
        self.concat = concat
        self.preference = nn.Parameter(nn.init.xavier_normal_(torch.empty(n_users, dim)))
        self.item_projection = nn.Linear(input_dim, dim)
        self.aggregations = nn.ModuleList(nn.Linear(dim, dim) for _ in range(n_layers))
        self.transforms = nn.ModuleList(nn.Linear(dim, dim) for _ in range(n_layers))
        self.combinations = nn.ModuleList(
            nn.Linear(2 * dim if concat else dim, dim) for _ in range(n_layers))

    def forward(self, item_inputs, graph: TrainingGraph, weights, id_embedding) -> torch.Tensor:
        nodes = F.normalize(torch.cat([self.preference, self.item_projection(item_inputs)]), dim=1)
        layers = zip(self.aggregations, self.transforms, self.combinations)
        for aggregate, transform, combine in layers:
            neighbours = F.leaky_relu(graph.propagate(aggregate(nodes), weights))
            itself = F.leaky_relu(transform(nodes)) + id_embedding
            if self.concat:
                nodes = F.leaky_relu(combine(torch.cat([neighbours, itself], dim=1)))
            else:
                nodes = F.leaky_relu(combine(neighbours) + itself)
        return nodes


class MMGCNID(UserIDRecommender):
    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        dim = config["embedding_size"]
        choose(config, "combination", COMBINATIONS)
        self.graph = TrainingGraph(dataset)
        self.modalities = build_item_modalities(config, dataset, dim)
        self.id_embedding = nn.Embedding(self.n_users + self.n_items, dim)
        nn.init.xavier_normal_(self.id_embedding.weight)
        self.branches = nn.ModuleList(
            MMGCNBranch(self.n_users, modality.out_dim, dim, config["n_layers"],
                        config["combination"] == "concat")
            for modality in self.modalities)

    def forward(self) -> torch.Tensor:
        weights = self.graph.mean_weights()
        outputs = [branch(modality(), self.graph, weights, self.id_embedding.weight)
                   for branch, modality in zip(self.branches, self.modalities)]
        return torch.stack(outputs).mean(dim=0)

    def vectors(self, users, items):
        nodes = self.forward()
        return nodes[users], nodes[self.n_users + items]


class MMGCNIDV(MMGCNID):
    """VIDRec (Table 2 "MMGCNID+V"): an ID branch and a frozen-feature branch.
    Defaults: properties/model/MMGCNIDV.yaml (``item_modalities: [id, features]``)."""
