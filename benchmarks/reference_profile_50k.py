"""ID SASRec on MicroLens-50k: the reference code's training option by option, against our defaults.

    python -m benchmarks.reference_profile_50k --raw-dir DIR
    python -m benchmarks.reference_profile_50k --dataset microlens-sample --epochs 1 --seeds 1  # smoke

Every run: d=128 (FFN 4 x d), lr 1e-3, batch 512, AdamW (weight decay 0.1), early stopping after
``--stopping-step`` validations without a better selection score, at most ``--epochs`` epochs; the
test split is read once, for the selected epoch. Rows:

* ``reference``: properties/profile/reference.yaml; ``defaults``: the project's defaults (for
  SASRec, slot candidates and left padding, chosen on valid by the rows below);
* ``defaults before``: unique candidates and right padding, the defaults until then;
* ``defaults, <option>`` / ``defaults + <option>``: one option of the profile flipped alone.

The three headline rows run ``--seeds`` seeds each (mean +- std); the single-option rows the
first ``--option-seeds`` of them (default 1; ``--report`` shows every seed trained). Each run
is its own process (peak memory per run); a result file is reused when the config it was
trained with equals the config the run resolves to now, defaults included (``common.trained_alike``;
``--rerun`` trains again). Prints valid and test HR/NDCG@10, the
popularity-bias metrics of the test lists, seconds per epoch, per validation and for the test
ranking.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
from pathlib import Path

from tabulate import tabulate

from benchmarks.common import OUT, ROOT, convert_once, run_module, trained_alike

REFERENCE = str(ROOT / "properties" / "profile" / "reference.yaml")
# The defaults before the reference-profile study (results/studies.md) chose slot candidates and
# left padding for SASRec on valid.
BEFORE = {"inbatch_candidates": "unique", "padding_side": "right"}
# rows run with every seed: name -> (config files, overrides)
HEADLINE = {
    "reference": ([REFERENCE], {}),
    "defaults": ([], {}),
    "defaults before (unique candidates, right padding)": ([], BEFORE),
}
# rows run with the first --option-seeds seeds: one option of the reference profile flipped
# from the defaults
# (the profile's keys, grouped as the issue lists the differences; FFN 4 x d is in every row)
OPTIONS = {
    "defaults, unique candidates": {"inbatch_candidates": "unique"},
    "defaults, right padding": {"padding_side": "right"},
    "defaults + xavier init": {"weight_init": "xavier_normal"},
    "defaults + ReLU FFN, LN eps 1e-6": {"hidden_act": "relu", "layer_norm_eps": 1e-6},
    "defaults + select on HR@10": {"valid_metric": "Hit@10"},
}
METRICS = ["Hit", "NDCG", "ItemCoverage", "AveragePopularity", "GiniIndex", "TailPercentage"]
SHOWN = ["hit@10", "ndcg@10"]
BIAS = ["itemcoverage@10", "averagepopularity@10", "giniindex@10", "tailpercentage@10"]


def settings(args) -> dict:
    return {
        "data_path": str(OUT / "atomic_files"),
        "checkpoint_dir": str(OUT / "saved"),
        "hidden_size": args.dim,
        "inner_size": 4 * args.dim,
        "learning_rate": args.lr,
        "train_batch_size": args.batch_size,
        "eval_batch_size": 2048,
        "epochs": args.epochs,
        "stopping_step": args.stopping_step,
        "metrics": METRICS,
        "topk": [10, 20],
        "show_progress": False,
    }


def runs(args) -> list[tuple[str, int, list, dict]]:
    """(row name, seed, config files, overrides): headline rows first, seeds interleaved."""
    planned = [(name, seed, files, overrides)
               for seed in args.seeds for name, (files, overrides) in HEADLINE.items()]
    option_seeds = args.seeds if args.report else args.seeds[:args.option_seeds]
    planned += [(name, seed, [], overrides)
                for name, overrides in OPTIONS.items() for seed in option_seeds]
    return planned


def result_path(name: str, seed: int, folder: Path) -> Path:
    slug = re.sub(r"[^A-Za-z0-9+-]+", "_", name.replace(" + ", "+")).strip("_")
    return folder / f"{slug}-seed{seed}.json"


def run_one(dataset, config_files, config_dict, result_file: Path, rerun: bool) -> dict:
    """Train in a child process; reuse a result trained with the config this run resolves to."""
    if not rerun and trained_alike(result_file, "SASRec", dataset, config_files, config_dict):
        return json.loads(result_file.read_text())
    result_file.parent.mkdir(parents=True, exist_ok=True)
    wanted = {"config_files": config_files, "config_dict": config_dict}
    run_module("reference_profile_50k", "--_child", dataset, json.dumps(wanted), str(result_file))
    return json.loads(result_file.read_text())


def child(dataset: str, wanted: str, result_file: str) -> None:
    from recbole_microlens.quick_start import run_recbole_ml

    wanted = json.loads(wanted)
    run_recbole_ml("SASRec", dataset, wanted["config_files"] or None,
                   {**wanted["config_dict"], "result_file": result_file})


def best_epoch(result: dict, metric: str) -> int:
    history = [scores[metric] for scores in result["valid_history"]]
    return history.index(max(history))


def selection_agreement(group: list[dict]) -> str:
    """Whether selecting on valid HR@10 instead of NDCG@10 would pick another epoch: where both
    peak at the same epoch the runs are the same run (selection does not change training, and
    early stopping counts from the same best epoch), so that row needs no training."""
    same = [best_epoch(r, "hit@10") == best_epoch(r, "ndcg@10") for r in group]
    return (f"defaults: valid HR@10 and NDCG@10 peak at the same epoch in {sum(same)} of "
            f"{len(same)} seeds (there, selecting on HR@10 gives the same model and test scores)")


def mean_std(values: list[float], digits: int = 4) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def table(results: dict[str, list[dict]]) -> str:
    rows = []
    for name, group in results.items():
        cells = [name, len(group)]
        cells += [mean_std([r["valid"][m] for r in group]) for m in SHOWN]
        cells += [mean_std([r["test"][m] for r in group]) for m in SHOWN]
        cells += [mean_std([r["test"][m] for r in group], 3) for m in BIAS]
        cells += [mean_std([r["epochs_run"] for r in group], 1),
                  mean_std([r["seconds"]["mean_epoch"] for r in group], 1),
                  mean_std([min(r["seconds"]["per_epoch"]) for r in group], 1),
                  mean_std([statistics.mean(r["seconds"]["per_validation"]) for r in group], 1),
                  mean_std([r["seconds"]["test"] for r in group], 1)]
        cells.append(" ".join(sorted({r["versions"].get("source") or "unrecorded" for r in group})))
        rows.append(cells)
    headers = (["row", "seeds", "valid HR@10", "valid NDCG@10", "test HR@10", "test NDCG@10"]
               + ["test " + m.replace("@10", "").replace("averagepopularity", "avg pop")
                  .replace("itemcoverage", "coverage").replace("tailpercentage", "tail %")
                  .replace("giniindex", "gini") + "@10" for m in BIAS]
               + ["epochs", "s/epoch", "fastest epoch s", "s/valid", "s test", "code"])
    return tabulate(rows, headers=headers, tablefmt="github")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--raw-dir", type=Path, default=ROOT.parent / "shared/data/microlens-50k")
    parser.add_argument("--dataset", default="microlens-50k")
    parser.add_argument("--seeds", type=int, nargs="+", default=[2024, 2025, 2026])
    parser.add_argument("--option-seeds", type=int, default=1,
                        help="how many of --seeds the single-option rows train")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--stopping-step", type=int, default=3)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--only", nargs="*", help="row names to run (default: all)")
    parser.add_argument("--rerun", action="store_true")
    parser.add_argument("--report", action="store_true",
                        help="only tabulate the result files there are; train nothing")
    parser.add_argument("--results", type=Path,
                        help="folder of the result files (default: benchmarks/out/"
                             "reference_profile/DATASET); another folder keeps runs of older code")
    parser.add_argument("--_child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        child(*args._child)
        return
    if args.dataset == "microlens-50k" and not args.report:
        convert_once(args.raw_dir)
    base = settings(args)
    results: dict[str, list[dict]] = {}
    for name, seed, files, overrides in runs(args):
        if args.only and name not in args.only:
            continue
        config = {**base, **overrides, "seed": seed}
        path = result_path(name, seed, args.results or OUT / "reference_profile" / args.dataset)
        if args.report:
            if not trained_alike(path, "SASRec", args.dataset, files, config):
                continue  # never trained, or trained under other defaults: not this row
            result = json.loads(path.read_text())
        else:
            result = run_one(args.dataset, files, config, path, args.rerun)
        results.setdefault(name, []).append(result)
        if args.report:
            continue
        print(f"\n{args.dataset}: SASRec d={args.dim}, lr {args.lr}, batch {args.batch_size}, "
              f"early stopping {args.stopping_step} (max {args.epochs} epochs)\n" + table(results),
              flush=True)
    if args.report:
        print(table(results))
    print("\n" + selection_agreement(results.get("defaults", [])))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count()))
    main()
