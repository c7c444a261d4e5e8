"""The paper's Warm-N and side-feature studies for SASRec on MicroLens-50k, with the report.

    python -m benchmarks.studies_50k --raw-dir DIR
    python -m benchmarks.studies_50k --smoke     # the same recipe on a generated sample, 1 epoch

Trains SASRec on the regular dataset and on Warm-20 and Warm-50 (each level its own store,
``microlens-50k-warm20``, ..., converted on first use into benchmarks/out/atomic_files), and
SASRecID+Pop (+Tag, +Pop+Tag where the raw release has a tag file; the 50k has none), every run
with its test metrics broken down into 5 training-popularity groups. One result JSON per run goes
to benchmarks/out/studies (an existing one is kept unless --rerun); the report (report.md and
PNGs, the paper's MicroLens-100K numbers overlaid) to benchmarks/plots/studies_50k.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from benchmarks.common import DATASET, HERE, OUT, ROOT

PLOTS = HERE / "plots" / "studies_50k"
# The smoke run's sample has about 10 interactions per item: Warm-20 would leave nothing.
SMOKE = {"dataset": "smoke", "warm": [5, 8], "epochs": 1, "dim": 16, "batch_size": 64}


def shared_settings(args, data_root: Path, raw_dir: Path) -> dict:
    """What every run shares (CPU-feasible sizes, as benchmarks/train_microlens50k.py)."""
    return {
        "data_path": str(data_root / "atomic_files"),
        "raw_data_path": str(raw_dir),
        "checkpoint_dir": str(data_root / "saved"),
        "epochs": args.epochs,
        "learning_rate": args.lr,
        "train_batch_size": args.batch_size,
        "hidden_size": args.dim,
        "inner_size": 4 * args.dim,
        "popularity_groups": 5,
        "show_progress": False,
        "seed": 2024,
    }


def side_feature_sets(raw_dir: Path) -> list[tuple[str, ...]]:
    """Table 11's feature sets that this release can feed (tags need tags_to_summary.csv)."""
    from recbole_microlens.data.raw.readers import detect_raw_files
    from recbole_microlens.studies.recipes import SIDE_FEATURE_SETS

    has_tags = "tags" in detect_raw_files(raw_dir).present()
    return [features for features in SIDE_FEATURE_SETS if has_tags or "tags" not in features]


def run(args, data_root: Path, raw_dir: Path, dataset: str, plots: Path) -> dict:
    from recbole_microlens.report import write_report
    from recbole_microlens.studies.recipes import run_study, side_feature_runs, warm_runs

    runs = warm_runs("SASRec", dataset, [0, *args.warm])
    runs += side_feature_runs(dataset, side_feature_sets(raw_dir))
    settings = shared_settings(args, data_root, raw_dir)
    paths = run_study(runs, data_root / "studies", config_dict=settings, rerun=args.rerun)
    return write_report(paths, plots, reference="paper_table2")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-dir", type=Path, default=ROOT.parent / "shared/data/microlens-50k")
    parser.add_argument("--warm", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--rerun", action="store_true", help="retrain runs that have results")
    parser.add_argument("--smoke", action="store_true",
                        help="generated sample, 1 epoch, everything in a temporary folder")
    args = parser.parse_args()
    if not args.smoke:
        files = run(args, OUT, args.raw_dir, DATASET, PLOTS)
    else:
        from recbole_microlens.data.sample.generate import generate_sample_raw

        vars(args).update({k: v for k, v in SMOKE.items() if k != "dataset"})
        with tempfile.TemporaryDirectory(prefix="studies-smoke-") as folder:
            root = Path(folder)
            generate_sample_raw(root / "raw", n_users=60, n_items=50, seed=7, with_media=False)
            files = run(args, root, root / "raw", SMOKE["dataset"], root / "plots")
            print(files["report"].read_text(encoding="utf-8"))
            print("smoke outputs: " + ", ".join(f"{p.name} ({p.stat().st_size:,} B)"
                                                for p in files.values()))
        return
    print(files["report"].read_text(encoding="utf-8"))
    print("wrote " + ", ".join(str(path) for path in files.values()))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count()))
    main()
