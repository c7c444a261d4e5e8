"""Hyper-parameter search with Ray Tune: ``run_tune(model, dataset, tune_config) -> TuneResult``.

Each grid point is one trial in its own Ray worker, on the CPUs and GPU ids Ray assigned to it,
with its own checkpoint folder and log inside its trial directory. Trials report valid NDCG@10
after every epoch (so ``--asha`` can stop poor ones early), select on the valid NDCG@10 of their
best epoch, and finish with a test evaluation of their own best checkpoint; the sweep chooses on
valid metrics only and reads the chosen trial's test metrics afterwards.

The search space is yaml (``properties/tune/*.yaml``); any config key can be an axis::

    search_space:
      learning_rate: [1.0e-4, 1.0e-3]        # a list is a grid
      embedding_size: [64, 128]              # the paper's embedding size, in each model's keys
      dropout_prob: {uniform: [0.1, 0.3]}    # or sampled: choice, uniform, loguniform, randint
      dilations: {grid_search: [[1, 2], [1, 4]]}   # a grid of list values
    optional_space: {train_batch_size: [...]}  # swept only when named in --tune_axes
    fixed: {epochs: 50}                      # settings every trial shares
    num_samples: 1                           # repeats of the grid (draws, for sampled axes)
    asha: {grace_period: 5}                  # ASHAScheduler options for --asha

Ray, torch, recbole and matplotlib are imported inside the functions that use them, so the
``recbole-microlens`` command line (which defines the tune flags from here) stays fast.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from recbole_microlens.io import atomic_open
from recbole_microlens.paths import properties_dir, yaml_file
from recbole_microlens.processes import descendants_die_with_this_process

# The selection metric: valid NDCG@10 of the trial's best epoch (so far, while it trains).
SELECTION = "valid_ndcg@10"
# The paper's "embedding size": one logical key, written into each model's own keys.
EMBEDDING_SIZE = "embedding_size"
# Model -> {its key: multiple of the embedding size}; a model inherits its base class's entry.
EMBEDDING_SIZE_KEYS = {
    "SASRec": {"hidden_size": 1, "inner_size": 4},
    "GRU4Rec": {"embedding_size": 1},
    "NextItNet": {"embedding_size": 1},
}
RECBOLE_EMBEDDING_SIZE_KEYS = {"embedding_size": 1}  # RecBole's own models (BPR, ...)
# Keys whose relative paths must be resolved in the driver: trials run in their own folders.
PATH_KEYS = ("raw_data_path", "encoder_checkpoint", "tokenizer_path")
# What every trial sets for itself: no progress bars in worker logs; best epoch = selection metric.
TRIAL_SETTINGS = {"show_progress": False, "valid_metric": "NDCG@10"}
SETUP = "setup"  # the param_space entry holding what every trial shares (restored with --resume)
SPEC_KEYS = {"search_space", "optional_space", "fixed", "num_samples", "asha"}
DEFAULT_TUNE_DIR = "ray_results"
MARKDOWN_HIDDEN = ("checkpoint", "trial_dir")  # in the CSV; too long for the Markdown table


# -- the search space -------------------------------------------------------------------------
@dataclass(frozen=True)
class TuneSpec:
    """A parsed tune yaml: what is swept and what is fixed."""

    name: str
    search_space: dict
    fixed: dict = field(default_factory=dict)
    num_samples: int = 1
    asha: dict = field(default_factory=dict)


class _TuneYamlLoader(yaml.SafeLoader):
    """Reads ``1e-5`` as a float, as RecBole's config files do (plain YAML reads a string)."""


_TuneYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def packaged_tune_configs() -> list[str]:
    return sorted(path.stem for path in (properties_dir() / "tune").glob("*.yaml"))


def tune_config_path(name_or_path: str | os.PathLike) -> Path:
    """A yaml file, or the name of a packaged one (``paper``, ``sample``)."""
    return yaml_file(name_or_path, "tune", "tune config")


def load_tune_spec(tune_config: str | os.PathLike | dict, axes=()) -> TuneSpec:
    """Parse a tune yaml (path, packaged name or dict); ``axes`` adds optional axes to the sweep."""
    if isinstance(tune_config, dict):
        name, raw = "custom", tune_config
    else:
        path = tune_config_path(tune_config)
        name, raw = path.stem, yaml.load(path.read_text(encoding="utf-8"), _TuneYamlLoader) or {}
    unknown = set(raw) - SPEC_KEYS
    if unknown:
        raise ValueError(f"tune config {name}: unknown sections {sorted(unknown)}; "
                         f"expected {sorted(SPEC_KEYS)}")
    space = dict(raw.get("search_space") or {})
    optional = raw.get("optional_space") or {}
    missing = [axis for axis in axes if axis not in optional]
    if missing:
        raise ValueError(f"tune config {name}: no optional axes {missing}; "
                         f"it has {sorted(optional)}")
    space.update({axis: optional[axis] for axis in axes})
    if not space:
        raise ValueError(f"tune config {name}: search_space is empty")
    for key, value in space.items():
        search_domain(key, value)  # validate every axis before anything starts
    return TuneSpec(name, space, dict(raw.get("fixed") or {}), int(raw.get("num_samples", 1)),
                    dict(raw.get("asha") or {}))


def _samplers() -> dict:
    from ray import tune

    return {
        "grid_search": tune.grid_search,
        "choice": tune.choice,
        "uniform": lambda bounds: tune.uniform(*bounds),
        "loguniform": lambda bounds: tune.loguniform(*bounds),
        "randint": lambda bounds: tune.randint(*bounds),
    }


def search_domain(key: str, value):
    """A yaml axis as a Ray search domain: a list is a grid, ``{form: args}`` a sampler."""
    samplers = _samplers()
    if isinstance(value, list) and value:
        return samplers["grid_search"](value)
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in samplers:
        form, args = next(iter(value.items()))
        return samplers[form](args)
    raise ValueError(f"search_space.{key}: expected a non-empty list (grid) or one of "
                     f"{{{', '.join(samplers)}: ...}}, got {value!r}")


def param_space(spec: TuneSpec, setup: dict) -> dict:
    axes = {key: search_domain(key, value) for key, value in spec.search_space.items()}
    return {SETUP: setup, **axes}


def embedding_size_keys(model: str) -> dict[str, int]:
    """The model's own keys for the paper's embedding size, found along its class lineage
    (SASRecV maps as SASRec does)."""
    from recbole_microlens.model import get_model

    for cls in get_model(model).__mro__:
        if cls.__name__ in EMBEDDING_SIZE_KEYS:
            return EMBEDDING_SIZE_KEYS[cls.__name__]
    return RECBOLE_EMBEDDING_SIZE_KEYS


def model_settings(model: str, settings: dict) -> dict:
    """``settings`` with the logical ``embedding_size`` written as the model's own keys."""
    settings = dict(settings)
    if EMBEDDING_SIZE in settings:
        size = settings.pop(EMBEDDING_SIZE)
        settings.update({key: factor * size for key, factor in embedding_size_keys(model).items()})
    return settings


# -- one trial, in its own Ray worker ---------------------------------------------------------
def train_trial(config: dict) -> None:
    """Train one grid point; report valid NDCG@10 each epoch, then its best epoch's valid and
    test metrics."""
    import ray
    from ray.air import session

    from recbole_microlens.quick_start import run_recbole_ml

    setup = config[SETUP]
    swept = {key: value for key, value in config.items() if key != SETUP}
    device = pin_trial_to(session.get_trial_resources().required_resources, ray.get_gpu_ids())
    checkpoint_dir = _fresh_dir(Path(session.get_trial_dir()) / "saved")
    overrides = {**setup["fixed"], **model_settings(setup["model"], swept), **TRIAL_SETTINGS,
                 **device, "checkpoint_dir": str(checkpoint_dir)}
    with _recbole_globals_contained():
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
def _recbole_globals_contained():
    """RecBole's Config reads ``--key=value`` from sys.argv (a Ray worker's are Ray's own flags,
    the driver's are tune flags) and writes CUDA_VISIBLE_DEVICES; keep both out of our runs."""
    argv = sys.argv
    sys.argv = argv[:1]
    try:
        with _environ_restored("CUDA_VISIBLE_DEVICES"):
            yield
    finally:
        sys.argv = argv


@contextlib.contextmanager
def _environ_restored(name: str):
    previous = os.environ.get(name)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


# -- the sweep --------------------------------------------------------------------------------
@dataclass
class TuneResult:
    """Every trial's row (as in the CSV), the chosen one, its config and the files written."""

    experiment_dir: Path
    trials: list[dict]
    best: dict | None
    best_config: dict | None
    files: dict[str, Path]


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
    from recbole_microlens.config import MLConfig
    from recbole_microlens.data.prepare import ensure_atomic_files

    both = sorted(set(overrides) & set(swept))
    if both:
        raise ValueError(f"{both} are both swept and fixed; drop them from one of the two")
    files = [str(Path(path).resolve()) for path in config_files or []]
    fixed = model_settings(model, overrides)
    with _recbole_globals_contained():
        config = MLConfig(model, dataset, files or None, dict(fixed))
        _check_swept_keys(model, config, swept)
        ensure_atomic_files(config)
    # RecBole's data_path is <data_path>/<dataset>; the trials need the root.
    fixed["data_path"] = str(Path(config["data_path"]).resolve().parent)
    fixed.update({key: str(Path(config[key]).resolve()) for key in PATH_KEYS if config[key]})
    setup = {"model": config["model"], "dataset": config["dataset"], "config_files": files,
             "fixed": fixed}
    return setup, config["epochs"]


def _check_swept_keys(model: str, config, swept) -> None:
    """Sweeping a key the model never reads would rank identical trials as if they differed."""
    from recbole_microlens.config_check import check_known_keys

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
    package_parent = str(Path(__file__).resolve().parent.parent)
    inherited = [path for path in os.environ.get("PYTHONPATH", "").split(os.pathsep) if path]
    paths = [package_parent] + inherited
    return {"env_vars": {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}}


def _check_cluster_fits(cpus_per_trial: float, gpus_per_trial: float) -> None:
    """A trial asking for more than the cluster has would pend forever: refuse it up front."""
    import ray

    available = ray.cluster_resources()
    for resource, wanted in (("CPU", cpus_per_trial), ("GPU", gpus_per_trial)):
        if wanted > available.get(resource, 0):
            raise RuntimeError(f"each trial asks for {wanted} {resource} but the Ray cluster "
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
        raise FileExistsError(f"{experiment_dir} exists: pass --resume to continue that sweep, "
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
    with _environ_restored("RAY_AIR_NEW_OUTPUT"):
        os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
        yield


def _restored_tuner(experiment_dir: Path, trainable):
    """Finished and failed trials stay as they are; unfinished ones run again from scratch."""
    from ray import tune

    if not tune.Tuner.can_restore(experiment_dir):
        raise FileNotFoundError(f"--resume: no Ray Tune experiment to resume in {experiment_dir}")
    return tune.Tuner.restore(str(experiment_dir), trainable=trainable, resume_unfinished=True,
                              resume_errored=False, restart_errored=False)


# -- what a sweep reports ---------------------------------------------------------------------
def report_sweep(results, experiment_dir: Path, swept: list[str], model: str,
                 dataset: str = "") -> TuneResult:
    """Rows for every trial, the choice (valid only), and the CSV, Markdown, yaml and heatmap."""
    rows = trial_rows(results, swept)
    best = choose_best(rows)
    markdown = markdown_report(rows, best, model)
    files = {"csv": experiment_dir / "trials.csv", "markdown": experiment_dir / "trials.md"}
    write_csv(files["csv"], [tests_of_chosen_only(row, best) for row in rows])
    write_text(files["markdown"], markdown)
    best_config = None
    if best is not None:
        chosen = next(result for result in results if Path(result.path).name == best["trial"])
        best_config = chosen_config(chosen.config, swept, model)
        files["best_config"] = experiment_dir / "best_config.yaml"
        write_best_config(files["best_config"], best_config, best, chosen.config[SETUP], len(rows))
    plotted = heatmap_rows(rows, swept)
    if plotted:
        files["heatmap"] = experiment_dir / "valid_ndcg10_heatmap.png"
        write_heatmap(files["heatmap"], plotted, swept,
                      f"{model} on {dataset}: valid NDCG@10" if dataset else f"{model}: valid NDCG@10")
    print(summary(markdown, rows, files, experiment_dir), flush=True)
    return TuneResult(experiment_dir, rows, best, best_config, files)


def trial_rows(results, swept: list[str]) -> list[dict]:
    """One row per trial: swept values, valid and test metrics, epochs, wall time, status, error."""
    metric_columns = _metric_columns(results)
    rows = []
    for result in sorted(results, key=lambda result: Path(result.path).name):  # grid order
        metrics = result.metrics or {}
        row = {"trial": Path(result.path).name, "status": _status(result)}
        row.update({key: (result.config or {}).get(key) for key in swept})  # none: never started
        row.update({column: metrics.get(column, math.nan) for column in metric_columns})
        row.update({
            "epochs": metrics.get("epoch", 0),
            "wall_s": metrics.get("time_total_s", math.nan),
            "checkpoint": metrics.get("checkpoint"),
            "trial_dir": result.path,
            "error": _short_error(result.error),
        })
        rows.append(row)
    return rows


def _metric_columns(results) -> list[str]:
    """``valid_*`` then ``test_*`` columns, as the trials reported them (``SELECTION`` first)."""
    names = dict.fromkeys([SELECTION])
    for result in results:
        names.update(dict.fromkeys(key for key in result.metrics or {}
                                   if key.startswith(("valid_", "test_"))))
    return sorted(names, key=lambda name: (not name.startswith("valid_"), name != SELECTION))


def _status(result) -> str:
    """completed (tested), stopped early (by --asha: Tune marks that result done), error, or
    unfinished (interrupted or never started: ``--resume`` runs it)."""
    metrics = result.metrics or {}
    if result.error is not None:
        return "error"
    if metrics.get("tested"):
        return "completed"
    return "stopped early" if metrics.get("done") else "unfinished"


def _short_error(error) -> str | None:
    """The exception's last line (``ValueError: ...``); the trial's error.txt has the traceback."""
    if error is None:
        return None
    lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", str(error)).splitlines()]
    return next((line for line in reversed(lines) if line), type(error).__name__)


def choose_best(rows: list[dict]) -> dict | None:
    """The completed trial with the highest valid NDCG@10; test metrics play no part."""
    candidates = [row for row in rows if row["status"] == "completed"
                  and math.isfinite(row[SELECTION])]
    return max(candidates, key=lambda row: row[SELECTION], default=None)


def tests_of_chosen_only(row: dict, best: dict | None) -> dict:
    """``row`` with its test metrics blanked unless it is the chosen trial: the sweep reads the
    test set for its choice only (each trial's own result.json keeps what it measured)."""
    if best is not None and row["trial"] == best["trial"]:
        return row
    return {key: (math.nan if key.startswith("test_") else value) for key, value in row.items()}


def chosen_config(trial_config: dict, swept: list[str], model: str) -> dict:
    """What the chosen trial ran with: the shared fixed settings plus its swept values, in the
    model's own keys, as plain yaml values."""
    chosen = model_settings(model, {key: trial_config[key] for key in swept})
    merged = {**trial_config[SETUP]["fixed"], **chosen}
    return {key: value.item() if hasattr(value, "item") else value for key, value in merged.items()}


def write_csv(path: Path, rows: list[dict]) -> None:
    import pandas as pd

    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        pd.DataFrame(rows).to_csv(handle, index=False)


def write_text(path: Path, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def markdown_report(rows: list[dict], best: dict | None, model: str) -> str:
    """Trials ranked by valid NDCG@10, without test columns; the chosen one's test metrics are
    read after the choice and stated once, under the table's title."""
    from tabulate import tabulate

    ranked = sorted(rows, key=lambda row: -row[SELECTION] if math.isfinite(row[SELECTION])
                    else math.inf)
    columns = [column for column in rows[0] if column not in MARKDOWN_HIDDEN
               and not column.startswith("test_")] if rows else []
    body = [[_cell(row[column]) for column in columns] for row in ranked]
    lines = [f"# {model}: {len(rows)} trials, chosen on valid NDCG@10", ""]
    if best is None:
        lines.append("No trial completed; nothing was chosen.")
    else:
        tests = ", ".join(f"{key[5:]} {best[key]:.4f}" for key in best if key.startswith("test_"))
        lines.append(f"Chosen: `{best['trial']}` (valid NDCG@10 {best[SELECTION]:.4f}); "
                     f"its test metrics: {tests}.")
    lines += ["", tabulate(body, headers=columns, tablefmt="github", floatfmt=".4f",
                           missingval=""), ""]
    return "\n".join(lines)


def _cell(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def write_best_config(path: Path, config: dict, best: dict, setup: dict, n_trials: int) -> None:
    """A yaml that ``run_recbole_ml.py --config_files`` accepts (after the sweep's own files)."""
    files = " ".join(setup["config_files"] + [str(path)])
    header = (f"# Best of {n_trials} trials ({best['trial']}), valid NDCG@10 "
              f"{best[SELECTION]:.4f}. Reproduce with:\n"
              f"#   python run_recbole_ml.py --model={setup['model']} "
              f"--dataset={setup['dataset']} --config_files='{files}'\n")
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(header)
        yaml.safe_dump(config, handle, sort_keys=False, default_flow_style=False)


def heatmap_rows(rows: list[dict], swept: list[str]) -> list[dict]:
    """Trials with a place on the learning rate x embedding size grid (none unless both are swept;
    a trial that never started has no values)."""
    if not {"learning_rate", EMBEDDING_SIZE} <= set(swept):
        return []
    return [row for row in rows
            if row["learning_rate"] is not None and row[EMBEDDING_SIZE] is not None]


def write_heatmap(path: Path, rows: list[dict], swept: list[str], title: str) -> None:
    """Valid NDCG@10 over learning rate x embedding size (best over any other swept axis)."""
    import numpy as np
    import pandas as pd
    from matplotlib.figure import Figure  # no pyplot: the Agg canvas, no global backend switch

    frame = pd.DataFrame(rows)
    grid = frame.pivot_table(index=EMBEDDING_SIZE, columns="learning_rate", values=SELECTION,
                             aggfunc="max", dropna=False)
    grid = grid.reindex(index=sorted(frame[EMBEDDING_SIZE].unique()),
                        columns=sorted(frame["learning_rate"].unique()))
    values = np.ma.masked_invalid(grid.to_numpy(dtype=float))
    others = [key for key in swept if key not in ("learning_rate", EMBEDDING_SIZE)]
    figure = Figure(figsize=(1.2 * values.shape[1] + 2.5, 0.6 * values.shape[0] + 2), dpi=120)
    axes = figure.add_subplot()
    image = axes.imshow(values, cmap="viridis", aspect="auto", origin="lower")
    for (i, j), value in np.ndenumerate(values.filled(np.nan)):
        dark_cell = not np.isnan(value) and value < values.mean()  # failed cells stay blank
        axes.text(j, i, "n/a" if np.isnan(value) else f"{value:.4f}", ha="center", va="center",
                  fontsize=8, color="white" if dark_cell else "black")
    axes.set_xticks(range(len(grid.columns)), [f"{lr:g}" for lr in grid.columns])
    axes.set_yticks(range(len(grid.index)), [str(size) for size in grid.index])
    axes.set_xlabel("learning rate")
    axes.set_ylabel("embedding size")
    axes.set_title(title + (f" (best over {', '.join(others)})" if others else ""), fontsize=9)
    figure.colorbar(image, ax=axes, label="valid NDCG@10")
    figure.tight_layout()
    with atomic_open(path, "wb") as handle:
        figure.savefig(handle, format="png")


def summary(markdown: str, rows: list[dict], files: dict, experiment_dir: Path) -> str:
    lines = [markdown]
    if any(row["status"] == "unfinished" for row in rows):
        lines.append(f"Some trials did not finish; continue with --resume "
                     f"(--tune_dir={experiment_dir.parent}).")
    lines += [f"wrote {kind}: {path}" for kind, path in files.items()]
    return "\n".join(lines)


# -- command line -----------------------------------------------------------------------------
def add_tune_arguments(parser: argparse.ArgumentParser) -> None:
    """The tune flags, shared by ``run_recbole_ml.py --tune`` and ``recbole-microlens tune``."""
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
    flag("resume", action="store_true", help="continue the interrupted sweep in --tune_dir")


def run_tune_from_args(args: argparse.Namespace, config_files=None, config_dict=None) -> TuneResult:
    return run_tune(
        args.model, args.dataset, args.tune_config, config_files=config_files,
        config_dict=config_dict, axes=[axis for axis in args.tune_axes.split(",") if axis],
        ray_address=args.ray_address, cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial, max_concurrent=args.max_concurrent, asha=args.asha,
        tune_dir=args.tune_dir, resume=args.resume)


def config_overrides(args: list[str]) -> dict:
    """``--key=value`` (or ``--key value``) arguments as config values: literals, never eval'ed."""
    from recbole_microlens.config_check import parse_overrides

    return parse_overrides(args)
