"""Errors a user can fix, and how every entry point reports them: one line, exit status 2.

Tracebacks are for bugs; ``--debug`` shows them for everything.
"""
from __future__ import annotations

import contextlib
import sys

# Bad input, bad configuration, missing or damaged files: raised as (subclasses of) these.
USER_ERRORS = (ValueError, OSError, KeyError)
USAGE_EXIT = 2


class DatasetError(ValueError):
    """A converted dataset folder that is incomplete, damaged or misplaced."""


class CheckpointError(ValueError):
    """A checkpoint that is missing, unsafe, damaged, or does not fit the model or encoder."""


def one_line(error: BaseException) -> str:
    text = error.args[0] if isinstance(error, KeyError) and error.args else error
    return " ".join(str(text).split()) or type(error).__name__


@contextlib.contextmanager
def exit_cleanly(debug: bool = False):
    """Turn a user error into ``error: <one line>`` on stderr and exit status 2."""
    try:
        yield
    except USER_ERRORS as error:
        if debug:
            raise
        print(f"error: {one_line(error)}", file=sys.stderr, flush=True)
        sys.exit(USAGE_EXIT)
