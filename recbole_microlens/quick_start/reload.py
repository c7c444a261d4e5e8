"""Rebuilding a trained run from its checkpoint: the config from the run record, then the same
:func:`~recbole_microlens.quick_start.build.build_run` training used, then the trained weights."""
from __future__ import annotations

from pathlib import Path

from recbole_microlens.config.configurator import MLConfig
from recbole_microlens.errors import CheckpointError
from recbole_microlens.model import get_model
from recbole_microlens.model.layers import content_tower, runtime_options
from recbole_microlens.model.tower_cache import attach_run_trunk_cache
from recbole_microlens.quick_start.build import build_run
from recbole_microlens.trainer.checkpoint import check_atomic_files, read_checkpoint


def checkpoint_model_class(checkpoint: dict, path):
    """The class that wrote ``checkpoint``: imported from the dotted path the checkpoint
    recorded (a model in your own module, on PYTHONPATH or installed, needs no code to load),
    else looked up by name (registered, a ``recbole_microlens.models`` entry point, RecBole's)."""
    recorded = checkpoint.get("model_class")  # absent from checkpoints of older versions
    if recorded and not recorded.startswith("__main__."):
        try:
            return get_model(recorded)
        except ValueError as error:
            import_error = error
    else:
        import_error = None
    try:
        return get_model(checkpoint["model"])
    except ValueError as error:
        where = f"{recorded!r} cannot be imported ({import_error}); " if import_error else ""
        raise CheckpointError(
            f"{path}: model {checkpoint['model']!r} is unknown here: {where}put the module that "
            "defines it on PYTHONPATH, install it (entry point group recbole_microlens.models) or "
            "import the module that registers it first") from error


def rebuild_config(checkpoint: dict, overrides: dict | None = None, path=None) -> MLConfig:
    """The run's ``MLConfig`` from a checkpoint's run record (``overrides`` win, e.g. a device).
    A reload is a run of its own: it gets its own run id (and so its own log file)."""
    settings = {**checkpoint["run_config"], **(overrides or {})}
    settings.pop("model", None)  # the class below decides; a dotted --model path stays recorded
    if "run_id" not in (overrides or {}):
        settings.pop("run_id", None)
    model_class = checkpoint_model_class(checkpoint, path)
    return MLConfig(model_class, checkpoint["dataset"], config_dict=settings)


def load_data_and_model(model_file, overrides: dict | None = None, verify: bool = True,
                        data_path: str | Path | None = None, quiet: bool = False):
    """RecBole's ``load_data_and_model`` for our checkpoints: ``(config, model, dataset,
    train_data, valid_data, test_data)`` with the trained weights loaded and the model in eval
    mode. ``verify`` checks the atomic files against the checksums the checkpoint recorded;
    ``data_path`` is the root of converted datasets when the dataset has moved since training;
    ``quiet`` neither logs the configuration nor starts RecBole's log file."""
    checkpoint = read_checkpoint(model_file)
    if data_path is not None:
        overrides = {**(overrides or {}), "data_path": str(data_path)}
    # the trained state dict brings the encoder's weights: its pre-trained start is not needed;
    # the checkpoint's folder is its run's checkpoint_dir, where the run's trunk cache is reused
    config = rebuild_config(checkpoint, {"encoder_checkpoint": "trained",
                                         "checkpoint_dir": str(Path(model_file).parent),
                                         **(overrides or {})}, model_file)
    if verify:
        check_atomic_files(checkpoint, config, model_file)
    run = build_run(config, quiet=quiet)
    try:
        run.model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:  # sizes differ: the dataset changed (--no-verify), or another run
        raise CheckpointError(
            f"{model_file} does not fit the dataset in {config['data_path']} "
            f"({run.dataset.item_num - 1} items, {run.dataset.user_num - 1} users now): "
            f"{' '.join(str(error).split())[:300]}") from error
    run.model.load_other_parameter(checkpoint.get("other_parameter"))
    run.model.eval()
    run_encoder_as_trained(run.model, config, progress=not quiet)
    return config, run.model, run.dataset, run.train_data, run.valid_data, run.test_data


def run_encoder_as_trained(model, config, progress: bool = False) -> None:
    """A content tower runs as in its training run's evaluation: the same runtime switches and
    the same trunk cache (``finetune: top``; fp16 by default, built once and reused), so what a
    reload scores, recommends and exports is what the run reported. ``trunk_cache: false`` in
    the overrides computes the frozen trunk live, in full precision, instead."""
    tower = content_tower(model)
    if tower is not None:
        tower.configure_runtime(**runtime_options(config))
        attach_run_trunk_cache(tower, config, progress=progress)
