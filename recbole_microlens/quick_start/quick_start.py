"""One call from names to numbers: ``run_recbole_ml(model, dataset, ...) -> result dict``."""
from __future__ import annotations

import contextlib
import logging
import time
from collections import OrderedDict

import torch

from recbole.utils import set_color

from recbole_microlens.config.configurator import MLConfig
from recbole_microlens.evaluator.ranking import with_breakdowns
from recbole_microlens.evaluator.results import (
    jsonable_config,
    metrics_table,
    package_versions,
    peak_rss_mb,
    write_result_file,
)
from recbole_microlens.errors import ConfigError
from recbole_microlens.processes import require_main_guard
from recbole_microlens.quick_start.build import build_run
from recbole_microlens.quick_start.reload import load_data_and_model  # noqa: F401  (RecBole's API)
from recbole_microlens.trainer.resume import (
    TrainingInterrupted,
    check_same_run,
    read_training_state,
    signal_of,
)
from recbole_microlens.config.run_id import new_run_id
from recbole_microlens.trainer.trainer import MLTrainer


def run_recbole_ml(
    model=None,
    dataset=None,
    config_file_list=None,
    config_dict=None,
    saved=True,
    callback_fn=None,
    resume=None,
) -> dict:
    """Train on the training split, select on valid NDCG@10, report valid and test metrics.

    The result has RecBole's keys (``best_valid_score``, ``valid_score_bigger``,
    ``best_valid_result``, ``test_result``: flat metric -> float, as stock RecBole's) beside
    ours (``valid``, ``test``: the same metrics with the breakdowns beside them, timings, ...).
    ``resume``: the training state file (``<checkpoint_dir>/resume/<Model>-<run_id>.pth``) of
    an interrupted run with the same settings, continued exactly where it stopped.
    """
    started = time.perf_counter()
    state = read_training_state(resume) if resume else None
    if state is not None:  # the same run id: the same checkpoint, state file and log name
        config_dict = {**(config_dict or {}), "run_id": state["run_id"]}
    config = MLConfig(model, dataset, config_file_list, config_dict)
    if state is not None:
        check_same_run(state, config, resume)
    built = build_run(config)
    dataset, model = built.dataset, built.model
    train_data, valid_data, test_data = built.splits
    logger = logging.getLogger()

    trainer = MLTrainer(config, model)
    if state is not None:
        trainer.continue_from(state)
    with interrupts_name_the_state(trainer):
        fit_started = time.perf_counter()
        best_valid_score, best_valid_result = trainer.fit(
            train_data,
            valid_data,
            saved=saved,
            show_progress=config["show_progress"],
            callback_fn=callback_fn,
        )
        test_started = time.perf_counter()
        test_result = trainer.evaluate(
            test_data, load_best_model=saved, show_progress=config["show_progress"]
        )
    finished = time.perf_counter()
    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")

    marks = {"started": started, "fit": fit_started, "test": test_started, "finished": finished}
    result = run_result(config, dataset, trainer, (best_valid_score, best_valid_result),
                        test_result, marks)
    table = metrics_table({"valid": result["valid"], "test": result["test"]})
    # once, on stdout: the log already has every metric ("best valid", "test result" above)
    print(f"\n{config['model']} on {config['dataset']}\n{table}\n", flush=True)
    if config["result_file"] and config["local_rank"] == 0:
        write_result_file(config["result_file"], result)
    trainer.state_file.unlink(missing_ok=True)  # the run is complete: nothing left to resume
    if not config["single_spec"]:
        torch.distributed.destroy_process_group()
    return result


@contextlib.contextmanager
def interrupts_name_the_state(trainer):
    """Ctrl-C or SIGTERM during training or test: :class:`TrainingInterrupted`, naming the
    state file a resumed run continues from (None when this run saves none)."""
    try:
        yield
    except BaseException as error:
        signum = signal_of(error)
        if signum is None:
            raise
        state_file = str(trainer.state_file) if trainer.state_file.is_file() else None
        raise TrainingInterrupted(signum, state_file, trainer.current_epoch) from None


def run_result(config, dataset, trainer, best_valid: tuple, test_result, marks: dict) -> dict:
    """RecBole's ``run_recbole`` keys (from ``best_valid``: score and result) beside ours:
    metrics, timings, sizes, versions and the resolved config."""
    best_valid_score, best_valid_result = best_valid
    return {
        "model": config["model"],
        "dataset": config["dataset"],
        "seed": config["seed"],
        # RecBole's run_recbole keys
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": flat_metrics(best_valid_result),
        "test_result": flat_metrics(test_result),
        "valid_metric": config["valid_metric"],
        "valid": with_breakdowns(best_valid_result),
        "test": with_breakdowns(test_result),
        "epochs_run": len(trainer.epoch_seconds),
        "valid_history": trainer.valid_history,
        "seconds": run_seconds(trainer, marks),
        "encoder_items_per_epoch": trainer.epoch_items_encoded,
        "peak_rss_mb": peak_rss_mb(),
        "n_users": dataset.user_num - 1,
        "n_items": dataset.item_num - 1,
        "n_interactions": len(dataset.user_sequences.items),
        "versions": package_versions(),
        "config": jsonable_config(config),
    }


def flat_metrics(result):
    """RecBole's shape: ``OrderedDict`` metric -> float (None when the split was not evaluated)."""
    return None if result is None else OrderedDict(result)


def run_seconds(trainer, marks: dict) -> dict:
    """Where the run's time went, from the ``perf_counter`` marks of its phases and the trainer's
    own per-epoch, per-validation and trunk-cache timings."""
    return {
        "total": marks["finished"] - marks["started"],
        "prepare": marks["fit"] - marks["started"],
        "fit": marks["test"] - marks["fit"],
        "test": marks["finished"] - marks["test"],
        "per_epoch": trainer.epoch_seconds,
        "mean_epoch": sum(trainer.epoch_seconds) / max(len(trainer.epoch_seconds), 1),
        "per_validation": trainer.valid_seconds,
        "trunk_cache": trainer.trunk_cache_seconds,
    }


def objective_function(config_dict=None, config_file_list=None, saved=True) -> dict:
    """RecBole's ``objective_function`` for its ``HyperTuning``, through our config, trainer and
    evaluation; ``model`` and ``dataset`` come from the config dict or files, as in RecBole."""
    root = logging.getLogger()
    for handler in root.handlers[:]:  # one log file per trial, as RecBole does
        root.removeHandler(handler)
    result = run_recbole_ml(config_file_list=config_file_list, config_dict=config_dict,
                            saved=saved)
    keys = ("model", "best_valid_score", "valid_score_bigger", "best_valid_result", "test_result")
    return {key: result[key] for key in keys}


def run(model, dataset, config_file_list=None, config_dict=None, *, nproc=1, ip="localhost",
        port="5678", saved=True, resume=None) -> dict:
    """``run_recbole_ml`` in one process, or in ``nproc`` DDP processes (RecBole's multi-GPU
    settings: one GPU per process; gloo on CPU when there is no GPU). Returns rank 0's result."""
    if nproc <= 1:
        return run_recbole_ml(model, dataset, config_file_list, config_dict, saved=saved,
                              resume=resume)
    if resume:
        raise ConfigError("--resume continues a single-process run; it cannot be used with "
                          f"--nproc={nproc}")
    require_main_guard()
    context = torch.multiprocessing.get_context("spawn")
    queue = context.SimpleQueue()
    shared = {**(config_dict or {}), "world_size": nproc, "nproc": nproc, "ip": ip,
              "port": str(port), "offset": 0,
              "run_id": (config_dict or {}).get("run_id") or new_run_id()}  # one for all ranks
    torch.multiprocessing.spawn(_run_rank, args=(model, dataset, config_file_list, shared, saved, queue),
                                nprocs=nproc, join=True)
    return queue.get()


def _run_rank(rank, model, dataset, config_file_list, config_dict, saved, queue):
    result = run_recbole_ml(model, dataset, config_file_list, {**config_dict, "local_rank": rank},
                            saved=saved)
    if rank == 0:
        queue.put(result)
