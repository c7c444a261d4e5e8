"""How the converter scales: synthetic pairs.tsv of 1M and 10M interactions, each converted in a
fresh subprocess; wall time and the child's peak RSS (ru_maxrss via wait4).

    python -m benchmarks.convert_scale                  # pairs.tsv, 1M and 10M
    python -m benchmarks.convert_scale --format csv     # pairs.csv with ms timestamps
    python -m benchmarks.convert_scale --sizes 1000000  # just 1M

Synthetic data: sequence lengths uniform in 5..50, items drawn from a long-tailed distribution
(item = n_items * u**3, u uniform), so popular items recur inside a sequence and exercise the
duplicate removal, as the real data's long tail does.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
USERS_PER_BATCH = 20_000


def write_synthetic_pairs(path: Path, interactions: int, seed: int = 0) -> None:
    """An official-looking pairs file with CRLF (``.tsv``: ``user<TAB>item item …``; ``.csv``:
    ``user,item,timestamp`` in ms), written a batch of users at a time."""
    rng = np.random.default_rng(seed)
    n_items = max(interactions // 20, 1000)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        if path.suffix == ".csv":
            handle.write("user,item,timestamp\r\n")
        written, user = 0, 1
        while written < interactions:
            lengths = rng.integers(5, 51, size=USERS_PER_BATCH)
            lengths = lengths[np.cumsum(lengths) <= interactions - written]
            if not len(lengths):  # the remainder is shorter than a sequence: one last short user
                lengths = np.array([interactions - written])
            items = (n_items * rng.random(int(lengths.sum())) ** 3).astype(np.int64) + 1
            if path.suffix == ".csv":
                users = np.repeat(np.arange(user, user + len(lengths)), lengths)
                times = 1_600_000_000_000 + np.cumsum(rng.integers(1_000, 600_000, size=len(items)))
                handle.write("".join(map("{},{},{}\r\n".format, users.tolist(), items.tolist(),
                                         times.tolist())))
            else:
                rows = np.split(items.astype(str), np.cumsum(lengths)[:-1])
                handle.write("".join(f"{user + k}\t{' '.join(row)}\r\n"
                                     for k, row in enumerate(rows)))
            written += int(lengths.sum())
            user += len(lengths)


def convert_in_child(pairs: Path, dataset: str, out_dir: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS in MiB of one ``recbole-microlens convert`` process."""
    command = [sys.executable, "-m", "recbole_microlens", "convert",
               "--raw-dir", str(pairs.parent), "--dataset", dataset, "--out", str(out_dir),
               f"--pairs-{pairs.suffix[1:]}", str(pairs)]
    return _measure(command)


def baseline_in_child() -> tuple[float, float]:
    """The same process doing nothing but importing the converter: the fixed part of the peak."""
    return _measure([sys.executable, "-c", "import recbole_microlens.cli.commands"])


def _measure(command: list[str]) -> tuple[float, float]:
    python_path = filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(python_path)}
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"{command} failed with exit code {child.returncode}")
    return wall, usage.ru_maxrss / 1024  # Linux reports KiB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--format", choices=["tsv", "csv"], default="tsv")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "scale")
    args = parser.parse_args()

    base_wall, base_rss = baseline_in_child()
    print(f"baseline (python + imports): {base_wall:.2f} s, {base_rss:.0f} MiB")
    rows = []
    for size in args.sizes:
        pairs = args.out / f"raw_{args.format}_{size}" / f"synthetic_pairs.{args.format}"
        if not pairs.exists():
            started = time.perf_counter()
            write_synthetic_pairs(pairs, size)
            seconds = time.perf_counter() - started
            print(f"generated {pairs} ({pairs.stat().st_size / 2**20:.0f} MiB) in {seconds:.1f} s")
        wall, rss = convert_in_child(pairs, f"synthetic_{args.format}_{size}", args.out / "atomic")
        rows.append((size, wall, rss))
        print(f"{size:>12,} interactions: {wall:7.2f} s, peak RSS {rss:7.0f} MiB")

    print(f"\n{'interactions':>12}  {'wall s':>8}  {'peak MiB':>9}  {'peak - baseline':>15}")
    for size, wall, rss in rows:
        print(f"{size:>12,}  {wall:8.2f}  {rss:9.0f}  {rss - base_rss:15.0f}")
    if len(rows) > 1:
        (s0, w0, r0), (s1, w1, r1) = rows[0], rows[-1]
        above = (r1 - base_rss) / (r0 - base_rss)
        print(f"growth {s0:,} -> {s1:,} ({s1 / s0:.0f}x data): wall x{w1 / w0:.1f}, "
              f"peak RSS x{r1 / r0:.1f}, peak above baseline x{above:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
