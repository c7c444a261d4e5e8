"""Processes we start die with the process that started them, even when it is killed (-9).

* Our own workers (media decoding pools) call :func:`exit_with_parent` first: a thread in the
  worker exits it as soon as its parent is gone.
* Processes started by a library (Ray's GCS, raylet and workers) are watched from outside:
  :func:`descendants_die_with_this_process` starts a small watchdog that records this process's
  descendants and kills them once this process is gone.
* A script that starts processes with the ``spawn`` method at import time (no ``__main__``
  guard) would have every child start them again: :func:`require_main_guard` says so clearly.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

POLL_SECONDS = 0.5
_PROC = Path("/proc")


class MainGuardError(RuntimeError):
    """Processes were started while a spawned child was still importing the main script."""


def require_main_guard() -> None:
    """Fail clearly in a spawned child that re-runs the main script's process-starting code."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise MainGuardError(
            "recbole_microlens started worker processes while a child process was importing "
            "your script: put the code that runs it under `if __name__ == \"__main__\":` "
            "(workers are started with the 'spawn' method, which imports the main script again)")


def exit_with_parent() -> None:
    """In a worker: exit as soon as the parent process is gone (an orphan is reparented), also
    when it went while this worker was still starting."""
    started_by = multiprocessing.parent_process()
    parent = started_by.pid if started_by is not None else os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


# --------------------------------------------------------------------------- watchdog


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` now (Linux ``/proc``; empty elsewhere)."""
    if not _PROC.is_dir():
        return set()
    children, found, todo = _children_by_parent(), set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def running(pid: int) -> bool:
    """``pid`` exists and is not a zombie (an exited child nobody has reaped yet)."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _start_time(pid: int) -> str | None:
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()[19]


def watch(parent: int) -> None:
    """Record ``parent``'s descendants until it is gone, then kill the recorded ones (the same
    processes: a recycled pid has another start time)."""
    me = os.getpid()
    seen: dict[int, str] = {}
    while os.getppid() == parent:
        for pid in descendants(parent) - {me}:
            started = _start_time(pid)
            if started is not None:
                seen.setdefault(pid, started)
        time.sleep(POLL_SECONDS)
    for pid, started in seen.items():
        if _start_time(pid) == started:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def descendants_die_with_this_process() -> Iterator[None]:
    """Within the block, a watchdog kills this process's descendants if this process dies."""
    if not _PROC.is_dir():
        yield
        return
    package_parent = str(Path(__file__).resolve().parent.parent)
    code = (f"import sys; sys.path.insert(0, {package_parent!r}); "
            f"from recbole_microlens.processes import watch; watch({os.getpid()})")
    watchdog = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL)
    try:
        yield
    finally:
        watchdog.kill()
        watchdog.wait()

