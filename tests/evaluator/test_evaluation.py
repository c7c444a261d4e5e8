"""The official protocol on a hand-made dataset with hand-computed HR/NDCG; ties; RecBole's
metrics computed from our ranks equal RecBole's own Collector + Evaluator on the same scores."""
import math

import numpy as np
import pytest
import torch

from recbole.evaluator import Collector, Evaluator
from recbole.evaluator.metrics import AveragePopularity, TailPercentage

from recbole_microlens.evaluator.ranking import (
    FastAveragePopularity,
    FastTailPercentage,
    MLEvaluator,
    RankCollector,
    RankingReport,
    ROW_CHUNK,
    check_finite,
    mask_scores,
    ranking_metrics,
    target_ranks,
    top_items,
)
from recbole_microlens.trainer.trainer import MLTrainer
from tests.helpers import built_run, make_config, write_inter_file

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
    train, valid, test = built_run(config, model=False).splits
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


ALL_RECBOLE_METRICS = ["Recall", "MRR", "NDCG", "Hit", "Precision", "MAP", "ItemCoverage",
                       "AveragePopularity", "GiniIndex", "ShannonEntropy", "TailPercentage"]


class ConstantScores(FixedScores):
    """Every item gets the same score: collapsed item vectors."""

    def full_sort_predict(self, interaction):
        return torch.zeros(len(interaction), self.table.numel())


def test_metrics_from_ranks_match_the_formulas(prepared):
    trainer, _, _ = prepared
    evaluator = MLEvaluator(trainer.config)
    ranks = np.array([0, 2, 1, 5])
    result = ranking_metrics(evaluator, ranks, None, 7, np.ones(7), [1, 3])
    assert list(result) == ["hit@1", "ndcg@1", "mrr@1", "hit@3", "ndcg@3", "mrr@3"]
    assert result["hit@3"] == pytest.approx(3 / 4)
    assert result["ndcg@3"] == pytest.approx((1 + 1 / math.log2(4) + 1 / math.log2(3)) / 4, abs=1e-6)
    assert result["mrr@3"] == pytest.approx((1 + 1 / 3 + 1 / 2) / 4, abs=1e-6)


def test_ties_go_against_the_target():
    scores = torch.tensor([[0.0, 1, 1, 1, 0.5]])
    assert target_ranks(scores, torch.tensor([0]), torch.tensor([2])).item() == 2  # 2 others tie
    assert target_ranks(scores, torch.tensor([0]), torch.tensor([4])).item() == 3
    constant = torch.zeros(1, 6)
    assert target_ranks(constant, torch.tensor([0]), torch.tensor([3])).item() == 5


def test_a_constant_model_scores_zero_not_one(prepared):
    trainer, valid, test = prepared
    constant = MLTrainer(trainer.config, ConstantScores(valid._dataset))
    for data in (valid, test):
        result = constant.evaluate(data, load_best_model=False)
        # every unmasked item ties with the target, so it ranks last among them (6 items: at
        # most 3 are unmasked, hence hit@3 may be 1, never hit@1); strictly-higher counting gave 1
        assert result["hit@1"] == 0.0 and result["ndcg@1"] == 0.0 and result["mrr@1"] == 0.0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_scores_are_an_error_naming_model_and_split(prepared, bad):
    trainer, valid, _ = prepared

    class Broken(FixedScores):
        def full_sort_predict(self, interaction):
            scores = super().full_sort_predict(interaction)
            scores[0, 2] = bad
            return scores

    broken = MLTrainer(trainer.config, Broken(valid._dataset))
    with pytest.raises(FloatingPointError, match=r"SASRec .* on the valid split"):
        broken.evaluate(valid, load_best_model=False)
    check_finite(torch.tensor([[bad, 1.0, 2.0]]), "M", "test")  # the padding column is ignored


def _random_ranking(seed=0, users=60, items=40):
    generator = torch.Generator().manual_seed(seed)
    scores = torch.rand(users, items, generator=generator)  # continuous: no ties
    targets = torch.randint(1, items, (users,), generator=generator)
    rows = torch.arange(users)
    history_rows = torch.randint(0, users, (200,), generator=generator)
    history_items = torch.randint(1, items, (200,), generator=generator)
    keep = history_items != targets[history_rows]
    mask_scores(scores, history_rows[keep], history_items[keep], rows, targets)
    counts = torch.randint(0, 30, (items,), generator=generator).numpy()
    return scores, rows, targets, counts


def test_every_recbole_metric_equals_recboles_own_collector_and_evaluator(prepared):
    trainer, _, _ = prepared
    config = trainer.config
    config["metrics"], config["topk"] = ALL_RECBOLE_METRICS, [5, 10]
    try:
        scores, rows, targets, counts = _random_ranking()
        # RecBole's path: Collector on the masked scores, then Evaluator
        collector = Collector(config)
        collector.eval_batch_collect(scores, None, rows, targets)
        struct = collector.get_data_struct()
        struct.set("data.num_items", scores.size(1))
        struct.set("data.count_items", {i: int(c) for i, c in enumerate(counts) if i})
        theirs = Evaluator(config).evaluate(struct)
        # ours: pessimistic ranks and served lists, RecBole's metric classes
        ours_collector = RankCollector()
        ours_collector.add(target_ranks(scores, rows, targets), targets, top_items(scores, 10))
        ours = RankingReport(config, ours_collector, scores.size(1), counts).metrics()
    finally:
        config["metrics"], config["topk"] = ["Hit", "NDCG", "MRR"], [1, 3]
    assert set(ours) == set(theirs) and len(ours) == 11 * 2
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(value, abs=1e-9), key


@pytest.mark.parametrize("tail_ratio", [0.1, 0.5, 4])
def test_fast_popularity_metrics_equal_recboles(prepared, tail_ratio):
    trainer, _, _ = prepared
    config = trainer.config
    config["topk"], config["tail_ratio"] = [3, 5], tail_ratio
    try:
        from recbole.evaluator.collector import DataStruct

        rng = np.random.default_rng(1)
        struct = DataStruct()
        struct.set("rec.items", torch.from_numpy(rng.integers(1, 30, size=(50, 5))))
        struct.set("data.count_items", {i: int(c) for i, c in enumerate(rng.integers(0, 9, 30)) if i})
        for fast, slow in ((FastTailPercentage, TailPercentage),
                           (FastAveragePopularity, AveragePopularity)):
            assert fast(config).calculate_metric(struct) == slow(config).calculate_metric(struct)
    finally:
        config["topk"], config["tail_ratio"] = [1, 3], None


def test_unknown_metric_is_refused(prepared):
    trainer, _, _ = prepared
    config = trainer.config
    config["metrics"] = ["Hit", "AUCC"]
    try:
        with pytest.raises(ValueError, match="AUCC"):
            MLEvaluator(config)
    finally:
        config["metrics"] = ["Hit", "NDCG", "MRR"]


def test_report_over_items_leaves_flagged_targets_out(prepared):
    trainer, _, _ = prepared
    collector = RankCollector()
    collector.add(torch.tensor([0, 0, 5, 5]), torch.tensor([1, 2, 3, 4]))
    report = RankingReport(trainer.config, collector, 6, np.ones(6))
    flags = np.array([False, False, False, True, True, False])  # items 3, 4 fell back
    assert report.metrics()["hit@3"] == pytest.approx(0.5)
    flagged, real = report.over_items(flags)
    assert flagged == 2 and real["hit@3"] == 1.0


def test_unseen_targets_are_those_never_seen_in_training(prepared):
    trainer, _, _ = prepared
    collector = RankCollector()
    # items 1 and 2 are cold (no training interaction): ranks 0 (hit@1) and 4 (no hit@3)
    collector.add(torch.tensor([0, 4, 0, 9]), torch.tensor([1, 2, 3, 4]))
    counts = np.array([0, 0, 0, 7, 1, 2])
    unseen = RankingReport(trainer.config, collector, 6, counts).unseen_targets()
    assert unseen["n_users"] == 2
    assert unseen["hit@1"] == pytest.approx(0.5) and unseen["hit@3"] == pytest.approx(0.5)
    assert unseen["ndcg@3"] == pytest.approx(0.5)
    none_cold = RankingReport(trainer.config, collector, 6, np.ones(6)).unseen_targets()
    assert none_cold["n_users"] == 0 and none_cold["hit@3"] == 0.0


def test_finite_scores_whose_sum_overflows_are_no_error():
    """The summed fast path must not mistake an overflowing sum of finite scores for a NaN."""
    huge = torch.full((3, 5), 3e38)
    assert not torch.isfinite(huge[:, 1:].sum())
    check_finite(huge, "M", "test")
    huge[1, 3] = float("nan")
    with pytest.raises(FloatingPointError, match="1 non-finite"):
        check_finite(huge, "M", "test")


def test_ranks_and_served_lists_over_many_chunks_equal_the_direct_computation():
    """Target rows are compared ROW_CHUNK at a time; in any order, repeated, across chunk edges."""
    generator = torch.Generator().manual_seed(3)
    scores = torch.randint(0, 6, (3 * ROW_CHUNK + 7, 30), generator=generator).float()  # ties
    target_rows = torch.randint(0, len(scores), (2 * ROW_CHUNK + 5,), generator=generator)
    target_items = torch.randint(1, 30, (len(target_rows),), generator=generator)
    expected = [int((scores[r] >= scores[r, i]).sum()) - 1
                for r, i in zip(target_rows.tolist(), target_items.tolist())]
    assert target_ranks(scores, target_rows, target_items).tolist() == expected
    served = top_items(scores, 4, target_rows)
    assert torch.equal(served, torch.topk(scores[target_rows], 4, dim=1).indices)
    assert torch.equal(top_items(scores, 4), torch.topk(scores, 4, dim=1).indices)
    assert top_items(scores, 4, target_rows[:0]).shape == (0, 4)
