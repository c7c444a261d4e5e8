"""GRCN (Wei et al., MM 2020): graph convolution on a graph refined by item content.

Per modality, a refiner routes each user's preference towards the content of the items they
interacted with (a few routing iterations of attention over the user's edges), then scores
every training edge by the affinity of preference and content, pruning negative ones to 0.
The edge weights of all modalities are fused (``weight_fusion: max | mean``) and weight a GCN
over the ID embeddings (symmetric normalisation, sum of the layers). A node's vector
concatenates the ID representation and each modality's content representation; the score is
their dot product. GRCNID refines with a learned ID table as content; GRCNID+V adds the frozen
item features as a second modality.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recbole_microlens.model.general_recommender.base import UserIDRecommender
from recbole_microlens.model.general_recommender.graph import (
    TrainingGraph,
    build_item_modalities,
    segment_softmax,
)
from recbole_microlens.model.options import choose

WEIGHT_FUSIONS = {"max": lambda w: w.amax(dim=0), "mean": lambda w: w.mean(dim=0)}


class GraphRefiner(nn.Module):
    """One modality: routed user preferences, item content, and the pruned edge affinities."""

    def __init__(self, n_users: int, input_dim: int, dim: int, routing_iterations: int):
        super().__init__()
        self.routing_iterations = routing_iterations
        self.preference = nn.Parameter(nn.init.xavier_normal_(torch.empty(n_users, dim)))
        self.content = nn.Linear(input_dim, dim)

    def forward(self, item_inputs, graph: TrainingGraph) -> tuple[torch.Tensor, torch.Tensor]:
        """``[n_nodes, dim]`` content representations and ``[n_edges]`` weights (user->item)."""
        content = F.normalize(F.leaky_relu(self.content(item_inputs)), dim=1)
        preference = F.normalize(self.preference, dim=1)
        edge_content = content[graph.items]
        for _ in range(self.routing_iterations):
            affinity = (preference[graph.users] * edge_content).sum(dim=1)
            attention = segment_softmax(affinity, graph.users, graph.n_users)
            routed = torch.zeros_like(preference).index_add(
                0, graph.users, attention.unsqueeze(1) * edge_content)
            preference = F.normalize(preference + routed, dim=1)
        edge_weights = F.relu((preference[graph.users] * edge_content).sum(dim=1))
        nodes = torch.cat([preference, content])
        neighbours = graph.propagate(nodes, graph.symmetric_weights(edge_weights))
        return nodes + F.leaky_relu(neighbours), edge_weights


class GRCNID(UserIDRecommender):
    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        dim = config["embedding_size"]
        self.fuse_weights = choose(config, "weight_fusion", WEIGHT_FUSIONS)
        self.n_layers = config["n_layers"]
        self.graph = TrainingGraph(dataset)
        self.modalities = build_item_modalities(config, dataset, dim)
        self.refiners = nn.ModuleList(
            GraphRefiner(self.n_users, modality.out_dim, dim, config["routing_iterations"])
            for modality in self.modalities)
        self.id_embedding = nn.Embedding(self.n_users + self.n_items, dim)
        nn.init.xavier_normal_(self.id_embedding.weight)

    def forward(self) -> torch.Tensor:
        refined = [refiner(modality(), self.graph)
                   for refiner, modality in zip(self.refiners, self.modalities)]
        contents = [content for content, _ in refined]
        edge_weights = self.fuse_weights(torch.stack([weights for _, weights in refined]))
        return torch.cat([self._id_representation(edge_weights), *contents], dim=1)

    def _id_representation(self, edge_weights: torch.Tensor) -> torch.Tensor:
        weights = self.graph.symmetric_weights(edge_weights)
        layer = F.normalize(self.id_embedding.weight, dim=1)
        total = layer
        for _ in range(self.n_layers):
            layer = F.leaky_relu(self.graph.propagate(layer, weights))
            total = total + layer
        return total

    def vectors(self, users, items):
        nodes = self.forward()
        return nodes[users], nodes[self.n_users + items]


class GRCNIDV(GRCNID):
    """VIDRec (Table 2 "GRCNID+V"): content refinement from the ID table and the frozen item
    features. Defaults: properties/model/GRCNIDV.yaml (``item_modalities: [id, features]``)."""
