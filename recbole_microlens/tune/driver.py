"""The Ray driver: resolve what every trial shares, start (or join) Ray, run or resume the
sweep, and hand its results to :mod:`recbole_microlens.tune.outputs`."""
from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from recbole_microlens.processes import descendants_die_with_this_process
from recbole_microlens.tune.outputs import TuneResult, report_sweep
from recbole_microlens.tune.space import (
    SELECTION, TuneSpec, load_tune_spec, model_settings, param_space,
)
from recbole_microlens.tune.trial import (
    environ_restored, recbole_globals_contained, train_trial,
)
from recbole_microlens.errors import ConfigError, ExistingOutputError, MissingInputError

# Keys whose relative paths must be resolved in the driver: trials run in their own folders.
PATH_KEYS = ("raw_data_path", "encoder_checkpoint", "tokenizer_path")
DEFAULT_TUNE_DIR = "ray_results"


def run_tune(model: str, dataset: str, tune_config: str | os.PathLike | dict = "paper", *,
             config_files=None, config_dict=None, axes=(), ray_address: str | None = None,
             cpus_per_trial: float = 1, gpus_per_trial: float = 0, max_concurrent: int = 2,
             asha: bool = False, tune_dir: str | os.PathLike = DEFAULT_TUNE_DIR,
             resume: bool = False, name: str | None = None) -> TuneResult:
    """Sweep ``tune_config`` for ``model`` on ``dataset``; choose on valid NDCG@10.

    ``config_files`` and ``config_dict`` apply to every trial (``config_dict`` wins over the
    yaml's ``fixed``). ``resume`` continues the interrupted sweep in the same experiment folder
    with the grid, settings and scheduler it started with (resources per trial may change).
    """
    from recbole_microlens import compat

    compat.check_ray_version()
    spec = load_tune_spec(tune_config, axes)
    setup, epochs = resolve_setup(model, dataset, config_files,
                                  {**spec.fixed, **(config_dict or {})}, swept=spec.search_space)
    name = name or f"{setup['model']}-{setup['dataset']}-{spec.name}"
    experiment_dir = Path(tune_dir).resolve() / name
    trainable = _trainable(cpus_per_trial, gpus_per_trial)
    with descendants_die_with_this_process(), ray_session(ray_address):
        _check_cluster_fits(cpus_per_trial, gpus_per_trial)
        if resume:
            tuner = _restored_tuner(experiment_dir, trainable)
        else:
            tuner = _new_tuner(experiment_dir, trainable, param_space(spec, setup), spec,
                               max_concurrent, asha_epochs=epochs if asha else None)
        with _compact_progress():
            results = tuner.fit()
    return report_sweep(results, experiment_dir, list(spec.search_space), setup["model"],
                        setup["dataset"])


def resolve_setup(model: str, dataset: str, config_files, overrides: dict,
                  swept=()) -> tuple[dict, int]:
    """What every trial shares, and its epoch budget, resolved once in the driver: a bad setup
    fails before Ray starts, the dataset is converted or generated once (parallel trials would
    race to write it), and paths become absolute (Ray runs each trial in its own directory)."""
    from recbole_microlens.config.configurator import MLConfig
    from recbole_microlens.data.prepare import ensure_atomic_files
    from recbole_microlens.encoders.factory import prefetch_weights

    both = sorted(set(overrides) & set(swept))
    if both:
        raise ConfigError(f"{both} are both swept and fixed; drop them from one of the two")
    files = [str(Path(path).resolve()) for path in config_files or []]
    fixed = model_settings(model, overrides)
    with recbole_globals_contained():
        config = MLConfig(model, dataset, files or None, dict(fixed))
        _check_swept_keys(model, config, swept)
        prefetch_weights(config)  # fetched once, and missing weights stop the sweep at once
        ensure_atomic_files(config)
    # RecBole's data_path is <data_path>/<dataset>; the trials need the root.
    fixed["data_path"] = str(Path(config["data_path"]).resolve().parent)
    # encoder_checkpoint may name weights instead of a path (pretrained, random, a hub id)
    fixed.update({key: str(Path(config[key]).resolve()) for key in PATH_KEYS
                  if config[key] and (key != "encoder_checkpoint" or Path(config[key]).exists())})
    setup = {"model": config["model"], "dataset": config["dataset"], "config_files": files,
             "fixed": fixed}
    return setup, config["epochs"]


def _check_swept_keys(model: str, config, swept) -> None:
    """Sweeping a key the model never reads would rank identical trials as if they differed."""
    from recbole_microlens.config.check import check_known_keys

    run_keys = set(config.internal_config_dict) | set(config["extra_config_keys"] or ())
    check_known_keys(model_settings(model, dict.fromkeys(swept, 1)),
                     f"the tune search space (keys {config['model']} reads)", run_keys)


@contextlib.contextmanager
def ray_session(address: str | None = None):
    """Join ``address`` (an existing cluster), or start Ray on this machine's CPUs and stop it
    afterwards; a Ray already initialised in this process is used as it is."""
    import ray

    if ray.is_initialized():
        yield
        return
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}  # trial logs: trial dirs
    if address:
        ray.init(address=address, **quiet)
    else:
        ray.init(num_cpus=len(os.sched_getaffinity(0)), include_dashboard=False,
                 runtime_env=_local_worker_env(), **quiet)
    try:
        yield
    finally:
        ray.shutdown()


def _local_worker_env() -> dict:
    """Local workers import this package even from a checkout that is not installed, run from
    another folder (Ray puts only the driver's working directory on their path)."""
    package_parent = str(Path(__file__).resolve().parents[2])  # above recbole_microlens/
    inherited = [path for path in os.environ.get("PYTHONPATH", "").split(os.pathsep) if path]
    paths = [package_parent] + inherited
    return {"env_vars": {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}}


def _check_cluster_fits(cpus_per_trial: float, gpus_per_trial: float) -> None:
    """A trial asking for more than the cluster has would pend forever: refuse it up front."""
    import ray

    available = ray.cluster_resources()
    for resource, wanted in (("CPU", cpus_per_trial), ("GPU", gpus_per_trial)):
        if wanted > available.get(resource, 0):
            raise ConfigError(f"each trial asks for {wanted} {resource} but the Ray cluster "
                              f"has {available.get(resource, 0)}; "
                              f"lower --{resource.lower()}s_per_trial")


def _trainable(cpus_per_trial: float, gpus_per_trial: float):
    from ray import tune

    return tune.with_resources(train_trial, {"cpu": cpus_per_trial, "gpu": gpus_per_trial})


def _new_tuner(experiment_dir: Path, trainable, space: dict, spec: TuneSpec,
               max_concurrent: int, asha_epochs: int | None):
    from ray import air, tune
    from ray.tune.schedulers import ASHAScheduler

    if experiment_dir.exists():
        raise ExistingOutputError(f"{experiment_dir} exists: pass --resume to continue that sweep, "
                                  f"or choose another --tune_dir")
    scheduler = None
    if asha_epochs is not None:
        # stop_last_trials=False: a trial reaching max_t still runs its final test evaluation.
        scheduler = ASHAScheduler(time_attr="epoch", max_t=asha_epochs, stop_last_trials=False,
                                  **spec.asha)
    return tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(
            metric=SELECTION, mode="max", scheduler=scheduler, num_samples=spec.num_samples,
            max_concurrent_trials=max_concurrent,
            reuse_actors=False,  # a fresh process per trial: its own log, threads and devices
            chdir_to_trial_dir=True,  # RecBole writes ./log and ./log_tensorboard
            trial_dirname_creator=trial_dirname),
        run_config=air.RunConfig(
            name=experiment_dir.name, storage_path=str(experiment_dir.parent),
            failure_config=air.FailureConfig(max_failures=0, fail_fast=False),
            log_to_file=True, verbose=1,
            progress_reporter=tune.CLIReporter(
                parameter_columns=list(spec.search_space),
                metric_columns={"epoch": "epoch", SELECTION: "valid NDCG@10"},
                max_report_frequency=30)),
    )


def trial_dirname(trial) -> str:
    """``trial_<id>``: short and unique; the swept values are in the tables and params.json."""
    return f"trial_{trial.trial_id}"


@contextlib.contextmanager
def _compact_progress():
    """Ray 2.6's new output prints every trial's full result; its legacy reporter prints one
    small table of swept values and valid NDCG@10 (the CLIReporter above) every 30 s."""
    with environ_restored("RAY_AIR_NEW_OUTPUT"):
        os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
        yield


def _restored_tuner(experiment_dir: Path, trainable):
    """Finished and failed trials stay as they are; unfinished ones run again from scratch."""
    from ray import tune

    if not tune.Tuner.can_restore(experiment_dir):
        raise MissingInputError(f"--resume: no Ray Tune experiment to resume in {experiment_dir}")
    return tune.Tuner.restore(str(experiment_dir), trainable=trainable, resume_unfinished=True,
                              resume_errored=False, restart_errored=False)
