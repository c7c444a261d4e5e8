"""What RecBole's import-time ``set_detect_anomaly(True)`` cost every training step.

    python benchmarks/anomaly_mode_step.py --raw-dir ../shared/data/microlens-50k

RecBole 1.2.1's ``sine.py`` turns autograd anomaly detection on when it is imported (any RecBole
model lookup imports it); ``compat.disable_import_time_anomaly_detection`` turns it off again.
This times the same ID SASRec training steps (d=128, batch 512, MicroLens-50k windows, in-batch
loss) with anomaly detection on and off, interleaved, and prints seconds per step and the ratio.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from train_microlens50k import OUT, convert_once  # noqa: E402


def build(dataset: str, dim: int, batch_size: int, **overrides):
    from recbole_microlens.config.configurator import MLConfig
    from recbole_microlens.data.recbole.dataset import create_dataset
    from recbole_microlens.data.recbole.loaders import data_preparation
    from recbole_microlens.model import get_model
    from recbole_microlens.trainer.trainer import MLTrainer

    config = MLConfig("SASRec", dataset, None, {
        "data_path": str(OUT / "atomic_files"), "checkpoint_dir": str(OUT / "saved"),
        "hidden_size": dim, "learning_rate": 1e-3, "train_batch_size": batch_size,
        "show_progress": False, "state": "WARNING", **overrides})
    train, _, _ = data_preparation(config, create_dataset(config))
    model = get_model("SASRec")(config, train._dataset)
    return MLTrainer(config, model), train


def timed_step(trainer, batch) -> float:
    started = time.perf_counter()
    trainer.optimizer.zero_grad()
    trainer._step_loss(batch).backward()
    trainer.optimizer.step()
    return time.perf_counter() - started


def step_arguments(description: str) -> argparse.Namespace:
    """The options the step benchmarks share: which data, how many steps, what model size."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--raw-dir", type=Path, default=ROOT.parent / "shared/data/microlens-50k")
    parser.add_argument("--dataset", default="microlens-50k")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=512)
    return parser.parse_args()


def trainer_and_batches(args, **overrides):
    """A SASRec trainer and the first ``--steps`` + 1 training batches (one for warm-up)."""
    if args.dataset == "microlens-50k":
        convert_once(args.raw_dir)
    trainer, train = build(args.dataset, args.dim, args.batch_size, **overrides)
    return trainer, [batch for _, batch in zip(range(args.steps + 1), train)]


def main():
    args = step_arguments(__doc__.split("\n")[0])
    trainer, batches = trainer_and_batches(args)
    times = {True: [], False: []}
    timed_step(trainer, batches[0])  # warm-up
    for batch in batches[1:]:
        for anomaly in (True, False):
            with torch.autograd.set_detect_anomaly(anomaly):
                times[anomaly].append(timed_step(trainer, batch))
    on, off = statistics.median(times[True]), statistics.median(times[False])
    print(f"{args.dataset}: ID SASRec d={args.dim}, batch {args.batch_size}, "
          f"{torch.get_num_threads()} threads, median of {len(times[False])} steps each")
    print(f"anomaly detection on (RecBole's import side effect): {on:.3f} s/step")
    print(f"anomaly detection off (compat fix):                 {off:.3f} s/step")
    print(f"ratio on/off: {on / off:.2f}x")


if __name__ == "__main__":
    main()
