"""Evaluation batches are users for every model (RecBole counts a general model's in pairs)."""
import numpy as np
import pytest
from recbole.data import data_preparation as recbole_data_preparation

from recbole_microlens.data.dataset import create_dataset
from recbole_microlens.data.loaders import data_preparation
from tests.helpers import make_config, write_inter_file

N_USERS, N_ITEMS, EVAL_USERS = 40, 60, 16


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    rng = np.random.default_rng(3)
    root = tmp_path_factory.mktemp("loaders")
    write_inter_file(root, "synthetic", {
        f"u{u}": [f"i{i}" for i in rng.choice(N_ITEMS, size=rng.integers(5, 20), replace=False)]
        for u in range(N_USERS)})
    return root


def users_per_batch(loader) -> list[int]:
    return [len(interaction) for interaction, *_ in loader]


@pytest.mark.parametrize("model", ["DSSM", "SASRec"])
def test_eval_batches_hold_eval_batch_size_users(root, model):
    config = make_config(root, "synthetic", model, eval_batch_size=EVAL_USERS)
    _, valid, test = data_preparation(config, create_dataset(config))
    for loader in (valid, test):
        assert users_per_batch(loader) == [16, 16, 8]


def test_recbole_gives_a_general_model_one_user_per_batch(root):
    """The behaviour the loader replaces: 16 // 61 item ids -> batches of one user."""
    config = make_config(root, "synthetic", "DSSM", eval_batch_size=EVAL_USERS)
    _, valid, _ = recbole_data_preparation(config, create_dataset(config))
    assert users_per_batch(valid) == [1] * N_USERS


def test_each_user_is_evaluated_once_with_one_target(root):
    config = make_config(root, "synthetic", "DSSM", eval_batch_size=EVAL_USERS)
    _, _, test = data_preparation(config, create_dataset(config))
    users, targets = [], 0
    for interaction, _, target_rows, _ in test:
        users += interaction["user_id"].tolist()
        assert target_rows.tolist() == list(range(len(interaction)))
        targets += len(target_rows)
    assert sorted(users) == list(range(1, N_USERS + 1)) and targets == N_USERS


def test_sampled_evaluation_is_refused(root):
    config = make_config(root, "synthetic", "DSSM",
                         eval_args={"mode": {"valid": "uni100", "test": "full"}})
    with pytest.raises(ValueError, match="eval_args.mode.valid is 'uni100'"):
        data_preparation(config, create_dataset(config))


def test_saving_dataloaders_is_refused_not_ignored(root):
    config = make_config(root, "synthetic", "DSSM", save_dataloaders=True)
    with pytest.raises(ValueError, match="save_dataloaders is not supported"):
        data_preparation(config, create_dataset(config))
