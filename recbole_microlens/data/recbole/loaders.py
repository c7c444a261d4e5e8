"""Train / valid / test loaders: RecBole's, except that an evaluation batch is always users.

RecBole's full-ranking loader counts a general (non-sequential) model's ``eval_batch_size`` in
(user, item) pairs: ``eval_batch_size // n_items`` users per batch, at least one. On MicroLens
(19k items) the default 2048 gives one user per batch, 50,000 tiny batches per evaluation, where
a sequential model gets 2048 users. Here ``eval_batch_size`` is users for every model, so every
model of Table 2 is evaluated with the same batches.
"""
from __future__ import annotations

from recbole.data.dataloader import FullSortEvalDataLoader, TrainDataLoader
from recbole.data.utils import create_samplers
from recbole_microlens.errors import ConfigError


class UserBatchedFullSortEvalDataLoader(FullSortEvalDataLoader):
    """Full ranking in batches of ``eval_batch_size`` users, general and sequential models alike."""

    def _init_batch_size_and_step(self):
        users = self.config["eval_batch_size"]
        self.step = users
        self.set_batch_size(users if self.is_sequential else users * self._dataset.item_num)


def data_preparation(config, dataset):
    """Split ``dataset`` and build its loaders (RecBole's recipe, full ranking only)."""
    for phase in ("valid", "test"):
        if config["eval_args"]["mode"][phase] != "full":
            raise ConfigError(f"eval_args.mode.{phase} is {config['eval_args']['mode'][phase]!r}: "
                              "the MicroLens protocol ranks every item ('full')")
    built = dataset.build()
    train_sampler, valid_sampler, test_sampler = create_samplers(config, dataset, built)
    train_dataset, valid_dataset, test_dataset = built
    return (TrainDataLoader(config, train_dataset, train_sampler, shuffle=config["shuffle"]),
            UserBatchedFullSortEvalDataLoader(config, valid_dataset, valid_sampler),
            UserBatchedFullSortEvalDataLoader(config, test_dataset, test_sampler))
