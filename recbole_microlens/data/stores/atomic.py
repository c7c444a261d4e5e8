"""A converted dataset folder is complete or absent.

The converter writes into a temporary sibling folder and moves it into place at the end, so a
failure or a kill at any point leaves the earlier dataset as it was. ``<dataset>.meta.json``,
written last, lists every output with its sha256; a folder whose files do not match it is
refused by training (:func:`dataset_problem`), with the command that rebuilds it.

Other things kept in the folder (``raw/`` of the sample, ``media/`` stores, ``features/``) are
not outputs of the converter: a re-conversion carries them over to the new folder.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Iterator

from recbole_microlens.errors import DatasetError
from recbole_microlens.io import is_temp_file, read_json, sha256_file, write_json_atomic

logger = logging.getLogger(__name__)

OUTPUT_SUFFIXES = (".inter", ".item", ".user", ".titles.csv", ".meta.json")
BUILD_FOLDER = re.compile(r"^\.(?P<dataset>.+)\.partial-(?P<pid>\d+)-[0-9a-f]+$")
RENAME_EXCHANGE = 2  # linux/fs.h


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
    """Yield an empty temporary folder beside ``out_dir/dataset``; when the block succeeds it
    replaces the dataset folder (keeping what else that folder held), else it is removed."""
    check_dataset_name(dataset)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / dataset
    remove_stale_builds(out_dir, dataset)
    build = out_dir / f".{dataset}.partial-{os.getpid()}-{secrets.token_hex(4)}"
    build.mkdir()
    try:
        yield build
        _move_into_place(build, target, dataset)
    finally:
        shutil.rmtree(build, ignore_errors=True)


def _move_into_place(build: Path, target: Path, dataset: str) -> None:
    """Swap ``build`` and ``target`` in one step, then carry the old folder's other entries
    (``raw/``, ``media/``, ...) over; ``build`` ends up holding only the old outputs."""
    if not target.exists():
        os.rename(build, target)
        return
    _exchange(build, target)
    _carry_over(build, target, dataset)


def _carry_over(old: Path, new: Path, dataset: str) -> None:
    """What else ``old`` held (``raw/``, ``media/``, ...) moves to ``new``; outputs and the temp
    files of killed writes stay behind (and go with ``old``)."""
    for entry in sorted(old.iterdir()):
        if (not is_output(entry.name, dataset) and not is_temp_file(entry.name)
                and not (new / entry.name).exists()):
            os.rename(entry, new / entry.name)


def _exchange(first: Path, second: Path) -> None:
    """Atomically swap two folders (Linux ``renameat2``); elsewhere, two renames."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        renameat2 = None
    if renameat2 is not None:
        at_fdcwd = -100
        if renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second),
                     RENAME_EXCHANGE) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise OSError(code, os.strerror(code), str(second))
    aside = first.with_name(first.name + "-old")
    os.rename(second, aside)
    os.rename(first, second)
    os.rename(aside, first)


def remove_stale_builds(out_dir: Path, dataset: str) -> None:
    """Remove build folders of killed conversions (a live process's are left alone), first
    giving back to the dataset what a kill in the middle of a swap left in one of them."""
    target = Path(out_dir) / dataset
    for folder in Path(out_dir).glob(f".{dataset}.partial-*"):
        match = BUILD_FOLDER.match(folder.name)
        if not match or match["dataset"] != dataset or _alive(int(match["pid"])):
            continue
        if target.is_dir() and dataset_problem(target, dataset) is None:
            _carry_over(folder, target, dataset)
        logger.info("removing %s, left by an interrupted conversion", folder)
        shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process is building now: any older folder of it is stale
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
