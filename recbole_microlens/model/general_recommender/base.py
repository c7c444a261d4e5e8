"""Shared bodies of the CF models of Table 2, all trained with the official in-batch softmax.

The official MicroLens code represents a CF user in one of two ways, and so do we:

* by user id (DSSM, LightGCN, MMGCN, GRCN): :class:`UserIDRecommender`, a RecBole general
  model trained on the (user, item) training pairs; in-batch candidates the user interacted
  with in training, other than the label, are masked;
* by the items watched before the target (YouTube, NFM, DeepFM; the reference code's
  ``InputType.SEQ``): the window of at most ``MAX_ITEM_LIST_LENGTH`` previous items, which
  RecBole hands to sequential models. These are therefore RecBole SEQUENTIAL models although
  they ignore order (DeepFM treats positions as fields): the window is leak-free in training
  and the same one is used at evaluation. :class:`HistoryPairRecommender` is the base of those
  whose score is not a dot product.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import InputType
from torch import nn

from recbole_microlens.model.loss import logq_cross_entropy
from recbole_microlens.model.sequential_recommender.base import (
    MLSequentialRecommender,
    log_training_popularity,
)
from recbole_microlens.errors import ConfigError

UserPart = tuple[torch.Tensor, ...]
ItemPart = tuple[torch.Tensor, ...]


def inbatch_softmax_loss(logits: torch.Tensor, labels: torch.Tensor,
                         candidate_log_popularity: torch.Tensor,
                         seen: torch.Tensor) -> torch.Tensor:
    """The official loss (:func:`~recbole_microlens.model.loss.logq_cross_entropy`) on ``[B, C]``
    logits over the batch's distinct items, ``seen`` [B, C] marking each row's own items."""
    own_rows, own_columns = torch.nonzero(seen, as_tuple=True)
    return logq_cross_entropy(logits - candidate_log_popularity, labels, own_rows, own_columns)


class TrainingItems(nn.Module):
    """Which (user, item) pairs are training interactions: ``(users [B], items [C]) -> [B, C]``."""

    def __init__(self, dataset):
        super().__init__()
        self.n_items = dataset.item_num
        users = dataset.inter_feat[dataset.uid_field].long()
        items = dataset.inter_feat[dataset.iid_field].long()
        self.register_buffer("keys", torch.unique(users * self.n_items + items), persistent=False)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        keys = users.unsqueeze(1) * self.n_items + items.unsqueeze(0)
        positions = torch.searchsorted(self.keys, keys).clamp(max=len(self.keys) - 1)
        return self.keys[positions] == keys


class UserIDRecommender(GeneralRecommender):
    """A user id and item ids -> vectors whose dot product is the score.

    A subclass defines ``vectors(users, items)``; training, scoring and full ranking follow.
    """

    input_type = InputType.POINTWISE

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.register_buffer("log_popularity", log_training_popularity(dataset))
        self.training_items = TrainingItems(dataset)

    def vectors(self, users: torch.Tensor,
                items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, D]`` user vectors and ``[C, D]`` item vectors (one forward pass)."""
        raise NotImplementedError

    def calculate_loss(self, interaction):
        users = interaction[self.USER_ID]
        candidates, labels = torch.unique(interaction[self.ITEM_ID], return_inverse=True)
        user_vectors, item_vectors = self.vectors(users, candidates)
        return inbatch_softmax_loss(user_vectors @ item_vectors.T, labels,
                                    self.log_popularity[candidates],
                                    self.training_items(users, candidates))

    def predict(self, interaction):
        users, items = interaction[self.USER_ID], interaction[self.ITEM_ID]
        user_vectors, item_vectors = self.vectors(users, items)
        return (user_vectors * item_vectors).sum(dim=-1)

    def full_sort_predict(self, interaction):
        items = torch.arange(self.n_items, device=interaction[self.USER_ID].device)
        user_vectors, item_vectors = self.vectors(interaction[self.USER_ID], items)
        return user_vectors @ item_vectors.T

    def query_vectors(self, interaction) -> torch.Tensor:
        """``[B, D]``: the user side of ``vectors`` (scores are its dot products with
        :meth:`item_vectors`, as in ``full_sort_predict``)."""
        users = interaction[self.USER_ID]
        return self.vectors(users, users.new_zeros(1))[0]

    def item_vectors(self) -> torch.Tensor:
        """``[n_items, D]`` (row 0: padding): the item side of ``vectors``."""
        items = torch.arange(self.n_items, device=self.log_popularity.device)
        return self.vectors(items.new_zeros(1), items)[1]


def masked_item_vectors(item_tower, item_ids: torch.Tensor) -> torch.Tensor:
    """``[..., D]`` item vectors, padding positions exactly zero."""
    return item_tower(item_ids) * (item_ids != 0).unsqueeze(-1).float()


def masked_first_order(item_bias: nn.Embedding, item_ids: torch.Tensor) -> torch.Tensor:
    """``[B]``: the sum of the first-order weights of each row's items, padding excluded."""
    return (item_bias(item_ids).squeeze(-1) * (item_ids != 0)).sum(dim=1)


def _as_pairs(user: UserPart, item: ItemPart, item_axis: int) -> tuple[UserPart, ItemPart]:
    """User parts as ``[B, 1, ...]``; item parts ``[1, C, ...]`` (axis 0) or ``[B, 1, ...]`` (1)."""
    return tuple(t.unsqueeze(1) for t in user), tuple(t.unsqueeze(item_axis) for t in item)


class HistoryPairRecommender(MLSequentialRecommender):
    """A user is the window of previous items, and the score of (window, item) is a non-linear
    function, split into a user part (once per row) and an item part (once per item).

    ``score_pairs`` sees user parts shaped ``[B, 1, ...]`` and item parts ``[1 or B, C, ...]``,
    so full ranking is one broadcast per chunk of users (``pair_chunk_elements`` bounds the
    ``[rows, items, width]`` intermediate) and training one per batch. Rows are prefixes: one
    target each, scored against the batch's distinct targets.
    """

    item_dim_key = "embedding_size"

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        if dataset.train_rows_mode() != "prefixes":
            raise ConfigError(f"{type(self).__name__} scores one target per row: "
                              "set train_rows: prefixes")
        self.pair_chunk_elements = config["pair_chunk_elements"]

    def user_part(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> UserPart:
        raise NotImplementedError

    def item_part(self, items: torch.Tensor) -> ItemPart:
        raise NotImplementedError

    def score_pairs(self, user: UserPart, item: ItemPart) -> torch.Tensor:
        raise NotImplementedError

    def pair_width(self) -> int:
        """Width of the per-pair intermediate, to size full-ranking chunks."""
        raise NotImplementedError

    def scores(self, user: UserPart, item: ItemPart) -> torch.Tensor:
        """``[B, C]``: every row against every item."""
        return self.score_pairs(*_as_pairs(user, item, item_axis=0))

    def calculate_loss(self, interaction):
        item_seq, target = interaction[self.ITEM_SEQ], interaction[self.POS_ITEM_ID]
        user = self.user_part(item_seq, interaction[self.ITEM_SEQ_LEN])
        if self.loss_type == "CE":
            return F.cross_entropy(self.scores(user, self.item_part(self._all_item_ids())), target)
        candidates, labels = torch.unique(target, return_inverse=True)
        user_items = torch.cat([item_seq, target.unsqueeze(1)], dim=1)
        seen = (user_items.unsqueeze(2) == candidates.view(1, 1, -1)).any(dim=1)
        return inbatch_softmax_loss(self.scores(user, self.item_part(candidates)), labels,
                                    self.log_popularity[candidates], seen)

    def predict(self, interaction):
        user = self.user_part(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        item = self.item_part(interaction[self.ITEM_ID])
        return self.score_pairs(*_as_pairs(user, item, item_axis=1)).squeeze(1)

    def full_sort_predict(self, interaction):
        user = self.user_part(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        item = self.item_part(self._all_item_ids())
        rows = max(1, self.pair_chunk_elements // (self.n_items * self.pair_width()))
        return torch.cat([self.scores(tuple(t[start:start + rows] for t in user), item)
                          for start in range(0, len(user[0]), rows)])

    def _all_item_ids(self) -> torch.Tensor:
        return torch.arange(self.n_items, device=self.log_popularity.device)
