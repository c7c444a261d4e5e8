"""What a checkpoint carries besides weights (the run is rebuilt from it by
:mod:`recbole_microlens.quick_start.reload`).

RecBole pickles its ``Config`` into every checkpoint, so loading one needs ``weights_only=False``
(arbitrary code). Ours carry the same information as plain data (dicts, lists, strings,
numbers): the run's own settings, the dataset name, checksums of the atomic files it trained on
and the package versions. ``torch.load(path, weights_only=True)`` reads them, and
:func:`~recbole_microlens.quick_start.reload.load_data_and_model` rebuilds RecBole's 6-tuple
from them.
"""
from __future__ import annotations

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
