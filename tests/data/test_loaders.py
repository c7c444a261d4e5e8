"""Evaluation batches are users for every model (RecBole counts a general model's in pairs)."""
import numpy as np
import pytest
from recbole.data import data_preparation as recbole_data_preparation

from recbole_microlens.config.check import ConfigError
from recbole_microlens.data.recbole.dataset import create_dataset
from recbole_microlens.data.recbole.loaders import data_preparation
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


@pytest.mark.parametrize("switch, value", [("save_dataloaders", True), ("save_dataset", True),
                                           ("dataset_save_path", "saved/d.pth"),
                                           ("dataloaders_save_path", "saved/l.pth")])
def test_recbole_pickle_caches_are_refused_not_ignored(root, switch, value):
    """RecBole would write (and on the next run unpickle) the dataset or its loaders; here the
    switch is refused at once, in one line, instead of silently doing nothing."""
    with pytest.raises(ConfigError, match=f"^{switch} is not supported"):
        make_config(root, "synthetic", "DSSM", **{switch: value})


def test_log_wandb_without_wandb_is_one_line_not_an_import_traceback(root, monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",  # an environment without wandb
                        lambda name, *a: None if name == "wandb" else real_find_spec(name, *a))
    with pytest.raises(ConfigError, match="log_wandb is True but the wandb package is not "
                                          "installed: pip install wandb"):
        make_config(root, "synthetic", "DSSM", log_wandb=True)
