"""Errors a user can fix, and the one boundary per entry point that reports them.

Input is checked where it is read, and a problem there raises a :class:`UserError` (bad
configuration, a bad or missing input file, a damaged dataset or checkpoint, an output that
cannot be written). Each entry point (``run_recbole_ml.py``, every ``recbole-microlens``
subcommand) catches :class:`UserError` once, in :func:`exit_cleanly`: ``error: <one line>`` on
stderr and exit status 2. Anything else is a bug and keeps its traceback; ``--debug`` shows the
traceback of user errors too. ``KeyboardInterrupt`` and ``SystemExit`` pass through untouched.

Each class also derives from the builtin exception callers already expect (``ValueError``,
``FileNotFoundError``, ...), so ``except ValueError`` around a library call keeps working.
"""
from __future__ import annotations

import contextlib
import errno
import os
import sys

USAGE_EXIT = 2


class UserError(Exception):
    """Something the user can fix; reported as one line and exit status 2, never a traceback."""


class ConfigError(UserError, ValueError):
    """Bad configuration: an unknown key, a malformed override or a value out of range."""


class InputError(UserError, ValueError):
    """A bad command-line value or input file (its name and the problem in the message)."""


class MissingInputError(UserError, FileNotFoundError):
    """A file or folder the user named (or the command needs) does not exist."""


class ExistingOutputError(UserError, FileExistsError):
    """An output is already there and is not this command's to replace."""


class DatasetError(UserError, ValueError):
    """A converted dataset folder that is incomplete, damaged or misplaced."""


class CheckpointError(UserError, ValueError):
    """A checkpoint that is missing, unsafe, damaged, or does not fit the model or encoder."""


class OutputError(UserError, OSError):
    """An output that cannot be written (disk full, file too large, a folder in its place,
    no permission): the message names the file."""


class NonFiniteError(UserError, FloatingPointError):
    """A model produced NaN or infinite values (a diverged run or a damaged checkpoint)."""


#: errno values of a write that fails because of where it writes, not because of a bug
OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EACCES,
                           errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.ENAMETOOLONG})


def output_error(path: str | os.PathLike, error: OSError) -> OutputError:
    """``error`` (a failed write) as an :class:`OutputError` naming ``path``."""
    reason = f"[Errno {error.errno}] {error.strerror}" if error.strerror else str(error)
    wrapped = OutputError(f"cannot write {os.fspath(path)}: {reason}")
    wrapped.errno = error.errno
    return wrapped


def one_line(error: BaseException) -> str:
    text = error.args[0] if isinstance(error, KeyError) and error.args else error
    return " ".join(str(text).split()) or type(error).__name__


def report(error: UserError) -> None:
    print(f"error: {one_line(error)}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def exit_cleanly(debug: bool = False):
    """The boundary of an entry point: a :class:`UserError` becomes ``error: <one line>`` on
    stderr and exit status 2 (with ``debug``, its traceback); everything else propagates."""
    try:
        yield
    except UserError as error:
        if debug:
            raise
        report(error)
        sys.exit(USAGE_EXIT)
