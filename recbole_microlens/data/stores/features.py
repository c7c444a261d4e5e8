"""Reading frozen item features (VIDRec) for a dataset: the data layer's side of
``extract-features`` (which writes them, in ``features.py``). Models get their feature matrix
from here, indexed by RecBole's internal item ids, and never import the extraction code.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from recbole_microlens.data.stores.artefact import partial_path
from recbole_microlens.data.stores.media import PAD_TOKEN
from recbole_microlens.errors import ConfigError, InputError, MissingInputError


def meta_path(path: Path) -> Path:
    """The ``.json`` beside a feature matrix: its identity, row tokens and ``complete``."""
    return Path(path).with_suffix(".json")


def load_item_features(path: str | os.PathLike, item_tokens: Sequence[str]) -> torch.Tensor:
    """``[len(item_tokens), dim]`` float32: the feature row of each token, zeros for ``[PAD]``.

    ``item_tokens`` is RecBole's id -> token list, so row k of the result belongs to item id k.
    """
    path = Path(path)
    if not meta_path(path).is_file() and partial_path(path).is_dir():
        raise InputError(f"{path} is unfinished; rerun `recbole-microlens extract-features` "
                         "to resume it")
    if not path.is_file() or not meta_path(path).is_file():
        raise MissingInputError(f"features_file {path}: no such feature matrix with its .json; "
                                "`recbole-microlens extract-features` writes both")
    meta = json.loads(meta_path(path).read_text(encoding="utf-8"))
    if not meta["complete"]:
        raise InputError(f"{path} is unfinished; rerun `recbole-microlens extract-features` "
                         "to resume it")
    row_of = {token: row for row, token in enumerate(meta["row_tokens"])}
    wanted = [str(token) for token in item_tokens]
    missing = [token for token in wanted if token != PAD_TOKEN and token not in row_of]
    if missing:
        raise InputError(f"{len(missing)} item tokens have no row in {path}: {missing[:5]}")
    matrix = np.load(path, mmap_mode="r")
    features = np.zeros((len(wanted), matrix.shape[1]), dtype=np.float32)
    present = [k for k, token in enumerate(wanted) if token != PAD_TOKEN]
    features[present] = matrix[[row_of[wanted[k]] for k in present]]
    return torch.from_numpy(features)


def dataset_item_features(config, dataset) -> torch.Tensor:
    """The ``features_file`` of this run, indexed by the dataset's internal item ids.

    A relative path that does not exist as given is looked up in the dataset folder, so
    ``features/minilm.npy`` names the default output of ``extract-features``.
    """
    if not config["features_file"]:
        raise ConfigError("this item tower needs features_file: run `recbole-microlens "
                          "extract-features` and pass the .npy it writes")
    path = Path(config["features_file"])
    if not path.is_absolute() and not path.exists():
        path = Path(config["data_path"]) / path
    return load_item_features(path, dataset.field2id_token[dataset.iid_field])
