"""Every ID model of Table 2 on MicroLens-50k under the official protocol, one table.

    python -m benchmarks.cf_baselines_50k --raw-dir DIR
    python -m benchmarks.cf_baselines_50k --dataset microlens-sample --epochs 1   # smoke run

Converts the raw files once into benchmarks/out/atomic_files (the sample is generated there on
first use instead), trains each model in its own process (peak memory per model) with the same
sizes, learning rate, batch and epoch budget, and prints HR/NDCG@10/20 on test, seconds per
epoch, the paper's MicroLens-100K numbers beside them, and whether the ordering matches the
paper's: every sequential model (SR) ahead of every CF model.

``--override MODEL:KEY=VALUE`` changes one model's setting (results/microlens-50k.md lists
the ones behind its rows); a result file trained with the same settings is reused (``--rerun``
trains again), so a long table can be assembled over several runs.

``--lrs 0.001 0.01`` trains each model once per learning rate, validating every epoch with early
stopping (``--stopping-step``), and keeps for each model the rate whose best **valid** score
(NDCG@10) is higher; the test split of the other rate is printed only as its valid score:

    python -m benchmarks.cf_baselines_50k --raw-dir DIR \
        --models DSSM LightGCN NextItNet GRU4Rec SASRec --lrs 0.001 0.01 --epochs 15 \
        --stopping-step 3 --override LightGCN:epochs=6
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from tabulate import tabulate

from benchmarks.common import (HEADERS, OUT, add_shared_arguments, in_subprocess,
                               prepare_dataset, reusable, shared_settings, test_metrics)

# Table 2 of the paper (MicroLens-100K): HR@10, NDCG@10, HR@20, NDCG@20.
PAPER_100K = {
    "DSSM": (0.0394, 0.0193, 0.0654, 0.0258),
    "LightGCN": (0.0372, 0.0177, 0.0618, 0.0239),
    "NFM": (0.0313, 0.0159, 0.0480, 0.0201),
    "DeepFM": (0.0350, 0.0170, 0.0571, 0.0225),
    "YouTubeID": (0.0461, 0.0229, 0.0747, 0.0301),
    "MMGCNID": (0.0141, 0.0065, 0.0247, 0.0092),
    "GRCNID": (0.0282, 0.0131, 0.0497, 0.0185),
    "NextItNet": (0.0805, 0.0442, 0.1175, 0.0535),
    "GRU4Rec": (0.0782, 0.0423, 0.1147, 0.0515),
    "SASRec": (0.0909, 0.0517, 0.1278, 0.0610),
}
CF_MODELS = ["DSSM", "LightGCN", "NFM", "DeepFM", "YouTubeID", "MMGCNID", "GRCNID"]
SR_MODELS = ["NextItNet", "GRU4Rec", "SASRec"]


def parse_override(text: str) -> tuple[str, str, object]:
    """``MODEL:KEY=VALUE`` (VALUE read as YAML) -> (model, key, value)."""
    import yaml

    model, _, assignment = text.partition(":")
    key, _, value = assignment.partition("=")
    if not (model and key and value):
        raise argparse.ArgumentTypeError(f"{text!r} is not MODEL:KEY=VALUE")
    return model, key, yaml.safe_load(value)


def model_settings(settings: dict, overrides, model: str) -> dict:
    """The shared settings with this model's overrides; a shorter epoch budget still ends with
    a validation (a run that never validates saves no model to test)."""
    own = {key: value for name, key, value in overrides if name == model}
    merged = {**settings, **own}
    if "epochs" in own:
        fixed_budget = settings["stopping_step"] >= settings["epochs"]
        merged["stopping_step"] = own.get(
            "stopping_step", merged["epochs"] if fixed_budget else settings["stopping_step"])
        merged["eval_step"] = own.get("eval_step", min(merged["eval_step"], merged["epochs"]))
    return merged


def result_path(dataset: str, model: str, overrides) -> Path:
    """``<dataset>-<model>[-key=value...].json``: runs with other overrides keep their files."""
    suffix = "".join(f"-{key}={value}" for name, key, value in overrides if name == model)
    return OUT / f"{dataset}-{model}{suffix}.json"


def row(name: str, kind: str, result: dict, paper: tuple | None) -> list:
    reference = f"{paper[0]:.4f} / {paper[1]:.4f}" if paper else ""
    seconds, config = result["seconds"], result["config"]
    return [name, kind, config["learning_rate"], config["epochs"], *test_metrics(result),
            seconds["mean_epoch"], seconds["test"], reference]


def select_on_valid(model: str, settings: dict, overrides, lrs: list[float], rerun: bool,
                    report_only: bool = False):
    """Train ``model`` at each learning rate; return the result whose best valid score is highest
    (the test split decides nothing) and the valid score of every rate (None: not trained, with
    ``report_only``, which trains nothing and reads the result files there are)."""
    by_lr, valid = {}, {}
    for lr in lrs:
        lr_overrides = [*overrides, (model, "learning_rate", lr)]
        own = model_settings(settings, lr_overrides, model)
        path = result_path(settings["dataset"], model, lr_overrides)
        valid[lr] = None
        if report_only and not reusable(path, model, own):
            continue
        by_lr[lr] = in_subprocess(model, own, path, rerun and not report_only)
        valid[lr] = by_lr[lr]["best_valid_score"]
    if not by_lr:
        return None, valid
    chosen = max(by_lr, key=valid.get)
    return by_lr[chosen], valid


def selected_row(model: str, result: dict, valid_by_lr: dict) -> list:
    """A table row: the chosen rate, each rate's valid score, then the test metrics."""
    valid = " / ".join(f"{lr:g}: " + ("not run" if score is None else f"{score:.4f}")
                       for lr, score in valid_by_lr.items())
    seconds, config = result["seconds"], result["config"]
    paper = PAPER_100K.get(model)
    return [model, "SR" if model in SR_MODELS else "CF", config["learning_rate"], valid,
            result["epochs_run"], *test_metrics(result), seconds["mean_epoch"],
            seconds["test"], f"{paper[0]:.4f} / {paper[1]:.4f}" if paper else ""]


def print_selected(args, settings: dict) -> None:
    """The ``--lrs`` table: each model at the learning rate its valid score chose."""
    results, rows = {}, []
    for model in args.models:
        result, valid_by_lr = select_on_valid(model, settings, args.override, args.lrs,
                                              args.rerun, args.report)
        if result is None:
            print(f"{model}: no result file with these settings (--report trains nothing)")
            continue
        results[model] = result
        rows.append(selected_row(model, result, valid_by_lr))
    headers = ["model", "kind", "chosen lr", "valid NDCG@10 by lr", "epochs run", *HEADERS,
               "s/epoch", "test ranking s", "paper 100K HR@10 / NDCG@10"]
    print(f"\n{args.dataset}: learning rate chosen on valid NDCG@10 from {args.lrs}; test metrics "
          f"of the chosen run; dim {args.dim}, batch {args.batch_size}, early stopping after "
          f"{settings['stopping_step']} validations, at most {args.epochs} epochs\n")
    print(tabulate(rows, headers=headers, tablefmt="github",
                   floatfmt=("", "", "g", "", "d", ".4f", ".4f", ".4f", ".4f", ".1f", ".1f", "")))
    print(f"\n{ordering_verdict(results)}")


def ordering_verdict(results: dict) -> str:
    """Does every sequential model beat every CF model (test HR@10 and NDCG@10), as in the paper?"""
    cf = {m: r for m, r in results.items() if m in CF_MODELS}
    sr = {m: r for m, r in results.items() if m in SR_MODELS}
    if not cf or not sr:
        return "ordering: needs at least one CF and one sequential model"
    inversions = [f"{c} >= {s} on {HEADERS[index]}"
                  for index in range(2)
                  for c, cf_result in cf.items() for s, sr_result in sr.items()
                  if test_metrics(cf_result)[index] >= test_metrics(sr_result)[index]]
    if not inversions:
        return "ordering matches the paper: every sequential model ahead of every CF model"
    pairs = 2 * len(cf) * len(sr)
    return (f"ordering differs from the paper in {len(inversions)} of {pairs} (CF, SR, metric) "
            f"comparisons: " + "; ".join(inversions))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_shared_arguments(parser)
    parser.add_argument("--models", nargs="+", default=CF_MODELS + SR_MODELS)
    parser.add_argument("--override", type=parse_override, action="append", default=[],
                        metavar="MODEL:KEY=VALUE",
                        help="one model's setting, e.g. YouTubeID:learning_rate=0.01 (repeatable)")
    parser.add_argument("--lrs", type=float, nargs="+", default=None,
                        help="train each model at each rate and keep the one valid prefers")
    parser.add_argument("--report", action="store_true",
                        help="with --lrs: print the table from the result files there are, "
                             "training nothing")
    args = parser.parse_args()

    prepare_dataset(args.dataset, args.raw_dir)
    settings = shared_settings(args, args.dataset)
    if args.lrs:
        print_selected(args, {**settings, "eval_step": args.eval_step or 1})
        return
    results = {m: in_subprocess(m, model_settings(settings, args.override, m),
                                result_path(args.dataset, m, args.override), rerun=args.rerun)
               for m in args.models}
    rows = [row(model, "SR" if model in SR_MODELS else "CF", result, PAPER_100K.get(model))
            for model, result in results.items()]
    headers = ["model", "kind", "lr", "epochs", *HEADERS, "s/epoch", "test ranking s",
               "paper 100K HR@10 / NDCG@10"]
    print(f"\n{args.dataset}: test metrics, dim {args.dim}, batch {args.batch_size}, validated "
          "after the last epoch unless --eval-step; in-batch softmax, full ranking with history "
          "masked\n")
    print(tabulate(rows, headers=headers, tablefmt="github",
                   floatfmt=("", "", "g", "d", ".4f", ".4f", ".4f", ".4f", ".1f", ".1f", "")))
    print(f"\n{ordering_verdict(results)}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count()))
    main()
