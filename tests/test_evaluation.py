"""The official protocol on a hand-made dataset with hand-computed HR/NDCG."""
import math

import numpy as np
import pytest
import torch

from recbole_microlens.data.dataset import create_dataset
from recbole_microlens.data.loaders import data_preparation
from recbole_microlens.evaluation import mask_scores, metrics_from_ranks, target_ranks
from recbole_microlens.trainer import MLTrainer
from tests.helpers import make_config, write_inter_file

# Fixed item scores: a > b > c > d > e > f.
SCORE_BY_TOKEN = {"a": 6.0, "b": 5.0, "c": 4.0, "d": 3.0, "e": 2.0, "f": 1.0}
SEQUENCES = {
    "u1": list("abcde"),  # valid d: a,b,c masked -> rank 0; test e: a..d masked -> rank 0
    "u2": list("bcafe"),  # valid f: b,c,a masked -> d,e ahead -> rank 2; test e: d ahead -> rank 1
    "u3": list("fedcb"),  # valid c: f,e,d masked -> a,b ahead -> rank 2; test b: a ahead -> rank 1
}


class FixedScores(torch.nn.Module):
    """Scores every item by a fixed table, whatever the user (ranking is then hand-computable)."""

    def __init__(self, dataset):
        super().__init__()
        table = torch.full((dataset.item_num,), -1.0)
        for token, score in SCORE_BY_TOKEN.items():
            table[dataset.token2id(dataset.iid_field, token)] = score
        self.register_buffer("table", table)
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def full_sort_predict(self, interaction):
        return self.table.expand(len(interaction), -1).clone()


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("protocol")
    write_inter_file(root, "hand", SEQUENCES)
    config = make_config(root, "hand", topk=[1, 3], metrics=["Hit", "NDCG", "MRR"])
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    trainer = MLTrainer(config, FixedScores(train._dataset))
    return trainer, valid, test


def test_valid_metrics_mask_history_but_not_future(prepared):
    trainer, valid, _ = prepared
    result = trainer.evaluate(valid, load_best_model=False)
    # ranks 0, 2, 2
    assert result["hit@1"] == pytest.approx(1 / 3, abs=1e-6)
    assert result["hit@3"] == pytest.approx(1.0)
    assert result["ndcg@3"] == pytest.approx((1 + 0.5 + 0.5) / 3, abs=1e-6)
    assert result["mrr@3"] == pytest.approx((1 + 1 / 3 + 1 / 3) / 3, abs=1e-6)


def test_test_metrics_mask_train_and_valid_items(prepared):
    trainer, _, test = prepared
    result = trainer.evaluate(test, load_best_model=False)
    # ranks 0, 1, 1
    assert result["hit@1"] == pytest.approx(1 / 3, abs=1e-6)
    assert result["hit@3"] == pytest.approx(1.0)
    assert result["ndcg@3"] == pytest.approx((1 + 2 / math.log2(3)) / 3, abs=1e-6)


def test_masking_changes_the_ranking():
    scores = torch.tensor([[0.0, 6, 5, 4, 3, 2, 1]])  # item 0 is padding
    target_rows, target_items = torch.tensor([0]), torch.tensor([5])
    assert target_ranks(scores.clone(), target_rows, target_items).item() == 4
    mask_scores(scores, torch.tensor([0, 0, 0, 0]), torch.tensor([1, 2, 3, 5]), target_rows, target_items)
    assert torch.isinf(scores[0, [0, 1, 2, 3]]).all()
    assert scores[0, 5] == 2  # the target is never masked
    assert target_ranks(scores, target_rows, target_items).item() == 1


def test_metrics_from_ranks_matches_formulas():
    ranks = np.array([0, 3, 9, 10, 25])
    result = metrics_from_ranks(ranks, [10, 20], ["Hit", "NDCG"])
    assert list(result) == ["hit@10", "ndcg@10", "hit@20", "ndcg@20"]
    assert result["hit@10"] == pytest.approx(3 / 5)
    assert result["hit@20"] == pytest.approx(4 / 5)
    expected = (1 + 1 / math.log2(5) + 1 / math.log2(11)) / 5
    assert result["ndcg@10"] == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError, match="not supported"):
        metrics_from_ranks(ranks, [10], ["AUC"])
