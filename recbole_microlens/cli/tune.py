"""The tune flags and their glue, shared by ``run_recbole_ml.py --tune`` and
``recbole-microlens tune``: the search itself is :mod:`recbole_microlens.tune`."""
from __future__ import annotations

import argparse
import sys

from recbole_microlens.tune.driver import DEFAULT_TUNE_DIR, TuneResult, run_tune
from recbole_microlens.tune.space import packaged_tune_configs


def add_tune_arguments(parser: argparse.ArgumentParser, resume_flag: bool = True) -> None:
    """The tune flags, shared by ``run_recbole_ml.py --tune`` and ``recbole-microlens tune``
    (``resume_flag=False``: the caller defines ``--resume`` itself)."""
    def flag(name: str, **kwargs):
        spellings = dict.fromkeys([f"--{name}", f"--{name.replace('_', '-')}"])
        parser.add_argument(*spellings, dest=name, **kwargs)

    flag("tune_config", default="paper",
         help=f"tune yaml, or a packaged one: {', '.join(packaged_tune_configs())} (default paper)")
    flag("tune_axes", default="", help="comma-separated optional axes to sweep too "
                                       "(e.g. train_batch_size)")
    flag("ray_address", default=None, help="join this Ray cluster instead of starting one")
    flag("cpus_per_trial", type=float, default=1)
    flag("gpus_per_trial", type=float, default=0, help="fractions share a GPU (e.g. 0.5)")
    flag("max_concurrent", type=int, default=2, help="trials at a time")
    flag("asha", action="store_true", help="stop poor trials early (ASHA on valid NDCG@10)")
    flag("tune_dir", default=DEFAULT_TUNE_DIR, help="where experiments are written")
    if resume_flag:
        flag("resume", action="store_true", help="continue the interrupted sweep in --tune_dir")


def tune_exit_status(result: TuneResult) -> int:
    """0 when a trial was chosen; 1, with the first trial error on stderr, when none completed."""
    if result.best is not None:
        return 0
    errors = [row["error"] for row in result.trials if row.get("error")]
    first = f"; the first: {errors[0]}" if errors else ""
    print(f"error: no trial of the sweep completed ({len(errors)} of {len(result.trials)} "
          f"failed{first}); their logs: {result.experiment_dir}", file=sys.stderr, flush=True)
    return 1


def run_tune_from_args(args: argparse.Namespace, config_files=None, config_dict=None) -> TuneResult:
    return run_tune(
        args.model, args.dataset, args.tune_config, config_files=config_files,
        config_dict=config_dict, axes=[axis for axis in args.tune_axes.split(",") if axis],
        ray_address=args.ray_address, cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial, max_concurrent=args.max_concurrent, asha=args.asha,
        tune_dir=args.tune_dir, resume=args.resume)
