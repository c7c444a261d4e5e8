"""Every user's chronological item sequence, kept beside RecBole's splits.

RecBole's sequential full-sort evaluation does not mask a user's history, and its augmented rows
only carry the last ``MAX_ITEM_LIST_LENGTH`` items. The official protocol masks the whole history
and counts popularity on the training part only; both need the complete sequences.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class UserSequences:
    """CSR layout: ``items[indptr[u]:indptr[u + 1]]`` is user ``u``'s sequence in time order."""

    indptr: np.ndarray
    items: np.ndarray

    @classmethod
    def from_arrays(cls, users: np.ndarray, items: np.ndarray, n_users: int) -> "UserSequences":
        """Build from (user, item) arrays already sorted by (user, time)."""
        counts = np.bincount(users, minlength=n_users)
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return cls(indptr=indptr, items=np.asarray(items, dtype=np.int64))

    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def prefix_positions(self, users: np.ndarray, holdout: int) -> tuple[np.ndarray, np.ndarray]:
        """(row, flat index) pairs of each user's items except the last ``holdout`` ones.

        Row ``r`` refers to ``users[r]``; the flat indices point into ``self.items``.
        """
        users = np.asarray(users, dtype=np.int64)
        starts = self.indptr[users]
        keep = np.maximum(self.indptr[users + 1] - starts - holdout, 0)
        rows = np.repeat(np.arange(len(users)), keep)
        offsets = np.arange(keep.sum()) - np.repeat(np.cumsum(keep) - keep, keep)
        return rows, np.repeat(starts, keep) + offsets

    def history_mask_indices(self, users, holdout: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(row, item) index tensors of the history to mask when the target is ``holdout`` from the end."""
        users = users.cpu().numpy() if torch.is_tensor(users) else users
        rows, flat = self.prefix_positions(users, holdout)
        return torch.from_numpy(rows), torch.from_numpy(self.items[flat])

    def train_item_counts(self, n_items: int, holdout: int = 2) -> np.ndarray:
        """Item popularity on the training part (each user's items but the last ``holdout``)."""
        _, flat = self.prefix_positions(np.arange(len(self.indptr) - 1), holdout)
        return np.bincount(self.items[flat], minlength=n_items)
