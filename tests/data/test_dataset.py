"""Our RecBole datasets: same augmentation as RecBole, windows covering each target once."""
import numpy as np
import pytest
import torch
from recbole.data.dataset import SequentialDataset

from recbole_microlens.data.recbole.dataset import MLSequentialDataset, create_dataset
from recbole_microlens.data.recbole.history import UserSequences
from recbole_microlens.model.loss import window_targets
from tests.helpers import built_run, make_config, write_inter_file


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    rng = np.random.default_rng(7)
    root = tmp_path_factory.mktemp("ds")
    sequences = {
        f"u{u}": [f"i{i}" for i in rng.choice(60, size=rng.integers(5, 30), replace=False)]
        for u in range(40)
    }
    write_inter_file(root, "synthetic", sequences)
    return root, sequences


def test_vectorised_augmentation_equals_recbole(root):
    path, _ = root
    config = make_config(path, "synthetic", MAX_ITEM_LIST_LENGTH=4)
    ours, stock = MLSequentialDataset(config), SequentialDataset(config)
    ours._change_feat_format()
    stock._change_feat_format()
    assert set(ours.inter_feat.columns) == set(stock.inter_feat.columns)
    for field in stock.inter_feat.columns:
        assert torch.equal(ours.inter_feat[field], stock.inter_feat[field]), field


@pytest.mark.parametrize("max_len", [3, 10])
def test_training_windows_predict_every_training_target_once(root, max_len):
    path, sequences = root
    config = make_config(path, "synthetic", MAX_ITEM_LIST_LENGTH=max_len)
    dataset = create_dataset(config)
    train, _, _ = dataset.build()
    inter = train.inter_feat
    targets = window_targets(inter["item_id_list"], inter["item_length"], inter["item_id"])
    predicted = sorted(targets[targets > 0].tolist())
    # every training item except each user's first, i.e. items 1 .. n-3 of each sequence
    expected = sorted(
        dataset.token2id("item_id", item) for seq in sequences.values() for item in seq[1:-2]
    )
    assert predicted == expected


def test_prefix_rows_for_ce_loss(root):
    path, sequences = root
    dataset = create_dataset(make_config(path, "synthetic", loss_type="CE"))
    train, _, _ = dataset.build()
    assert len(train.inter_feat) == sum(len(s) - 3 for s in sequences.values())


def test_train_popularity_counts_training_part_only(root):
    path, sequences = root
    dataset = create_dataset(make_config(path, "synthetic"))
    dataset.build()
    counts = dataset.train_item_counts()
    expected = np.zeros(dataset.item_num, dtype=np.int64)
    for seq in sequences.values():
        for item in seq[:-2]:
            expected[dataset.token2id("item_id", item)] += 1
    assert np.array_equal(counts, expected)


def test_eval_splits_know_their_holdout(root):
    path, _ = root
    config = make_config(path, "synthetic")
    _, valid, test = built_run(config, model=False).splits
    assert (valid._dataset.eval_holdout, test._dataset.eval_holdout) == (2, 1)


def test_non_leave_one_out_split_is_refused(root):
    path, _ = root
    config = make_config(path, "synthetic", eval_args={"split": {"RS": [0.8, 0.1, 0.1]},
                                                        "order": "TO", "mode": "full"})
    with pytest.raises(ValueError, match="leave-one-out"):
        create_dataset(config).build()


def test_user_sequences_history_indices():
    seqs = UserSequences.from_arrays(np.array([1, 1, 1, 2, 2]), np.array([5, 6, 7, 8, 9]), 3)
    rows, items = seqs.history_mask_indices(torch.tensor([2, 1]), holdout=1)
    assert rows.tolist() == [0, 1, 1] and items.tolist() == [8, 5, 6]
    assert seqs.train_item_counts(10, holdout=2).tolist() == [0, 0, 0, 0, 0, 1, 0, 0, 0, 0]
