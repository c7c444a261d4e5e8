"""SASRec's learning rate x embedding size grid (paper, section 3.2) on MicroLens-50k, at CPU sizes.

    python -m benchmarks.tune_sasrec_50k --raw-dir DIR

Converts the raw files (once) into benchmarks/out/atomic_files, then sweeps lr {1e-4, 1e-3} x
embedding size {32, 64} with Ray Tune (``recbole_microlens.tune.run_tune``), 2 trials at a time
on 1 CPU each, a fixed epoch budget per trial. Prints every trial (valid and test metrics, epochs,
wall time), the trial chosen on valid NDCG@10 and its test metrics; the CSV, Markdown, best yaml
and heatmap land in benchmarks/out/tune/<name>/. ``--dataset microlens-sample --epochs 1`` is a
smoke test on the embedded sample (seconds, no raw files).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks.common import DATASET as FULL_DATASET
from benchmarks.common import OUT, ROOT, convert_once

DATA = OUT / "atomic_files"


def grid(args) -> dict:
    """The swept axes, and a fixed epoch budget so every trial costs the same."""
    return {
        "search_space": {"learning_rate": args.lrs, "embedding_size": args.sizes},
        "fixed": {"epochs": args.epochs, "stopping_step": args.epochs,
                  "train_batch_size": args.batch_size, "eval_batch_size": 2048, "seed": 2024},
        "asha": {"grace_period": 1, "reduction_factor": 2},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--raw-dir", type=Path, default=ROOT.parent / "shared/data/microlens-50k")
    parser.add_argument("--dataset", default=FULL_DATASET,
                        choices=[FULL_DATASET, "microlens-sample"])
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 1e-3])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--max-concurrent", type=int, default=2)
    parser.add_argument("--cpus-per-trial", type=float, default=1)
    parser.add_argument("--asha", action="store_true")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted sweep")
    parser.add_argument("--name", help="experiment folder (default: sasrec-<dataset>-e<epochs>)")
    args = parser.parse_args()

    from recbole_microlens.tune import run_tune

    if args.dataset == FULL_DATASET:
        convert_once(args.raw_dir)
    started = time.perf_counter()
    result = run_tune("SASRec", args.dataset, grid(args), config_dict={"data_path": str(DATA)},
                      max_concurrent=args.max_concurrent, cpus_per_trial=args.cpus_per_trial,
                      asha=args.asha, tune_dir=OUT / "tune", resume=args.resume,
                      name=args.name or f"sasrec-{args.dataset}-e{args.epochs}")
    seconds = time.perf_counter() - started
    best = result.best or {}
    print(f"\n{args.dataset}: {len(result.trials)} trials in {seconds:.0f} s "
          f"({args.max_concurrent} at a time, {args.cpus_per_trial:g} CPU each, "
          f"{args.epochs} epochs, batch {args.batch_size})")
    print("chosen on valid NDCG@10:", json.dumps(
        {key: best.get(key) for key in ("learning_rate", "embedding_size", "valid_ndcg@10",
                                        "test_hit@10", "test_ndcg@10", "test_hit@20",
                                        "test_ndcg@20")}))


if __name__ == "__main__":
    main()
