"""Convert the real MicroLens-50k and check the official statistics.

    python -m benchmarks.convert_microlens50k --raw-dir DIR
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmarks.common import OUT
from recbole_microlens.cli.commands import statistics_table
from recbole_microlens.data.raw.convert import convert_dataset
from recbole_microlens.data.raw.readers import detect_raw_files

# Official MicroLens-50k numbers, and what the protocol (min 5, last 13, leave-one-out) must leave.
EXPECTED = {
    ("raw", "users"): 50_000,
    ("raw", "items"): 19_220,
    ("raw", "interactions"): 359_708,
    ("protocol", "users"): 50_000,
    ("protocol", "items"): 19_099,
    ("protocol", "interactions"): 339_511,
    ("protocol", "training_interactions"): 239_511,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--dataset", default="MicroLens-50k")
    args = parser.parse_args()

    started = time.perf_counter()
    meta = convert_dataset(detect_raw_files(args.raw_dir), args.dataset, args.out)
    wall = time.perf_counter() - started
    print(statistics_table(meta))
    mismatches = {key: (meta["statistics"][key[0]][key[1]], want) for key, want in EXPECTED.items()
                  if meta["statistics"][key[0]][key[1]] != want}
    print(f"wall time {wall:.2f} s (conversion only, imports excluded)")
    print(f"output {args.out / args.dataset}")
    if mismatches:
        print(f"MISMATCH (found, expected): {mismatches}")
        return 1
    print("all official statistics match")
    return 0


if __name__ == "__main__":
    sys.exit(main())
