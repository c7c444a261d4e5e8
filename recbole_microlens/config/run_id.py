"""Run ids: the name of a run's checkpoint and log, unique across processes and machines.

RecBole names both by the local time to the second, so two runs started in the same second
share (and overwrite) one checkpoint; a random suffix keeps the readable time in front.
"""
from __future__ import annotations

import secrets

from recbole.utils import get_local_time


def new_run_id() -> str:
    return f"{get_local_time()}-{secrets.token_hex(4)}"


def init_run_logger(config) -> None:
    """RecBole's ``init_logger``, with the log file named by the run id instead of the time."""
    from recbole.utils import logger as recbole_logger

    clock = recbole_logger.get_local_time
    recbole_logger.get_local_time = lambda: config["run_id"]
    try:
        recbole_logger.init_logger(config)
    finally:
        recbole_logger.get_local_time = clock
