"""Building a run from its config: the one path training and reloading a checkpoint share, so a
reloaded run holds exactly the dataset, splits and model of the run that was trained."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from recbole.utils import init_seed

from recbole_microlens.config.run_id import init_run_logger
from recbole_microlens.data.recbole.dataset import create_dataset
from recbole_microlens.data.recbole.loaders import data_preparation
from recbole_microlens.encoders.factory import prefetch_weights


@dataclass
class Run:
    """What a run is built from: its config, dataset and splits, and its (untrained) model."""

    config: Any
    dataset: Any
    train_data: Any
    valid_data: Any
    test_data: Any
    model: Any = None

    @property
    def splits(self) -> tuple:
        """``(train_data, valid_data, test_data)``, as RecBole's ``data_preparation`` returns."""
        return self.train_data, self.valid_data, self.test_data


def data_seed(config) -> int:
    """The seed of the data: the same on every rank, since every DDP process must hold the
    same dataset and splits."""
    return config["seed"]


def model_seed(config) -> int:
    """The seed of the model's initial weights: ``seed + local_rank``, so rank 0 (and a
    single process, whose ``local_rank`` is 0) starts from the single-process weights."""
    return config["seed"] + config["local_rank"]


def build_run(config, quiet: bool = False, with_model: bool = True) -> Run:
    """Seed, set up the log (once, unless ``quiet``), resolve the encoder's weights (missing
    ones stop the run before any data work), create the dataset and its splits, and construct
    the model on ``config["device"]`` (``with_model=False``: the data only)."""
    logger = logging.getLogger()
    init_seed(data_seed(config), config["reproducibility"])
    if not quiet:
        init_run_logger(config)
        logger.info(config)
    prefetch_weights(config)
    dataset = create_dataset(config)
    if not quiet:
        logger.info(dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    run = Run(config, dataset, train_data, valid_data, test_data)
    if with_model:
        init_seed(model_seed(config), config["reproducibility"])
        run.model = config.model_class(config, train_data._dataset).to(config["device"])
        if not quiet:
            logger.info(run.model)
    return run
