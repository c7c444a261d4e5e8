"""Full ranking with the user's history masked: the one evaluation path of every model.

The official MicroLens protocol scores every item, masks the items the user has already seen
(except the target), and reports HR@K and NDCG@K for one held-out item per user. The metrics are
RecBole's own (any of Hit, Recall, MRR, NDCG, Precision, MAP, ItemCoverage, AveragePopularity,
GiniIndex, ShannonEntropy, TailPercentage), computed by RecBole's ``Evaluator`` from a
``DataStruct`` that we fill from the masked scores with one change to RecBole's ``Collector``:

**Ties never favour the target.** RecBole ranks by ``torch.topk``, whose order among equal scores
is an implementation detail, and a rank counted as "items scoring strictly higher" gives every tie
to the target: a model whose item vectors collapse (all scores equal) would score HR@10 = 1.0.
Here a target's 0-based rank is the number of *other* items scoring at least as high as it, the
pessimistic rank, so a constant model ranks every target last and scores 0. NaN or infinite
scores are an error, not a rank.
"""
from __future__ import annotations

import re
from collections import OrderedDict

import numpy as np
import torch
from recbole.evaluator.collector import DataStruct
from recbole.evaluator.evaluator import Evaluator
from recbole.evaluator.metrics import AveragePopularity, TailPercentage
from recbole.evaluator.register import Register, metrics_dict
from recbole_microlens.errors import ConfigError, NonFiniteError


def check_finite(scores: torch.Tensor, model_name: str, split: str) -> None:
    """Scores of real items (column 0 is padding) must be finite numbers. A NaN or an infinity
    survives a sum, so one summed pass clears the usual case; the exact search runs only when
    the sum is not finite (a NaN, an infinity, or finite scores whose sum overflowed)."""
    if torch.isfinite(scores[:, 1:].sum()):
        return
    bad = ~torch.isfinite(scores[:, 1:])
    if bad.any():
        rows, cols = torch.nonzero(bad, as_tuple=True)
        raise NonFiniteError(
            f"{model_name} gave {int(bad.sum())} non-finite scores on the {split} split "
            f"(first: row {int(rows[0])}, item id {int(cols[0]) + 1}, value "
            f"{scores[rows[0], cols[0] + 1].item()}); a NaN or infinite score cannot be ranked")


def mask_scores(scores: torch.Tensor, mask_rows, mask_items, target_rows, target_items) -> None:
    """In place: padding item 0 and the given (row, item) pairs to -inf, targets kept."""
    target_scores = scores[target_rows, target_items].clone()
    scores[:, 0] = -torch.inf
    scores[mask_rows, mask_items] = -torch.inf
    scores[target_rows, target_items] = target_scores


#: target rows compared at a time: a [128, n_items] chunk and its comparison stay in cache,
#: where one [batch, n_items] pass over ~20,000 items runs from memory, several times slower
ROW_CHUNK = 128


def target_row_chunks(scores: torch.Tensor, target_rows: torch.Tensor):
    """(rows of ``scores``, their positions in ``target_rows``), ROW_CHUNK target rows at a time."""
    for start in range(0, len(target_rows), ROW_CHUNK):
        chunk = slice(start, start + ROW_CHUNK)
        yield scores.index_select(0, target_rows[chunk]), chunk


def target_ranks(scores: torch.Tensor, target_rows, target_items) -> torch.Tensor:
    """0-based pessimistic rank of each target: how many other items score at least as high."""
    target_scores = scores[target_rows, target_items].unsqueeze(1)
    ranks = torch.zeros(len(target_rows), dtype=torch.long, device=scores.device)
    for rows, chunk in target_row_chunks(scores, target_rows):
        ranks[chunk] = (rows >= target_scores[chunk]).sum(dim=1, dtype=torch.int32)
    return ranks - 1


def top_items(scores: torch.Tensor, k: int, target_rows: torch.Tensor | None = None) -> torch.Tensor:
    """The ``k`` best items of each target row (every row by default), as served: the list the
    diversity metrics read."""
    if target_rows is None:
        target_rows = torch.arange(scores.size(0), device=scores.device)
    k = min(k, scores.size(1))
    served = torch.zeros(len(target_rows), k, dtype=torch.long, device=scores.device)
    for rows, chunk in target_row_chunks(scores, target_rows):
        served[chunk] = torch.topk(rows, k, dim=1).indices
    return served


# ------------------------------------------------------------------ RecBole's metrics ----


class FastAveragePopularity(AveragePopularity):
    """RecBole's AveragePopularity with the per-entry Python loop replaced by one lookup."""

    def get_pop(self, item_matrix, item_count):
        return _lookup(item_matrix, item_count, default=0)


class FastTailPercentage(TailPercentage):
    """RecBole's TailPercentage (same tail set) with ``np.isin`` instead of a Python list scan
    per entry (50,000 users x top-20 x ~1,900 tail items: ~1.9 billion comparisons)."""

    def get_tail(self, item_matrix, count_items):
        if self.tail > 1:
            tail_items = [item for item, cnt in count_items.items() if cnt <= self.tail]
        else:
            ordered = sorted(count_items.items(), key=lambda kv: (kv[1], kv[0]))
            tail_items = [item for item, _ in ordered[:max(int(len(ordered) * self.tail), 1)]]
        return np.isin(item_matrix, np.asarray(tail_items)).astype(item_matrix.dtype)


def _lookup(item_matrix: np.ndarray, table: dict, default) -> np.ndarray:
    values = np.full(int(max(item_matrix.max(initial=0), max(table, default=0))) + 1, default)
    values[list(table)] = list(table.values())
    return values[item_matrix].astype(item_matrix.dtype)


# Exact equivalents of RecBole's metric classes where RecBole loops in Python per entry
# (tests/evaluator/test_evaluation.py checks each against RecBole's own on the same data).
FAST_METRICS = {"averagepopularity": FastAveragePopularity, "tailpercentage": FastTailPercentage}
NEEDS_ITEMS = "rec.items"


class MLEvaluator(Evaluator):
    """RecBole's Evaluator with the fast metric classes above; results in the paper's layout
    (every metric @10, then every metric @20)."""

    def __init__(self, config):
        unknown = [m for m in config["metrics"] if m.lower() not in metrics_dict]
        if unknown:
            raise ConfigError(f"metrics {unknown} are not RecBole metrics; choose among "
                              f"{sorted(metrics_dict)}")
        super().__init__(config)
        for name in self.metrics:
            if name in FAST_METRICS:
                self.metric_class[name] = FAST_METRICS[name](config)
        self.register = Register(config)

    def needs_items(self) -> bool:
        return self.register.need(NEEDS_ITEMS)

    def evaluate(self, dataobject: DataStruct) -> "OrderedDict[str, float]":
        result = super().evaluate(dataobject)
        return OrderedDict(sorted(result.items(), key=lambda kv: _cutoff(kv[0])))


class EvalResult(OrderedDict):
    """One evaluation in RecBole's shape, metric -> float (what stock RecBole's ``evaluate``
    returns, so ``test_result`` and ``best_valid_result`` read as RecBole's do), with the reports
    computed beside the metrics (per popularity group, unseen targets, fallback targets) in
    ``breakdowns``, outside the mapping."""

    def __init__(self, metrics=(), breakdowns: dict | None = None):
        super().__init__(metrics)
        self.breakdowns = dict(breakdowns or {})

    def __repr__(self) -> str:  # RecBole's "test result: OrderedDict([...])" log line
        return repr(OrderedDict(self))


def with_breakdowns(result) -> dict:
    """Metrics and breakdowns in one dict (our ``result['valid']`` / ``result['test']``:
    ``by_popularity``, ``unseen_targets``, ``fallback_targets``, ``real_content`` beside the
    metrics); ``{}`` for a split that was not evaluated."""
    if result is None:
        return {}
    return {**result, **getattr(result, "breakdowns", {})}


def _cutoff(key: str) -> int:
    match = re.search(r"@(\d+)$", key)
    return int(match.group(1)) if match else 0


def ranking_struct(ranks: np.ndarray, items: np.ndarray | None, max_k: int, num_items: int,
                   item_counts: np.ndarray) -> DataStruct:
    """What RecBole's Collector would hand its Evaluator for full ranking, from our ranks.

    ``rec.topk`` is [users, max_k + 1]: a 1 at the target's rank when it is inside the top
    ``max_k``, then the number of positives (1, leave-one-out). ``data.count_items`` holds every
    item's training count, zeros included, so never-seen items count as tail items.
    """
    ranks = torch.as_tensor(np.asarray(ranks, dtype=np.int64))
    hits = torch.zeros(len(ranks), max_k + 1, dtype=torch.int)
    inside = ranks < max_k
    hits[torch.nonzero(inside).squeeze(1), ranks[inside]] = 1
    hits[:, max_k] = 1
    struct = DataStruct()
    struct.set("rec.topk", hits)
    if items is not None:
        struct.set("rec.items", torch.as_tensor(items))
    struct.set("data.num_items", num_items)
    struct.set("data.count_items", {item: int(c) for item, c in enumerate(item_counts) if item})
    return struct


def ranking_metrics(evaluator: MLEvaluator, ranks, items, num_items, item_counts, topk):
    """RecBole metrics of one set of evaluated users (all of them, or a group)."""
    if len(ranks) == 0:
        return OrderedDict((key, 0.0) for key in _metric_keys(evaluator, topk))
    struct = ranking_struct(ranks, items, max(topk), num_items, item_counts)
    return evaluator.evaluate(struct)


def _metric_keys(evaluator: MLEvaluator, topk) -> list[str]:
    return [f"{name}@{k}" for k in topk for name in evaluator.metrics]


def popularity_groups(train_counts: np.ndarray, num_groups: int) -> np.ndarray:
    """Group 1..``num_groups`` of every item id (0, padding, gets 0) by training popularity.

    Equal-count item groups: items ranked by (training count, id) ascending and cut into
    ``num_groups`` groups of (nearly) the same number of items, so group 1 holds the coldest items
    (those never seen in training first) and the last group the most popular, as the paper's
    Figure 6 numbers its groups.
    """
    items = np.arange(1, len(train_counts))
    ranked = items[np.lexsort((items, train_counts[1:]))]
    groups = np.zeros(len(train_counts), dtype=np.int64)
    groups[ranked] = 1 + np.arange(len(ranked)) * num_groups // max(len(ranked), 1)
    return groups


class RankCollector:
    """Accumulates, over evaluation batches, each target's rank and item and the top items."""

    def __init__(self):
        self._ranks: list[np.ndarray] = []
        self._targets: list[np.ndarray] = []
        self._items: list[np.ndarray] = []

    def add(self, ranks: torch.Tensor, target_items: torch.Tensor, items=None) -> None:
        self._ranks.append(ranks.cpu().numpy())
        self._targets.append(target_items.cpu().numpy())
        if items is not None:
            self._items.append(items.cpu().numpy())

    def gather(self) -> None:
        """Under DDP each process ranked its shard of users: collect every shard everywhere."""
        shards = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(shards, (self._ranks, self._targets, self._items))
        self._ranks = [part for ranks, _, _ in shards for part in ranks]
        self._targets = [part for _, targets, _ in shards for part in targets]
        self._items = [part for _, _, items in shards for part in items]

    @property
    def ranks(self) -> np.ndarray:
        return np.concatenate(self._ranks) if self._ranks else np.zeros(0, dtype=np.int64)

    @property
    def target_items(self) -> np.ndarray:
        return np.concatenate(self._targets) if self._targets else np.zeros(0, dtype=np.int64)

    @property
    def items(self) -> np.ndarray | None:
        return np.concatenate(self._items) if self._items else None


class RankingReport:
    """Metrics of a finished ranking: overall, by popularity group, and over any row subset."""

    def __init__(self, config, collector: RankCollector, num_items: int, item_counts: np.ndarray):
        self.evaluator = MLEvaluator(config)
        self.topk = config["topk"]
        self.ranks, self.targets, self.items = collector.ranks, collector.target_items, collector.items
        self.num_items, self.item_counts = num_items, item_counts

    def metrics(self, rows=None) -> "OrderedDict[str, float]":
        if rows is None:
            rows = slice(None)
        items = None if self.items is None else self.items[rows]
        return ranking_metrics(self.evaluator, self.ranks[rows], items, self.num_items,
                               self.item_counts, self.topk)

    def by_popularity(self, num_groups: int) -> dict:
        """``{group: {metric: value, n_users, items, train_count_min, train_count_max}}`` for
        the targets of each popularity group; weighted by ``n_users`` the accuracy metrics
        average to the overall ones."""
        item_groups = popularity_groups(self.item_counts, num_groups)
        target_groups = item_groups[self.targets]
        report = {}
        for group in range(1, num_groups + 1):
            rows, counts = target_groups == group, self.item_counts[item_groups == group]
            report[str(group)] = {
                **self.metrics(rows),
                "n_users": int(rows.sum()),
                "items": int(counts.size),
                "train_count_min": int(counts.min()) if counts.size else 0,
                "train_count_max": int(counts.max()) if counts.size else 0,
            }
        return report

    def unseen_targets(self) -> dict:
        """Metrics over the targets whose item has no training interaction, and their number:
        the cold-start case that only content can rank (an ID model's embedding for such an
        item is still its initialisation). An empty set reports ``n_users`` 0 and zeros."""
        rows = self.item_counts[self.targets] == 0
        return {**self.metrics(rows), "n_users": int(rows.sum())}

    def over_items(self, item_flags: np.ndarray) -> tuple[int, "OrderedDict[str, float] | None"]:
        """(number of targets whose item is flagged, metrics over the other targets; None when
        every target is flagged: metrics over no target are not 0, they do not exist)."""
        flagged = item_flags[self.targets]
        return int(flagged.sum()), self.metrics(~flagged) if not flagged.all() else None
