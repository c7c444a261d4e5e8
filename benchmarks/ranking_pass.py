"""What the chunked ranking pass saves one evaluation batch, against the whole-batch pass before it.

    python benchmarks/ranking_pass.py

After the model scores a batch of users against every item, evaluation checks the scores are
finite, counts each target's rank and takes each row's served top-k. The pass before (kept here
as the baseline) built a [B, n_items] finiteness mask, gathered the target rows twice (ranks,
top-k) and counted ranks over the whole [B, n_items] comparison. ``evaluation.py`` now clears
finiteness with one summed pass and compares ROW_CHUNK rows at a time, in cache. Both run on the
same scores (a full eval batch of 2,048 users by MicroLens-50k's 19,739 item columns, ties
included), interleaved; the script checks they agree, then prints the median seconds per batch
and the ratio.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recbole_microlens.evaluator.ranking import check_finite, target_ranks, top_items  # noqa: E402


def whole_batch_pass(scores, target_rows, target_items, k):
    """The baseline: finiteness mask, two row gathers, one whole-batch comparison."""
    if (~torch.isfinite(scores[:, 1:])).any():
        raise FloatingPointError("non-finite scores")
    target_scores = scores[target_rows, target_items].unsqueeze(1)
    ranks = (scores[target_rows] >= target_scores).sum(dim=1) - 1
    return ranks, torch.topk(scores[target_rows], k, dim=1).indices


def chunked_pass(scores, target_rows, target_items, k):
    """Now: evaluation.py's functions, as the trainer calls them."""
    check_finite(scores, "SASRec", "valid")
    return target_ranks(scores, target_rows, target_items), top_items(scores, k, target_rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=2048)
    parser.add_argument("--items", type=int, default=19739)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(args.users, args.items, generator=generator).mul(4).round()  # ties
    target_rows = torch.arange(args.users)
    target_items = torch.randint(1, args.items, (args.users,), generator=generator)
    passes = {"whole batch (before)": whole_batch_pass, "chunked (now)": chunked_pass}
    ranks = [function(scores, target_rows, target_items, args.k)[0] for function in passes.values()]
    assert torch.equal(*ranks), "the two passes disagree on the ranks"
    times = {name: [] for name in passes}
    for _ in range(args.repeats):
        for name, function in passes.items():
            started = time.perf_counter()
            function(scores, target_rows, target_items, args.k)
            times[name].append(time.perf_counter() - started)
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"{args.users} users x {args.items} items, top-{args.k}, {torch.get_num_threads()} "
          f"threads, median of {args.repeats}")
    for name, seconds in median.items():
        print(f"{name:22s} {seconds:.3f} s/batch")
    before, now = median.values()
    print(f"before / now: {before / now:.2f}x")


if __name__ == "__main__":
    main()
