"""Small file helpers shared by every writer (outputs appear whole or not at all) and every
reader of torch files (weights-only, with errors naming the file and the format expected)."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Iterator, TextIO

from recbole_microlens.errors import (
    OUTPUT_ERRNOS, CheckpointError, InputError, MissingInputError, OutputError, output_error,
)

#: the temp files of :func:`atomic_open` (``.<name>.<8 random characters>.tmp``)
TEMP_FILE = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[TextIO]:
    """Open a temp file beside ``path``; rename it over ``path`` only if the block succeeds.

    Readers never see a half-written file, and an interrupted run leaves the old file intact.
    A write that fails where it writes (disk full, file too large, no permission) is an
    :class:`~recbole_microlens.errors.OutputError` naming ``path``.
    """
    path = Path(path)
    with writing(path):
        require_file_path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; outputs are for sharing
    try:
        with writing(path):
            with os.fdopen(fd, mode, **kwargs) as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def writing(path: str | os.PathLike):
    """An ``OSError`` of the block about writing ``path`` (its folders, its temp file beside it,
    or a write with no file named) becomes an ``OutputError`` naming ``path``: ``[Errno 27]
    File too large`` alone names no file, and ``torch.save`` reports it as a ``RuntimeError``
    of its zip writer with the ``OSError`` as its context. Errors about other files pass."""
    try:
        yield
    except OutputError:
        raise
    except Exception as error:
        failed = _failed_write(error)
        if failed is None or not _about(Path(path), failed.filename):
            raise
        raise output_error(path, failed) from error


def _failed_write(error: BaseException | None) -> OSError | None:
    """The ``OSError`` of an output errno that ``error`` is, or was raised while handling."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError) and error.errno in OUTPUT_ERRNOS:
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _about(path: Path, filename) -> bool:
    if filename is None:
        return True
    named = Path(os.fsdecode(filename)).absolute()
    target = path.absolute()
    return named == target or named.parent == target.parent or named in target.parents


def require_file_path(path: str | os.PathLike, option: str = "output") -> None:
    """An output file's path must not name a folder (checked before the work, not at the end)."""
    if Path(path).is_dir():
        raise OutputError(f"{option} {path} is a folder; name a file in it")


def is_temp_file(name: str) -> bool:
    """Whether ``name`` is an :func:`atomic_open` temp file (left by a killed writer)."""
    return TEMP_FILE.match(name) is not None


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json_atomic(path: str | os.PathLike, obj, **dump_kwargs) -> None:
    """Write ``obj`` as pretty JSON, atomically."""
    with atomic_open(path, "w", encoding="utf-8") as handle:
        json.dump(obj, handle, indent=2, sort_keys=False, default=str, **dump_kwargs)
        handle.write("\n")


def read_json(path: str | os.PathLike):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_input_json(path: str | os.PathLike, what: str = "JSON file"):
    """A JSON file the user named: missing or malformed is a user error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"{path}: no such {what}")
    try:
        return read_json(path)
    except UnicodeDecodeError as error:
        raise InputError(f"{path} is not a {what}: not UTF-8 text ({error.reason})") from None
    except json.JSONDecodeError as error:
        raise InputError(f"{path}:{error.lineno}: not a {what}: {error.msg}") from None


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Streaming sha256 of a file (inputs can be many GB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` as UTF-8, atomically; returns the path."""
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return Path(path)


# Torch files: only weights_only loading (a pickle can run code); an empty, truncated or
# foreign file is a CheckpointError naming the file and the format expected.
TRAINER_FORMAT = ("a recbole-microlens checkpoint (a dict with 'state_dict', written by "
                  "torch.save and loadable with weights_only=True)")


def load_torch_file(path: str | os.PathLike, expected: str, map_location="cpu"):
    """``torch.load(path, weights_only=True)``; any failure names ``path`` and ``expected``."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist; expected {expected}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty; expected {expected}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        if "global" in str(error).lower():  # torch names the class or function it refused
            raise CheckpointError(
                f"refused to read {path}: it pickles objects other than tensors and plain "
                f"containers, and only weights_only loading is allowed; expected {expected}"
            ) from error
        raise CheckpointError(f"{path} is not a readable torch file (damaged, truncated or another "
                              f"format); expected {expected}") from error
    except Exception as error:  # torch reports damage as EOFError, KeyError, RuntimeError...
        detail = " ".join(str(error).split())[:200] or type(error).__name__
        raise CheckpointError(f"{path} is not a readable torch file ({type(error).__name__}: "
                              f"{detail}); expected {expected}") from error


def load_trainer_checkpoint(path: str | os.PathLike, map_location="cpu",
                            required=("state_dict",)) -> dict:
    """A checkpoint our trainer wrote, with the entries ``required``."""
    checkpoint = load_torch_file(path, TRAINER_FORMAT, map_location)
    missing = [key for key in required if not isinstance(checkpoint, dict) or key not in checkpoint]
    if missing:
        raise CheckpointError(f"{path} has no {missing}; expected {TRAINER_FORMAT}")
    return checkpoint
