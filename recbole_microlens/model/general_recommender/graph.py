"""The user-item training graph and the item inputs of the multimodal graph models (MMGCN, GRCN).

Nodes are users ``0..n_users-1`` then items ``n_users..n_users+n_items-1``; messages are
gathered and summed with ``index_add`` (no sparse tensors), so edge weights may be learned.
Each item *modality* is a module returning ``[n_items, out_dim]`` item inputs: ``id`` a learned
table (the ID-only models), ``features`` the frozen pre-extracted features (their ``+V``).
"""
from __future__ import annotations

import torch
from torch import nn
from recbole_microlens.errors import ConfigError


class TrainingGraph(nn.Module):
    """Edges of the training interactions, in both directions, as buffers that follow the model."""

    def __init__(self, dataset):
        super().__init__()
        matrix = dataset.inter_matrix(form="coo")
        self.n_users, self.n_items = matrix.shape
        users = torch.from_numpy(matrix.row).long()
        items = torch.from_numpy(matrix.col).long()
        self.register_buffer("users", users, persistent=False)
        self.register_buffer("items", items, persistent=False)
        self.register_buffer("source", torch.cat([users, items + self.n_users]), persistent=False)
        self.register_buffer("target", torch.cat([items + self.n_users, users]), persistent=False)

    @property
    def n_nodes(self) -> int:
        return self.n_users + self.n_items

    def propagate(self, nodes: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``out[t] = sum over edges s->t of weight * nodes[s]`` (weights per directed edge)."""
        messages = nodes[self.source] * weights.unsqueeze(1)
        return torch.zeros_like(nodes).index_add(0, self.target, messages)

    def mean_weights(self) -> torch.Tensor:
        """Directed edge weights 1 / in-degree: propagation averages the neighbours."""
        degree = torch.zeros(self.n_nodes, device=self.target.device).index_add(
            0, self.target, torch.ones_like(self.target, dtype=torch.float))
        return degree[self.target].reciprocal()

    def symmetric_weights(self, edge_weights: torch.Tensor) -> torch.Tensor:
        """Per user->item edge weights, used both ways, scaled by ``1 / sqrt(d_u d_i)`` for the
        weighted degrees ``d`` (GCN normalisation)."""
        weights = torch.cat([edge_weights, edge_weights])
        degree = torch.zeros(self.n_nodes, device=weights.device).index_add(0, self.target, weights)
        scale = degree.clamp(min=1e-12).rsqrt()
        return weights * scale[self.source] * scale[self.target]


def segment_softmax(scores: torch.Tensor, segments: torch.Tensor, n_segments: int) -> torch.Tensor:
    """Softmax of ``scores`` within each segment (e.g. over each user's edges)."""
    maxima = torch.full((n_segments,), float("-inf"), device=scores.device)
    maxima = maxima.scatter_reduce(0, segments, scores.detach(), "amax")
    exp = (scores - maxima[segments]).exp()
    sums = torch.zeros(n_segments, device=scores.device).index_add(0, segments, exp)
    return exp / sums[segments]


class LearnedItemTable(nn.Module):
    """The ``id`` modality: a learned table stands in for item content."""

    def __init__(self, n_items: int, dim: int):
        super().__init__()
        self.table = nn.Embedding(n_items, dim)
        self.out_dim = dim

    def forward(self) -> torch.Tensor:
        return self.table.weight


class FrozenItemFeatures(nn.Module):
    """The ``features`` modality: pre-extracted features, never trained nor saved with weights."""

    def __init__(self, features: torch.Tensor):
        super().__init__()
        self.register_buffer("features", features.float(), persistent=False)
        self.out_dim = features.shape[1]

    def forward(self) -> torch.Tensor:
        return self.features


def _learned_table(config, dataset, dim):
    return LearnedItemTable(dataset.item_num, dim)


def _frozen_features(config, dataset, dim):
    from recbole_microlens.data.stores.features import dataset_item_features

    return FrozenItemFeatures(dataset_item_features(config, dataset))


ITEM_MODALITIES = {"id": _learned_table, "features": _frozen_features}


def build_item_modalities(config, dataset, dim: int) -> nn.ModuleList:
    """One input module per name in ``item_modalities`` (e.g. ``[id]`` or ``[id, features]``)."""
    names = config["item_modalities"]
    unknown = sorted(set(names) - set(ITEM_MODALITIES))
    if not names or unknown:
        raise ConfigError(f"item_modalities must list some of {sorted(ITEM_MODALITIES)}, "
                          f"got {names}")
    return nn.ModuleList(ITEM_MODALITIES[name](config, dataset, dim) for name in names)
