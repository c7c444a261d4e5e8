"""A converted dataset folder is complete or absent.

The converter builds under the artefact protocol (:mod:`.artefact`): locked, into a sibling
folder moved into place at the end, so a failure or a kill at any point leaves the earlier
dataset as it was, and the next conversion removes what a killed one left. ``<dataset>.meta.json``,
written last, lists every output with its sha256; a folder whose files do not match it is
refused by training (:func:`dataset_problem`), with the command that rebuilds it.

Other things kept in the folder (``raw/`` of the sample, ``media/`` stores, ``features/``) are
not outputs of the converter: a re-conversion carries them over to the new folder.
"""
from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path
from typing import Iterator

from recbole_microlens.data.stores import artefact
from recbole_microlens.errors import DatasetError
from recbole_microlens.io import is_temp_file, read_json, sha256_file, write_json_atomic

OUTPUT_SUFFIXES = (".inter", ".item", ".user", ".titles.csv", ".meta.json")


def check_dataset_name(dataset: str) -> None:
    """A dataset name is one plain folder name: it can never lead outside the data root."""
    if (not isinstance(dataset, str) or not dataset.strip() or dataset in (".", "..")
            or dataset.startswith(".") or any(sep in dataset for sep in ("/", "\\", "\0"))):
        raise DatasetError(f"dataset name {dataset!r} is not a plain folder name: a dataset is "
                           "one folder directly in the data root, named without '/' or '\\' "
                           "and not starting with '.'")


def meta_path(folder: Path, dataset: str) -> Path:
    return Path(folder) / f"{dataset}.meta.json"


def is_output(name: str, dataset: str) -> bool:
    return name in {f"{dataset}{suffix}" for suffix in OUTPUT_SUFFIXES}


def seal(folder: str | os.PathLike, dataset: str, meta: dict) -> dict:
    """Write ``meta.json`` (last), with the name and sha256 of every output in ``folder``."""
    folder = Path(folder)
    outputs = sorted(path.name for path in folder.iterdir()
                     if is_output(path.name, dataset) and not path.name.endswith(".meta.json"))
    meta = {**meta, "outputs": outputs,
            "checksums": {name: sha256_file(folder / name) for name in outputs}}
    write_json_atomic(meta_path(folder, dataset), meta)
    return meta


def rebuild_hint(folder: Path, dataset: str) -> str:
    return (f"rebuild it with `recbole-microlens convert --raw-dir RAW_DIR --dataset {dataset} "
            f"--out {folder.parent}` (or train with --raw_data_path=RAW_DIR)")


def dataset_problem(folder: str | os.PathLike, dataset: str) -> str | None:
    """Why ``folder`` is not a complete dataset, or None when every output matches meta.json."""
    folder = Path(folder)
    meta_file = meta_path(folder, dataset)
    if not meta_file.is_file():
        return f"{meta_file.name} is missing (an interrupted or failed conversion)"
    try:
        meta = read_json(meta_file)
        checksums = dict(meta["checksums"])
    except (ValueError, KeyError, TypeError):
        return f"{meta_file.name} has no file checksums (damaged, or written by an older version)"
    for name, digest in checksums.items():
        path = folder / name
        if not path.is_file():
            return f"{name}, listed in {meta_file.name}, is missing"
        if sha256_file(path) != digest:
            return f"{name} does not match its checksum in {meta_file.name} (changed or partly written)"
    strays = sorted(path.name for path in folder.iterdir() if is_output(path.name, dataset)
                    and path.name not in checksums and path != meta_file)
    if strays:
        return f"{strays} are not from the conversion {meta_file.name} describes"
    if f"{dataset}.inter" not in checksums:
        return f"{meta_file.name} lists no {dataset}.inter"
    return None


def require_complete(folder: str | os.PathLike, dataset: str) -> None:
    problem = dataset_problem(folder, dataset)
    if problem:
        raise DatasetError(f"dataset folder {folder} is incomplete: {problem}; "
                           + rebuild_hint(Path(folder), dataset))


@contextlib.contextmanager
def building(out_dir: str | os.PathLike, dataset: str) -> Iterator[Path]:
    """Yield an empty build folder for ``out_dir/dataset`` (the artefact protocol, locked);
    when the block has sealed it, it replaces the dataset folder (keeping what else that folder
    held); when the block raises, it is removed."""
    check_dataset_name(dataset)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    with artefact.building(Path(out_dir) / dataset, marker=f"{dataset}.meta.json",
                           carry_over=functools.partial(_carry_over, dataset=dataset)) as build:
        yield build


def dataset_lock(dataset_dir: str | os.PathLike):
    """The lock of a dataset folder: hold it to check and convert as one step."""
    return artefact.artefact_lock(dataset_dir)


def _carry_over(old: Path, new: Path, dataset: str) -> None:
    """What else ``old`` held (``raw/``, ``media/``, ...) moves to ``new``; outputs and the temp
    files of killed writes stay behind (and go with ``old``)."""
    for entry in sorted(old.iterdir()):
        if (not is_output(entry.name, dataset) and not is_temp_file(entry.name)
                and not (new / entry.name).exists()):
            os.rename(entry, new / entry.name)
