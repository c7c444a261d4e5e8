"""RecBole datasets that keep what the official MicroLens protocol needs.

* complete user sequences (:class:`UserSequences`) for history masking and training popularity;
* the evaluation phase of each split (how many items the target sits from the end);
* for the in-batch loss, training rows that are whole windows (each target predicted once)
  instead of one row per prefix;
* vectorised sequence augmentation (RecBole's loops over rows in Python).
"""
from __future__ import annotations

import numpy as np
import torch
from recbole.data.dataset import Dataset, SequentialDataset
from recbole.data.interaction import Interaction
from recbole.utils import ModelType

from recbole_microlens.compat import PandasCompatDatasetMixin
from recbole_microlens.data.recbole.history import UserSequences
from recbole_microlens.data.prepare import ensure_atomic_files
from recbole_microlens.errors import ConfigError

# Leave-one-out: the validation target is 2nd from the end, the test target last.
HOLDOUT_BY_PHASE = {"valid": 2, "test": 1}


def _group_starts(uids: np.ndarray) -> np.ndarray:
    """Index of the first row of each row's user group (rows grouped by user)."""
    n = len(uids)
    is_start = np.ones(n, dtype=bool)
    is_start[1:] = uids[1:] != uids[:-1]
    return np.maximum.accumulate(np.where(is_start, np.arange(n), 0))


class MicroLensDatasetMixin(PandasCompatDatasetMixin):
    """Records user sequences before RecBole splits, and tags the evaluation splits."""

    def build(self):
        self._check_leave_one_out()
        self.user_sequences = self._collect_user_sequences()
        train, valid, test = super().build()
        train.eval_holdout = None
        valid.eval_holdout = HOLDOUT_BY_PHASE["valid"]
        test.eval_holdout = HOLDOUT_BY_PHASE["test"]
        return [self._select_train_rows(train), valid, test]

    def _check_leave_one_out(self):
        split = self.config["eval_args"]["split"]
        if list(split) != ["LS"] or split["LS"] != "valid_and_test":
            raise ConfigError(
                "recbole-microlens evaluates with the official leave-one-out protocol: set "
                f"eval_args.split to {{LS: valid_and_test}} (got {split})"
            )

    def _collect_user_sequences(self) -> UserSequences:
        frame = self.inter_feat
        order = np.lexsort((frame[self.time_field].to_numpy(), frame[self.uid_field].to_numpy()))
        users = frame[self.uid_field].to_numpy()[order]
        items = frame[self.iid_field].to_numpy()[order]
        return UserSequences.from_arrays(users, items, self.user_num)

    def train_item_counts(self) -> np.ndarray:
        """Item popularity on the training part, for logQ and popularity groups."""
        return self.user_sequences.train_item_counts(self.item_num, HOLDOUT_BY_PHASE["valid"])

    def _select_train_rows(self, train):
        return train


class MLDataset(MicroLensDatasetMixin, Dataset):
    """General (non-sequential) models."""


class MLSequentialDataset(MicroLensDatasetMixin, SequentialDataset):
    """Sequential models."""

    def train_rows_mode(self) -> str:
        mode = self.config["train_rows"]
        if mode == "auto":
            return "windows" if self.config["loss_type"] == "inbatch" else "prefixes"
        if mode not in ("windows", "prefixes"):
            raise ConfigError(f"train_rows must be auto, windows or prefixes, got {mode!r}")
        return mode

    def _select_train_rows(self, train):
        """Keep every L-th prefix row counted from each user's last one.

        A row whose target is item t holds items t-L..t-1; scored at every position it predicts
        items t-L+1..t. Rows t_last, t_last-L, ... therefore predict every training target
        exactly once, which is what the official all-position loss trains on.
        """
        if self.train_rows_mode() == "prefixes":
            return train
        uids = train.inter_feat[self.uid_field].numpy()
        if len(uids) == 0:
            return train
        reversed_uids = uids[::-1]
        from_end = (np.arange(len(uids)) - _group_starts(reversed_uids))[::-1]
        keep = from_end % self.max_item_list_len == 0
        return train.copy(train.inter_feat[torch.from_numpy(np.nonzero(keep)[0])])

    def data_augmentation(self):
        """RecBole's prefix augmentation, vectorised (same rows, same order, same padding)."""
        fields = [f for f in self.inter_feat if f != self.uid_field]
        if any(self.inter_feat[f].dim() != 1 for f in fields) or self.config["numerical_features"]:
            return super().data_augmentation()
        self._aug_presets()
        self._check_field("uid_field", "time_field")
        self.sort(by=[self.uid_field, self.time_field], ascending=True)

        uids = self.inter_feat[self.uid_field].numpy()
        position = np.arange(len(uids)) - _group_starts(uids)
        target_index = np.nonzero(position > 0)[0]
        lengths = np.minimum(position[target_index], self.max_item_list_len)
        columns = np.arange(self.max_item_list_len)
        inside = columns[None, :] < lengths[:, None]
        gather = np.where(inside, (target_index - lengths)[:, None] + columns[None, :], 0)
        gather, inside = torch.from_numpy(gather), torch.from_numpy(inside)

        new_data = self.inter_feat[torch.from_numpy(target_index)]
        new_dict = {self.item_list_length_field: torch.from_numpy(lengths.astype(np.int64))}
        for field in fields:
            values = self.inter_feat[field][gather]
            new_dict[getattr(self, f"{field}_list_field")] = values.masked_fill(~inside, 0)
        new_data.update(Interaction(new_dict))
        self.inter_feat = new_data


def create_dataset(config):
    """Our dataset class for the model's type (RecBole's create_dataset without its pickle
    cache), converting raw files or generating the sample first when atomic files are missing."""
    ensure_atomic_files(config)
    if config["MODEL_TYPE"] == ModelType.SEQUENTIAL:
        return MLSequentialDataset(config)
    return MLDataset(config)
