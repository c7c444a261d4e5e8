"""ID baselines on MicroLens-50k under the official protocol, beside stock RecBole SASRec.

    python -m benchmarks.train_microlens50k --raw-dir DIR

Converts the raw files (once) into benchmarks/out/atomic_files, then trains each model in its
own process (so peak memory is per model) and prints one table: HR/NDCG@10/20, seconds per
epoch, peak memory. Stock RecBole SASRec (CE loss over all items, one row per prefix, its own
full-sort evaluation without history masking) runs on the same atomic files with the same
sizes; its epoch time and metrics are reported as ratios/differences against ours.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from tabulate import tabulate

from benchmarks.common import DATASET, METRICS, OUT, ROOT, convert_once, run_module
from benchmarks.common import id_baseline_settings as shared_settings


def run_ours(model: str, settings: dict, result_file: Path) -> None:
    from recbole_microlens.quick_start import run_recbole_ml

    run_recbole_ml(model, DATASET, config_dict={**settings, "result_file": str(result_file)})


def run_stock_sasrec(settings: dict, result_file: Path) -> None:
    """Plain RecBole: its dataset, its trainer, its evaluation (no history masking)."""
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    from recbole_microlens import compat
    from recbole_microlens.evaluator.results import peak_rss_mb

    config = Config("SASRec", DATASET, config_dict={
        **settings,
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "MAX_ITEM_LIST_LENGTH": 10,
        "loss_type": "CE",
        "train_neg_sample_args": None,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full"},
        "metrics": ["Hit", "NDCG"], "topk": [10, 20], "valid_metric": "NDCG@10",
        "learner": "adamw", "weight_decay": 0.1, "clip_grad_norm": {"max_norm": 5.0},
    })
    init_seed(config["seed"], config["reproducibility"])
    started = time.perf_counter()
    train, valid, test = data_preparation(config, create_dataset(config))
    prepare = time.perf_counter() - started
    model = SASRec(config, train._dataset).to(config["device"])
    epoch_seconds = []

    class TimedTrainer(Trainer):
        def _train_epoch(self, *a, **k):
            t0 = time.perf_counter()
            loss = super()._train_epoch(*a, **k)
            epoch_seconds.append(time.perf_counter() - t0)
            return loss

    trainer = TimedTrainer(config, model)
    _, best_valid = trainer.fit(train, valid, show_progress=False)
    with compat.trusted_recbole_checkpoints(config["checkpoint_dir"]):  # RecBole's own pickles
        test_result = trainer.evaluate(test, load_best_model=True)
    result = {"valid": dict(best_valid), "test": dict(test_result),
              "seconds": {"prepare": prepare, "per_epoch": epoch_seconds,
                          "mean_epoch": sum(epoch_seconds) / len(epoch_seconds)},
              "peak_rss_mb": peak_rss_mb(), "epochs_run": len(epoch_seconds)}
    result_file.write_text(json.dumps(result, indent=2))


def in_subprocess(kind: str, model: str, settings: dict, result_file: Path) -> dict:
    run_module("train_microlens50k", "--_child", kind, model, json.dumps(settings), str(result_file))
    return json.loads(result_file.read_text())


def row(name: str, result: dict) -> list:
    test = {k.lower(): v for k, v in result["test"].items()}
    return [name] + [test[m] for m in METRICS] + [
        result["seconds"]["mean_epoch"], result["seconds"]["prepare"], result["peak_rss_mb"]]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--raw-dir", type=Path, default=ROOT.parent / "shared/data/microlens-50k")
    parser.add_argument("--models", nargs="+", default=["SASRec", "GRU4Rec", "NextItNet"])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--no-stock", action="store_true")
    parser.add_argument("--_child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        kind, model, settings, result_file = args._child
        runner = run_stock_sasrec if kind == "stock" else lambda s, f: run_ours(model, s, f)
        runner(json.loads(settings), Path(result_file))
        return

    meta = convert_once(args.raw_dir)
    settings = shared_settings(args)
    results = {m: in_subprocess("ours", m, settings, OUT / f"{m}.json") for m in args.models}
    rows = [row(f"{m} (official protocol)", r) for m, r in results.items()]
    if not args.no_stock:
        stock = in_subprocess("stock", "SASRec", settings, OUT / "stock_SASRec.json")
        rows.append(row("stock RecBole SASRec (CE, no masking)", stock))
    headers = ["model"] + [m.upper() for m in METRICS] + ["s/epoch", "prepare s", "peak MB"]
    print(f"\nMicroLens-50k ({meta['statistics']['protocol']['interactions']} interactions "
          f"after the protocol), {args.epochs} epochs, dim {args.dim}, lr {args.lr}, "
          f"batch {args.batch_size}")
    print(tabulate(rows, headers=headers, tablefmt="github", floatfmt=".4f"))
    if not args.no_stock and "SASRec" in results:
        ours = results["SASRec"]
        ratio = stock["seconds"]["mean_epoch"] / ours["seconds"]["mean_epoch"]
        diffs = {m: ours["test"][m] - stock["test"][m] for m in METRICS}
        print(f"\nstock/ours epoch time: {ratio:.2f}x; ours - stock test metrics: "
              + ", ".join(f"{m} {d:+.4f}" for m, d in diffs.items()))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count()))
    main()
