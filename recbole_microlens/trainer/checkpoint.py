"""What a checkpoint carries besides weights, and how a run is rebuilt from it.

RecBole pickles its ``Config`` into every checkpoint, so loading one needs ``weights_only=False``
(arbitrary code). Ours carry the same information as plain data (dicts, lists, strings,
numbers): the run's own settings, the dataset name, checksums of the atomic files it trained on
and the package versions. ``torch.load(path, weights_only=True)`` reads them, and
:func:`load_data_and_model` rebuilds RecBole's 6-tuple from them.
"""
from __future__ import annotations

import logging
import numbers
from pathlib import Path

from recbole_microlens.io import load_trainer_checkpoint
from recbole_microlens.errors import CheckpointError, DatasetError  # CheckpointError: re-exported
from recbole_microlens.io import sha256_file

#: bumped when the layout of the run record changes
FORMAT_VERSION = 1
ATOMIC_SUFFIXES = (".inter", ".item", ".user")
#: per-process settings that must not follow a checkpoint into another process
PROCESS_KEYS = ("local_rank", "world_size", "nproc", "ip", "port", "offset", "gpu_id", "device",
                "single_spec", "checkpoint_dir", "result_file")


def plain(value):
    """``value`` as data ``torch.load(weights_only=True)`` accepts: containers of str/int/float/
    bool/None (numpy numbers as Python's); anything else (enums, devices, paths) as its string."""
    if isinstance(value, (bool, type(None))):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, numbers.Integral):  # numpy integers too, as Python ints
        return int(value)
    if isinstance(value, numbers.Real):  # numpy floats are float subclasses: pickled as numpy
        return float(value)
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return str(value)


def atomic_file_checksums(dataset_dir: str | Path, dataset: str) -> dict[str, str]:
    """sha256 of each atomic file of ``dataset`` that exists, by file name."""
    folder = Path(dataset_dir)
    return {f"{dataset}{suffix}": sha256_file(folder / f"{dataset}{suffix}")
            for suffix in ATOMIC_SUFFIXES if (folder / f"{dataset}{suffix}").is_file()}


def run_record(config) -> dict:
    """Plain-data description of the run ``config`` belongs to (stored in every checkpoint)."""
    from recbole_microlens.evaluator.results import jsonable_config, package_versions

    settings = {key: value for key, value in config.external_config_dict.items()
                if key not in PROCESS_KEYS}
    settings["data_path"] = str(Path(config["data_path"]).resolve().parent)  # the root, absolute
    return {
        "format_version": FORMAT_VERSION,
        "model": config["model"],
        "model_class": class_path(config.model_class),
        "dataset": config["dataset"],
        "run_config": plain(settings),
        "config": plain(jsonable_config(config)),
        "atomic_files": atomic_file_checksums(config["data_path"], config["dataset"]),
        "versions": plain(package_versions()),
    }


def class_path(cls) -> str:
    """``package.module.ClassName``: where a process that never saw the class imports it from."""
    return f"{cls.__module__}.{cls.__qualname__}"


def checkpoint_model_class(checkpoint: dict, path):
    """The class that wrote ``checkpoint``: imported from the dotted path the checkpoint
    recorded (a model in your own module, on PYTHONPATH or installed, needs no code to load),
    else looked up by name (registered, a ``recbole_microlens.models`` entry point, RecBole's)."""
    from recbole_microlens.model import get_model

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


def read_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """A recbole-microlens checkpoint with its run record, loaded weights-only (the one reader,
    ``io.load_torch_file``, names the file and the format for anything else)."""
    checkpoint = load_trainer_checkpoint(path, map_location, required=("state_dict",))
    if "run_config" not in checkpoint:
        raise CheckpointError(f"{path}: the checkpoint has no run record (written by an older "
                              "recbole-microlens, or not by it); retrain to get one")
    return checkpoint


def check_atomic_files(checkpoint: dict, config, path) -> None:
    """Refuse to pair weights with atomic files other than those they were trained on
    (item ids would silently mean other items)."""
    folder = Path(config["data_path"])
    missing = [name for name in checkpoint["atomic_files"] if not (folder / name).is_file()]
    if missing:
        raise DatasetError(
            f"{path}: the dataset it was trained on is not at {folder} (no {missing[0]}); if it "
            f"moved, name the folder that holds {config['dataset']}/ with --data-path DIR "
            "(load_data_and_model(..., data_path=DIR))")
    found = atomic_file_checksums(folder, config["dataset"])
    for name, digest in checkpoint["atomic_files"].items():
        if found.get(name) != digest:
            raise CheckpointError(
                f"{path}: {folder / name} is not the file this model was "
                f"trained on (sha256 {found.get(name)}, expected {digest})")


def rebuild_config(checkpoint: dict, overrides: dict | None = None, path=None):
    """The run's ``MLConfig`` from a checkpoint's run record (``overrides`` win, e.g. a device)."""
    from recbole_microlens.config.configurator import MLConfig

    settings = {**checkpoint["run_config"], **(overrides or {})}
    settings.pop("model", None)  # the class below decides; a dotted --model path stays recorded
    model_class = checkpoint_model_class(checkpoint, path)
    return MLConfig(model_class, checkpoint["dataset"], config_dict=settings)


def load_data_and_model(model_file, overrides: dict | None = None, verify: bool = True,
                        data_path: str | Path | None = None, quiet: bool = False):
    """RecBole's ``load_data_and_model`` for our checkpoints: ``(config, model, dataset,
    train_data, valid_data, test_data)`` with the trained weights loaded and the model in eval
    mode. ``verify`` checks the atomic files against the checksums the checkpoint recorded;
    ``data_path`` is the root of converted datasets when the dataset has moved since training;
    ``quiet`` neither logs the configuration nor starts RecBole's log file."""
    from recbole.utils import init_logger, init_seed

    from recbole_microlens.data.recbole.dataset import create_dataset
    from recbole_microlens.data.recbole.loaders import data_preparation

    checkpoint = read_checkpoint(model_file)
    if data_path is not None:
        overrides = {**(overrides or {}), "data_path": str(data_path)}
    # the trained state dict brings the encoder's weights: its pre-trained start is not needed
    config = rebuild_config(checkpoint, {"encoder_checkpoint": "trained", **(overrides or {})},
                            model_file)
    if verify:
        check_atomic_files(checkpoint, config, model_file)
    init_seed(config["seed"], config["reproducibility"])
    if not quiet:
        init_logger(config)
        logging.getLogger().info(config)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = config.model_class(config, train_data._dataset).to(config["device"])
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:  # sizes differ: the dataset changed (--no-verify), or another run
        raise CheckpointError(
            f"{model_file} does not fit the dataset in {config['data_path']} "
            f"({dataset.item_num - 1} items, {dataset.user_num - 1} users now): "
            f"{' '.join(str(error).split())[:300]}") from error
    model.load_other_parameter(checkpoint.get("other_parameter"))
    model.eval()
    return config, model, dataset, train_data, valid_data, test_data
