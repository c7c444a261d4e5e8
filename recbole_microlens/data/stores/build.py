"""Building a row store: resumable, in parallel worker processes, from any per-row decoder.

A decoder is a picklable callable ``token -> DecodedRow`` (pixels, status, frames decoded). Worker
processes decode rows and write them straight into the memory-mapped data file; the parent
records each finished row in ``status.npy`` (after an fsync of the pixels) every
``checkpoint_every`` rows and on exit, so a killed build restarts with only the rows it had not
vouched for. Stores follow the artefact protocol (:mod:`.artefact`): locked, built in the
partial folder beside the store (kept between runs: the build resumes there) and moved into place
with meta.json once every row is done. A complete store that holds every requested item is
reused, not rebuilt.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm.auto import tqdm

from recbole_microlens.data.stores.artefact import BUILT, REUSED, build_once
from recbole_microlens.data.stores.base import PAD_TOKEN, PADDING_ROW
from recbole_microlens.io import atomic_open, read_json, write_json_atomic
from recbole_microlens.processes import exit_with_parent, require_main_guard

logger = logging.getLogger(__name__)

# Per-row status; the position is the code stored in status.npy (0 = not built yet).
STATUSES = ("pending", "ok", "partial", "undecodable", "missing", "padding")
CODE = {name: code for code, name in enumerate(STATUSES)}
ROWS_PER_TASK = 4
CHECKPOINT_EVERY = 64
FORMAT_VERSION = 1


@dataclass
class DecodedRow:
    """One row's pixels, how they were obtained, and what it cost."""

    pixels: np.ndarray | None  # None: the caller puts the fallback in
    status: str
    frames_decoded: int = 0


@dataclass
class StoreReport:
    """What a build call did and what the store holds."""

    folder: Path
    kind: str
    counts: dict[str, int]  # item rows by status (padding row excluded)
    problems: dict[str, str]  # token -> status for every item row that is not "ok"
    rows_decoded: int = 0  # rows decoded by this call (0 when a complete store was reused)
    frames_decoded: int = 0  # video frames decoded by this call: the cost seeking saves
    seconds: float = 0.0
    complete: bool = True
    reused: bool = False


def data_file_name(spec) -> str:
    return f"{spec.kind}.u8"


def build_row_store(spec, decoder, item_tokens, store_root: Path, **options) -> StoreReport:
    """Decode every item's row with ``decoder`` into ``store_root/spec.dirname`` (resumed or
    reused); ``options``: workers, progress, max_items, checkpoint_every, sources, fallback."""
    if options.get("workers", 1) > 1:
        require_main_guard()  # before the lock, which the parent of such a child holds
    tokens = [PAD_TOKEN] + [str(token) for token in item_tokens]
    _check_tokens(tokens)
    folder = Path(store_root) / spec.dirname
    started, done = time.perf_counter(), {}

    def build(partial: Path) -> dict | None:
        meta, done["fields"] = _build_rows(spec, decoder, tokens, partial, started, **options)
        return meta

    outcome = build_once(folder, build, reuse=lambda found: _holds(found, tokens), resume=True,
                         describe=f"{spec.kind} store")
    if outcome == REUSED:
        return _report_from_meta(folder)
    report = StoreReport(folder, spec.kind, complete=outcome == BUILT,
                         seconds=time.perf_counter() - started, **done["fields"])
    _log_report(report)
    return report


def _build_rows(spec, decoder, tokens: list[str], partial: Path, started: float, *,
                workers: int, progress: bool, max_items: int | None, checkpoint_every: int,
                sources: dict, fallback: str) -> tuple[dict | None, dict]:
    """Decode the rows ``partial`` still lacks: the store's meta.json once every row is done
    (else None), and the report's fields."""
    status = _open_build(partial, spec, tokens)
    todo = np.flatnonzero(status == CODE["pending"])
    resumed_rows = len(tokens) - len(todo)
    todo = todo[:max_items] if max_items is not None else todo
    rows_decoded, frames_decoded = _decode_rows(partial, spec, decoder, tokens, status, todo,
                                                workers, progress, checkpoint_every)
    complete = not (status == CODE["pending"]).any()
    meta = (_finish(partial, spec, tokens, status, time.perf_counter() - started, resumed_rows,
                    sources, fallback) if complete else None)
    return meta, {"counts": _counts(status), "problems": _problems(tokens, status),
                  "rows_decoded": rows_decoded, "frames_decoded": frames_decoded}


def _check_tokens(tokens: list[str]) -> None:
    if len(set(tokens)) != len(tokens):
        raise ValueError(f"item tokens must be unique and must not include {PAD_TOKEN!r}")


def _holds(folder: Path, tokens: list[str]) -> bool:
    """Whether a finished store holds every requested item (it may hold more, in another order)."""
    return set(tokens) <= set(read_json(folder / "index.json")["tokens"])


def _open_build(folder: Path, spec, tokens: list[str]) -> np.ndarray:
    """The per-row status of the build in the partial ``folder``: resumed if it is for these
    items, else started afresh."""
    index_file, status_file, data_file = (folder / "index.json", folder / "status.npy",
                                          folder / data_file_name(spec))
    shape = (len(tokens), *spec.row_shape)
    resumable = (index_file.is_file() and status_file.is_file() and data_file.is_file()
                 and data_file.stat().st_size == np.prod(shape)
                 and read_json(index_file)["tokens"] == tokens)
    if resumable:
        logger.info("resuming %s store %s", spec.kind, folder)
        return np.load(status_file)
    if any(folder.iterdir()):
        logger.warning("building %s from scratch: it holds no resumable build of these items",
                       folder)
        shutil.rmtree(folder)
        folder.mkdir()
    np.memmap(data_file, dtype=np.uint8, mode="w+", shape=shape).flush()  # sparse; row 0 zeros
    status = np.full(len(tokens), CODE["pending"], dtype=np.uint8)
    status[PADDING_ROW] = CODE["padding"]
    write_json_atomic(index_file, {"tokens": tokens, "status": None})
    _save_status(folder, spec, status)
    return status


def _save_status(folder: Path, spec, status: np.ndarray) -> None:
    """Persist progress: the pixels first (fsync), then the status that vouches for them."""
    with open(folder / data_file_name(spec), "rb") as data:
        os.fsync(data.fileno())
    with atomic_open(folder / "status.npy", "wb") as handle:
        np.save(handle, status)


def _decode_rows(folder: Path, spec, decoder, tokens, status: np.ndarray, todo: np.ndarray,
                 workers: int, progress: bool, checkpoint_every: int) -> tuple[int, int]:
    """Decode the ``todo`` rows (in worker processes when ``workers > 1``), updating ``status``."""
    tasks = [[(int(row), tokens[row]) for row in todo[i:i + ROWS_PER_TASK]]
             for i in range(0, len(todo), ROWS_PER_TASK)]
    writer_args = (folder / data_file_name(spec), (len(tokens), *spec.row_shape), decoder)
    rows_decoded = frames_decoded = since_checkpoint = 0
    bar = tqdm(total=len(todo), desc=f"{spec.kind} {folder.name}", unit="item",
               disable=not progress)
    try:
        for results in _run_tasks(tasks, writer_args, workers):
            for row, code, frames in results:
                status[row] = code
                frames_decoded += frames
            rows_decoded += len(results)
            since_checkpoint += len(results)
            bar.update(len(results))
            if since_checkpoint >= checkpoint_every:
                _save_status(folder, spec, status)
                since_checkpoint = 0
    finally:
        bar.close()
        _save_status(folder, spec, status)  # also on Ctrl-C: keep what is done
    return rows_decoded, frames_decoded


class _RowWriter:
    """Decodes rows and writes them straight into the store file (one per process)."""

    def __init__(self, data_path: Path, shape: tuple[int, ...], decoder):
        self.data = np.memmap(data_path, dtype=np.uint8, mode="r+", shape=shape)
        self.decoder = decoder

    def write(self, task: list[tuple[int, str]]) -> list[tuple[int, int, int]]:
        results = []
        for row, token in task:
            decoded = self.decoder(token)
            self.data[row] = decoded.pixels
            results.append((row, CODE[decoded.status], decoded.frames_decoded))
        return results


_WORKER_WRITER: _RowWriter | None = None


def _init_worker(*writer_args) -> None:
    global _WORKER_WRITER
    exit_with_parent()  # a killed prepare-media must not leave decoders running
    _WORKER_WRITER = _RowWriter(*writer_args)


def _write_in_worker(task):
    return _WORKER_WRITER.write(task)


def _run_tasks(tasks: list, writer_args: tuple, workers: int) -> Iterator[list]:
    """Each task's results as it finishes: in this process, or in a pool of fresh processes."""
    if workers <= 1 or len(tasks) <= 1:
        writer = _RowWriter(*writer_args)
        yield from map(writer.write, tasks)
        return
    require_main_guard()
    # spawn: workers must not inherit a parent's CUDA context or threads
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=writer_args)
    try:
        pending = {pool.submit(_write_in_worker, task) for task in tasks}
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _finish(folder: Path, spec, tokens, status, seconds, resumed_rows, sources,
            fallback: str) -> dict:
    """index.json gets the statuses; returns the meta.json that marks the store complete."""
    write_json_atomic(folder / "index.json",
                      {"tokens": tokens, "status": [STATUSES[code] for code in status]})
    return {
        "kind": spec.kind,
        "format_version": FORMAT_VERSION,
        "spec": asdict(spec),
        "data_file": data_file_name(spec),
        "dtype": "uint8",
        "shape": [len(tokens), *spec.row_shape],
        "padding_row": PADDING_ROW,
        "n_items": len(tokens) - 1,
        "counts": _counts(status),
        "problems": _problems(tokens, status),
        "fallback": fallback,
        "sources": {name: None if path is None else str(Path(path).resolve())
                    for name, path in sources.items()},
        "build_seconds": round(seconds, 3),
        "rows_done_before_this_run": resumed_rows - 1,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _counts(status: np.ndarray) -> dict[str, int]:
    codes = np.bincount(status[PADDING_ROW + 1:], minlength=len(STATUSES))
    return {name: int(codes[CODE[name]]) for name in STATUSES if name != "padding"}


def _problems(tokens: list[str], status: np.ndarray) -> dict[str, str]:
    return {tokens[row]: STATUSES[status[row]] for row in range(PADDING_ROW + 1, len(tokens))
            if status[row] not in (CODE["ok"], CODE["pending"])}


def _report_from_meta(folder: Path) -> StoreReport:
    meta = read_json(folder / "meta.json")
    return StoreReport(folder, meta["kind"], meta["counts"], meta["problems"], reused=True)


def _log_report(report: StoreReport) -> None:
    state = "complete" if report.complete else "incomplete (resumable)"
    logger.info("%s store %s %s: %s", report.kind, report.folder, state, report.counts)
    if report.problems:
        logger.warning("%s store %s: %d items fell back (%s); see meta.json 'problems'",
                       report.kind, report.folder, len(report.problems),
                       ", ".join(f"{n} {s}" for s, n in report.counts.items()
                                 if n and s not in ("ok", "pending")))
