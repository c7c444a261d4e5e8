"""One protocol for every artefact a run builds once and then shares: dataset folders, media and
title stores, frozen features, trunk caches. Each is complete or absent, built by one builder.

* **Locked:** ``.<name>.lock`` beside the artefact, an ``fcntl`` lock (other processes wait) plus a
  per-path lock for other threads; re-entrant within a thread, so a builder may call code that
  takes the same lock again.
* **Complete when its marker exists:** a folder artefact's marker (``meta.json``) is the last file
  written into it; a file artefact's marker is a sibling file written after the file is in place.
* **Built beside, published by a rename:** a build writes into ``.<name>.partial`` next to the
  artefact; only a build that wrote its marker is moved into place (an atomic exchange when an
  older artefact is there). A failed build leaves nothing; a partial folder left by a killed run is
  removed by the next builder, unless the build is resumable (``resume=True``), in which case the
  build function picks up what it finds there.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import logging
import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from recbole_microlens.io import write_json_atomic

logger = logging.getLogger(__name__)

MARKER = "meta.json"
REUSED, BUILT, UNFINISHED = "reused", "built", "unfinished"
RENAME_EXCHANGE = 2  # linux/fs.h

#: ``carry_over(old, new)``: what an artefact's old folder holds that is not the build's own
#: output, moved into the new one (a dataset folder keeps ``raw/``, ``media/``, ``features/``)
CarryOver = Callable[[Path, Path], None]


# ================================================================================ lock ===


@dataclass
class _PathLock:
    threads: threading.RLock = field(default_factory=threading.RLock)
    depth: int = 0
    handle: object = None


_LOCKS: dict[Path, _PathLock] = {}
_LOCKS_GUARD = threading.Lock()


def lock_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.parent / f".{path.name}.lock"


def partial_path(path: str | os.PathLike) -> Path:
    """Where the artefact at ``path`` is built before it is moved into place."""
    path = Path(path)
    return path.parent / f".{path.name}.partial"


@contextlib.contextmanager
def artefact_lock(path: str | os.PathLike) -> Iterator[None]:
    """One builder of ``path`` at a time: other processes and threads wait; the holding thread
    may take it again."""
    path = Path(path).resolve()  # one lock per folder, however it is named
    with _LOCKS_GUARD:
        entry = _LOCKS.setdefault(path, _PathLock())
    with entry.threads:
        if entry.depth == 0:
            entry.handle = _take_file_lock(path)
        entry.depth += 1
        try:
            yield
        finally:
            entry.depth -= 1
            if entry.depth == 0:
                entry.handle.close()  # releases the flock
                entry.handle = None


def _take_file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(lock_path(path), "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
    except BaseException:
        handle.close()
        raise
    return handle


# ======================================================================= folder artefacts ===


def is_complete(folder: str | os.PathLike, marker: str = MARKER) -> bool:
    return (Path(folder) / marker).is_file()


@contextlib.contextmanager
def building(folder: str | os.PathLike, *, marker: str = MARKER, resume: bool = False,
             carry_over: CarryOver | None = None) -> Iterator[Path]:
    """Under the lock, yield the partial folder of ``folder``; when the block returns having
    written ``marker`` (last) there, it replaces ``folder``. A block that raises leaves no
    partial folder, unless ``resume``; a resumable block that wrote no marker leaves its partial
    folder for the next call to continue."""
    folder = Path(folder)
    with artefact_lock(folder):
        partial = _open_partial(folder, marker, resume, carry_over)
        try:
            yield partial
        except BaseException:
            if not resume:
                shutil.rmtree(partial, ignore_errors=True)
            raise
        if (partial / marker).is_file():
            _publish(partial, folder, carry_over)
        elif not resume:
            shutil.rmtree(partial, ignore_errors=True)
            raise RuntimeError(f"the build of {folder} wrote no {marker}")


def build_once(folder: str | os.PathLike, build: Callable[[Path], dict | None], *,
               marker: str = MARKER, reuse: Callable[[Path], bool] | None = None,
               resume: bool = False, describe: str = "artefact") -> str:
    """Reuse the complete ``folder`` (when ``reuse(folder)`` agrees), else build it: ``build``
    fills the partial folder it is given and returns the marker's content (None: unfinished, for
    a resumable build to continue). Returns ``REUSED``, ``BUILT`` or ``UNFINISHED``."""
    folder = Path(folder)
    with artefact_lock(folder):
        if is_complete(folder, marker) and (reuse is None or reuse(folder)):
            logger.info("%s %s is complete; not rebuilding", describe, folder)
            return REUSED
        with building(folder, marker=marker, resume=resume) as partial:
            meta = build(partial)
            if meta is not None:
                write_json_atomic(partial / marker, meta)
        return BUILT if meta is not None else UNFINISHED


def _open_partial(folder: Path, marker: str, resume: bool,
                  carry_over: CarryOver | None) -> Path:
    """The partial folder, emptied of a killed build's leftovers unless resuming."""
    partial = partial_path(folder)
    if partial.exists() and not resume:
        if carry_over is not None and is_complete(folder, marker):
            carry_over(partial, folder)  # a kill between the swap and the carry-over
        logger.info("removing %s, left by an interrupted build", partial)
        shutil.rmtree(partial)
    partial.mkdir(parents=True, exist_ok=True)
    return partial


def _publish(partial: Path, folder: Path, carry_over: CarryOver | None) -> None:
    """Move the built ``partial`` into place in one step; the old folder (now at ``partial``)
    gives up what it kept besides its outputs, then goes."""
    if not folder.exists():
        os.rename(partial, folder)
        return
    exchange(partial, folder)
    if carry_over is not None:
        carry_over(partial, folder)
    shutil.rmtree(partial)


def exchange(first: Path, second: Path) -> None:
    """Atomically swap two folders (Linux ``renameat2``); elsewhere, two renames."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
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


# ========================================================================= file artefacts ===


def build_file_once(path: str | os.PathLike, marker: str | os.PathLike,
                    build: Callable[[Path], dict | None], *,
                    reuse: Callable[[Path], bool] | None = None, resume: bool = False,
                    describe: str = "artefact") -> str:
    """:func:`build_once` for one file with a sibling ``marker``: ``build`` writes the file as
    ``<partial folder>/<path.name>`` (plus whatever it needs to resume) and returns the
    marker's content. The old marker goes first, the file is renamed into place, the new
    marker comes last."""
    path, marker = Path(path), Path(marker)
    with artefact_lock(path):
        if marker.is_file() and path.is_file() and (reuse is None or reuse(path)):
            logger.info("%s %s is complete; not rebuilding", describe, path)
            return REUSED
        partial = partial_path(path)
        if partial.exists() and not resume:
            logger.info("removing %s, left by an interrupted build", partial)
            shutil.rmtree(partial)
        partial.mkdir(parents=True, exist_ok=True)
        try:
            meta = build(partial)
        except BaseException:
            if not resume:
                shutil.rmtree(partial, ignore_errors=True)
            raise
        if meta is None:
            return UNFINISHED
        marker.unlink(missing_ok=True)
        os.replace(partial / path.name, path)
        write_json_atomic(marker, meta)
        shutil.rmtree(partial)
        return BUILT
