"""One trial, in its own Ray worker: pinned to the CPUs and GPU ids Ray gave it, reporting valid
NDCG@10 each epoch and, at the end, its best checkpoint's valid and test metrics."""
from __future__ import annotations

import contextlib
import math
import os
import shutil
import sys
from pathlib import Path

from recbole_microlens.tune.space import SELECTION, SETUP, model_settings

# What every trial sets for itself: no progress bars in worker logs; best epoch = selection metric.
TRIAL_SETTINGS = {"show_progress": False, "valid_metric": "NDCG@10"}


def train_trial(config: dict) -> None:
    """Train one grid point; report valid NDCG@10 each epoch, then its best epoch's valid and
    test metrics."""
    import ray
    from ray.air import session

    from recbole_microlens.quick_start.quick_start import run_recbole_ml

    setup = config[SETUP]
    swept = {key: value for key, value in config.items() if key != SETUP}
    device = pin_trial_to(session.get_trial_resources().required_resources, ray.get_gpu_ids())
    checkpoint_dir = _fresh_dir(Path(session.get_trial_dir()) / "saved")
    overrides = {**setup["fixed"], **model_settings(setup["model"], swept), **TRIAL_SETTINGS,
                 **device, "checkpoint_dir": str(checkpoint_dir)}
    with recbole_globals_contained():
        result = run_recbole_ml(setup["model"], setup["dataset"], setup["config_files"] or None,
                                overrides, saved=True, callback_fn=EpochReporter())
    session.report(final_report(result, _newest_checkpoint(checkpoint_dir)))


class EpochReporter:
    """RecBole ``callback_fn``: report each validation to Tune, so a scheduler can stop a poor
    trial early. ``valid_ndcg@10`` is the best epoch's so far, the value selection uses."""

    def __init__(self):
        self.best = -math.inf

    def __call__(self, epoch_idx: int, valid_score: float) -> None:
        from ray.air import session

        self.best = max(self.best, float(valid_score))
        session.report({"epoch": epoch_idx + 1, "epoch_valid_ndcg@10": float(valid_score),
                        SELECTION: self.best})


def final_report(result: dict, checkpoint: Path | None) -> dict:
    """The trial's last report: its best epoch's valid metrics, that checkpoint's test metrics."""
    report = {"epoch": result["epochs_run"], "tested": True,
              "checkpoint": str(checkpoint) if checkpoint else None}
    report.update({f"valid_{name}": value for name, value in result["valid"].items()})
    report.update({f"test_{name}": value for name, value in result["test"].items()})
    report.setdefault(SELECTION, math.nan)  # no validation ran (epochs < eval_step)
    return report


def pin_trial_to(resources: dict, gpu_ids: list) -> dict:
    """Threads = the trial's CPUs; devices = Ray's GPU ids for it (none: CPU, nothing waits).

    RecBole writes ``gpu_id`` into CUDA_VISIBLE_DEVICES, so it must be Ray's ids, not ``0``.
    """
    threads = max(1, int(resources.get("CPU", 1)))
    os.environ["OMP_NUM_THREADS"] = str(threads)
    visible = ",".join(str(gpu) for gpu in gpu_ids)
    os.environ["CUDA_VISIBLE_DEVICES"] = visible
    import torch

    torch.set_num_threads(threads)
    return {"gpu_id": visible, "use_gpu": bool(visible)}


def _fresh_dir(path: Path) -> Path:
    """A restarted trial (``--resume``) trains from scratch; its old checkpoints must go."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _newest_checkpoint(checkpoint_dir: Path) -> Path | None:
    return max(checkpoint_dir.glob("*.pth"), key=lambda p: p.stat().st_mtime, default=None)


@contextlib.contextmanager
def recbole_globals_contained():
    """RecBole's Config reads ``--key=value`` from sys.argv (a Ray worker's are Ray's own flags,
    the driver's are tune flags) and writes CUDA_VISIBLE_DEVICES; keep both out of our runs."""
    argv = sys.argv
    sys.argv = argv[:1]
    try:
        with environ_restored("CUDA_VISIBLE_DEVICES"):
            yield
    finally:
        sys.argv = argv


@contextlib.contextmanager
def environ_restored(name: str):
    previous = os.environ.get(name)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous
