"""Video frames and covers -> uint8 memory-mapped stores, built once per dataset.

Models never read media files: the data layer decodes each item once, here, into one file per
store that every training worker maps read-only. Layout of a store folder (``spec.dirname``)::

    frames.u8 | covers.u8   raw uint8 array, C order, shape meta["shape"] = [n_rows, *row_shape]
    index.json              {"tokens": [...], "status": [...]}, one entry per row
    meta.json               spec, shape, counts by status, problem items, build time, sources;
                            written last, so its presence means "complete"
    status.npy              per-row status codes: the resumable progress of a build

beside it, ``.<dirname>.lock`` serialises builders of the same store (flock).

Row 0 is the padding row (token ``[PAD]``, all zeros), so RecBole's padding item id can map to a
row like any other item; item rows follow in the order the builder was given.

Building: worker processes decode rows and write them straight into the memory-mapped file; the
parent records each finished row in status.npy (after an fsync of the pixels) every
``checkpoint_every`` rows and on exit, so a killed build restarts with only the rows it had not
vouched for. A complete store (meta.json) that holds every requested item is reused, not
rebuilt, even if it holds more items or another order: readers index rows by item token.

Frame choice (the MicroLens protocol): ``num_frames`` frames ``interval`` apart, centred on the
middle of the video, clipped to the first/last frame on short videos. Each frame is scaled by
libswscale (bilinear) so its *shorter* side is ``size``, then centre-cropped to ``size`` x ``size``:
the encoder sees undistorted pixels, and 16:9 videos lose their left and right edges.

Rows that cannot be decoded as asked are flagged, counted and filled with a defined input:

* ``partial``: the wanted frames do not all decode (truncated or damaged file); the same rule is
  applied to the frames that do decode, so the row still shows the video;
* ``missing`` (no file) and ``undecodable`` (no frame decodes): the item's cover repeated over
  time when a covers dir is given, else constant mid-grey.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import multiprocessing
import os
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import ClassVar, Iterable, Iterator

import av
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm.auto import tqdm

from recbole_microlens.io import atomic_open, read_json, write_json_atomic
from recbole_microlens.processes import exit_with_parent, require_main_guard

logger = logging.getLogger(__name__)

PAD_TOKEN = "[PAD]"
PADDING_ROW = 0
# Per-row status; the position is the code stored in status.npy (0 = not built yet).
STATUSES = ("pending", "ok", "partial", "undecodable", "missing", "padding")
CODE = {name: code for code, name in enumerate(STATUSES)}
GREY = 128
INTERPOLATION = "BILINEAR"  # libswscale's bilinear filter widens when downscaling: no aliasing
# What a broken file raises (IndexError: no video stream; ValueError: odd formats); anything else
# is a bug and stops the build (its progress is kept).
DECODE_ERRORS = (av.error.FFmpegError, OSError, IndexError, ValueError)
ROWS_PER_TASK = 4
CHECKPOINT_EVERY = 64
FORMAT_VERSION = 1


# ============================================================================== specs ===


@dataclass(frozen=True)
class FrameSpec:
    """Which frames of a video make an item's input, and at what resolution."""

    num_frames: int = 5
    interval: int = 1
    size: int = 224
    kind: ClassVar[str] = "frames"

    def __post_init__(self):
        _check_positive(num_frames=self.num_frames, interval=self.interval, size=self.size)

    @property
    def dirname(self) -> str:
        return f"frames_n{self.num_frames}_i{self.interval}_s{self.size}"

    @property
    def row_shape(self) -> tuple[int, ...]:
        return (self.num_frames, self.size, self.size, 3)


@dataclass(frozen=True)
class CoverSpec:
    """One square RGB cover per item."""

    size: int = 224
    kind: ClassVar[str] = "covers"

    def __post_init__(self):
        _check_positive(size=self.size)

    @property
    def dirname(self) -> str:
        return f"covers_s{self.size}"

    @property
    def row_shape(self) -> tuple[int, ...]:
        return (self.size, self.size, 3)


SPEC_TYPES = {spec_type.kind: spec_type for spec_type in (FrameSpec, CoverSpec)}


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _data_file(spec) -> str:
    return f"{spec.kind}.u8"


# ==================================================================== frame selection ===


def select_frame_indices(n_total: int, num_frames: int = 5, interval: int = 1) -> list[int]:
    """Indices of ``num_frames`` frames ``interval`` apart, centred on the video's middle.

    The window starts at ``(n_total - 1 - span) // 2`` (``span = (num_frames - 1) * interval``), so
    its centre sits on the middle frame, or half a frame before it; indices outside the video
    are clipped, which pads a short video by repeating its first and last frames.
    """
    if n_total < 1:
        raise ValueError("a video needs at least one frame")
    span = (num_frames - 1) * interval
    start = (n_total - 1 - span) // 2
    return [min(max(start + k * interval, 0), n_total - 1) for k in range(num_frames)]


# ============================================================================ decoding ===


@dataclass
class DecodedRow:
    """One row's pixels, how they were obtained, and what it cost."""

    pixels: np.ndarray | None  # None: the caller puts the fallback in
    status: str
    frames_decoded: int = 0


def decode_clip(path: str | os.PathLike, spec: FrameSpec, *, seek: bool = True) -> DecodedRow:
    """The spec's frames of one video as uint8 [num_frames, size, size, 3].

    With ``seek`` the demuxer jumps to the keyframe before the first wanted frame instead of
    decoding everything before it; if that does not yield every wanted frame (variable frame
    rate, odd timestamps), the video is decoded again from the start, so seeking never changes
    the result, only the cost.
    """
    if not Path(path).is_file():
        return DecodedRow(None, "missing")
    try:
        return _decode_clip(Path(path), spec, seek)
    except DECODE_ERRORS:
        return DecodedRow(None, "undecodable")


def _decode_clip(path: Path, spec: FrameSpec, seek: bool) -> DecodedRow:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        expected = _header_frame_count(stream)
        wanted = select_frame_indices(expected, spec.num_frames, spec.interval) if expected else []
        seeking = seek and bool(wanted) and wanted[0] > 0 and _has_timing(stream)
        got, cost, damaged = _read_frames(container, stream, wanted, spec.size, seeking)
    if expected and len(got) == len(set(wanted)):
        return DecodedRow(_stack(got, wanted), "ok", cost)
    available = cost  # a pass from the start that falls short has decoded all that decodes
    if seeking:  # the seek did not deliver every wanted frame: decode from the start instead
        got, available, damaged = _read_path(path, wanted, spec.size)
        cost += available
        if len(got) == len(set(wanted)):
            return DecodedRow(_stack(got, wanted), "ok", cost)
    if available == 0:
        return DecodedRow(None, "undecodable", cost)
    wanted = select_frame_indices(available, spec.num_frames, spec.interval)
    got, decoded, _ = _read_path(path, wanted, spec.size)
    cost += decoded
    if len(got) < len(set(wanted)):
        return DecodedRow(None, "undecodable", cost)
    status = "partial" if expected or damaged else "ok"
    return DecodedRow(_stack(got, wanted), status, cost)


def _header_frame_count(stream) -> int:
    """Frames the container says the video has (0 if it does not say)."""
    if stream.frames:
        return stream.frames
    if stream.duration and _has_timing(stream):
        return round(stream.duration * stream.time_base * stream.average_rate)
    return 0


def _has_timing(stream) -> bool:
    return bool(stream.average_rate) and stream.time_base is not None


def _read_path(path: Path, wanted: list[int], size: int):
    """``_read_frames`` from the start of a freshly opened file."""
    with av.open(str(path)) as container:
        return _read_frames(container, container.streams.video[0], wanted, size, seek=False)


def _read_frames(container, stream, wanted: list[int], size: int, seek: bool):
    """Decode up to the last wanted frame; returns ({index: pixels}, frames decoded, damaged).

    From the start, frames are indexed by position. With ``seek``, the demuxer jumps to the
    keyframe before the first wanted frame, frames are indexed by timestamp (constant frame rate
    assumed), and frames no other frame refers to are not even decoded until the first wanted one.
    """
    last = max(wanted, default=float("inf"))
    wanted_set = set(wanted)
    got: dict[int, np.ndarray] = {}
    decoded = 0
    damage: list[Exception] = []
    stream.codec_context.thread_count = 1  # parallelism comes from worker processes
    if seek:
        target = _pts_at(stream, wanted[0] - Fraction(1, 2))  # half a frame early: rounding-proof
        container.seek(target, stream=stream, backward=True, any_frame=False)
        frames = _frames_until_damage(container, stream, damage, full_decode_from=target)
        indexed = ((_index_at(stream, frame.pts), frame) for frame in frames)
    else:
        indexed = enumerate(_frames_until_damage(container, stream, damage))
    for index, frame in indexed:
        decoded += 1
        if index in wanted_set:
            got[index] = square_rgb(frame, size)
        if index >= last:
            break
    return got, decoded, bool(damage)


def _frames_until_damage(container, stream, damage: list,
                         full_decode_from: int | None = None) -> Iterator[av.VideoFrame]:
    """Frames in presentation order, up to the end or the first damaged packet.

    A damaged packet ends the video (it is recorded in ``damage``); the frames the decoder had
    buffered before it are still delivered. Before the first packet timed ``full_decode_from``
    or later, only frames that others refer to are decoded (the rest are never shown).
    """
    context = stream.codec_context
    context.skip_frame = "DEFAULT" if full_decode_from is None else "NONREF"
    try:
        for packet in container.demux(stream):
            if full_decode_from is not None and packet.pts is not None \
                    and packet.pts >= full_decode_from:
                context.skip_frame, full_decode_from = "DEFAULT", None
            yield from packet.decode()
    except DECODE_ERRORS as error:
        damage.append(error)
        try:
            yield from context.decode(None)
        except DECODE_ERRORS:
            pass


def _pts_at(stream, index) -> int:
    return (stream.start_time or 0) + int(index / stream.average_rate / stream.time_base)


def _index_at(stream, pts: int | None) -> int:
    if pts is None:
        return -1
    return round((pts - (stream.start_time or 0)) * stream.time_base * stream.average_rate)


def square_rgb(frame: av.VideoFrame, size: int) -> np.ndarray:
    """Scale (in libswscale) so the shorter side is ``size``, then centre-crop to a square."""
    scale = size / min(frame.width, frame.height)
    width, height = max(size, round(frame.width * scale)), max(size, round(frame.height * scale))
    pixels = frame.to_ndarray(width=width, height=height, format="rgb24",
                              interpolation=INTERPOLATION)
    top, left = (height - size) // 2, (width - size) // 2
    return pixels[top:top + size, left:left + size]


def _stack(got: dict[int, np.ndarray], wanted: list[int]) -> np.ndarray:
    return np.stack([got[index] for index in wanted])


def load_cover(path: str | os.PathLike, size: int) -> DecodedRow:
    """A cover as uint8 [size, size, 3], resized and centre-cropped like the frames (PIL)."""
    if not Path(path).is_file():
        return DecodedRow(None, "missing")
    try:
        with Image.open(path) as image:
            square = ImageOps.fit(image.convert("RGB"), (size, size),
                                  method=Image.Resampling.BILINEAR)
    except (UnidentifiedImageError, OSError, ValueError):
        return DecodedRow(None, "undecodable")
    return DecodedRow(np.asarray(square, dtype=np.uint8), "ok")


# ------------------------------------------------------------------- per-row decoders ---
# Picklable callables token -> pixels of one row: what a worker process runs.


@dataclass(frozen=True)
class FrameRowDecoder:
    videos_dir: Path
    spec: FrameSpec
    covers_dir: Path | None = None
    seek: bool = True

    def __call__(self, token: str) -> DecodedRow:
        row = decode_clip(self.videos_dir / f"{token}.mp4", self.spec, seek=self.seek)
        if row.pixels is None:
            row.pixels = np.broadcast_to(self._still(token), self.spec.row_shape)
        return row

    def _still(self, token: str) -> np.ndarray:
        """What a video without decodable frames shows: its cover, else grey."""
        if self.covers_dir is not None:
            cover = load_cover(self.covers_dir / f"{token}.jpg", self.spec.size).pixels
            if cover is not None:
                return cover
        return np.full(self.spec.row_shape[1:], GREY, dtype=np.uint8)


@dataclass(frozen=True)
class CoverRowDecoder:
    covers_dir: Path
    spec: CoverSpec

    def __call__(self, token: str) -> DecodedRow:
        row = load_cover(self.covers_dir / f"{token}.jpg", self.spec.size)
        if row.pixels is None:
            row.pixels = np.full(self.spec.row_shape, GREY, dtype=np.uint8)
        return row


# ============================================================================ building ===


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


def build_frame_store(
    videos_dir: str | os.PathLike,
    item_tokens: Iterable[str],
    store_root: str | os.PathLike,
    spec: FrameSpec = FrameSpec(),
    *,
    covers_dir: str | os.PathLike | None = None,
    workers: int = 2,
    progress: bool = True,
    seek: bool = True,
    max_items: int | None = None,
    checkpoint_every: int = CHECKPOINT_EVERY,
) -> StoreReport:
    """Decode every item's frames into ``store_root/spec.dirname``; resume or reuse what exists.

    Returns the build's report; when a complete store already covers the items, the report of
    that store (``reused=True``), whose rows may be a superset: index it with ``rows_for``.

    ``covers_dir`` gives missing/undecodable videos their cover as fallback. ``max_items``
    decodes at most that many rows in this call and leaves the store resumable (budgeted
    builds; tests use it as an interruption).
    """
    decoder = FrameRowDecoder(Path(videos_dir), spec, _optional_path(covers_dir), seek)
    return _build_store(spec, decoder, item_tokens, Path(store_root), workers=workers,
                        progress=progress, max_items=max_items, checkpoint_every=checkpoint_every,
                        sources={"videos_dir": videos_dir, "covers_dir": covers_dir})


def build_cover_store(
    covers_dir: str | os.PathLike,
    item_tokens: Iterable[str],
    store_root: str | os.PathLike,
    size: int = 224,
    *,
    workers: int = 2,
    progress: bool = True,
    max_items: int | None = None,
    checkpoint_every: int = CHECKPOINT_EVERY,
) -> StoreReport:
    """Decode every item's cover into ``store_root/covers_s{size}``; missing ones are grey."""
    spec = CoverSpec(size)
    decoder = CoverRowDecoder(Path(covers_dir), spec)
    return _build_store(spec, decoder, item_tokens, Path(store_root), workers=workers,
                        progress=progress, max_items=max_items, checkpoint_every=checkpoint_every,
                        sources={"covers_dir": covers_dir})


def _optional_path(path) -> Path | None:
    return None if path is None else Path(path)


def _build_store(spec, decoder, item_tokens, store_root: Path, **options) -> StoreReport:
    if options.get("workers", 1) > 1:
        require_main_guard()  # before the lock, which the parent of such a child holds
    tokens = [PAD_TOKEN] + [str(token) for token in item_tokens]
    _check_tokens(tokens)
    folder = store_root / spec.dirname
    with store_lock(folder):
        return _build_locked(spec, decoder, tokens, folder, **options)


@contextlib.contextmanager
def store_lock(folder: Path) -> Iterator[None]:
    """One builder per store folder; others (e.g. tuning trials starting together) wait for it."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        yield


def _build_locked(spec, decoder, tokens: list[str], folder: Path, *, workers: int,
                  progress: bool, max_items: int | None, checkpoint_every: int,
                  sources: dict) -> StoreReport:
    started = time.perf_counter()
    if _is_complete(folder, tokens):
        report = _report_from_meta(folder)
        logger.info("%s store %s is complete; not rebuilding", spec.kind, folder)
        return report
    status = _open_build(folder, spec, tokens)
    todo = np.flatnonzero(status == CODE["pending"])
    resumed_rows = len(tokens) - len(todo)
    todo = todo[:max_items] if max_items is not None else todo
    rows_decoded, frames_decoded = _decode_rows(folder, spec, decoder, tokens, status, todo,
                                                workers, progress, checkpoint_every)
    complete = not (status == CODE["pending"]).any()
    seconds = time.perf_counter() - started
    if complete:
        _finish(folder, spec, tokens, status, seconds, resumed_rows, sources)
    report = StoreReport(folder, spec.kind, _counts(status), _problems(tokens, status),
                         rows_decoded, frames_decoded, seconds, complete)
    _log_report(report)
    return report


def _check_tokens(tokens: list[str]) -> None:
    if len(set(tokens)) != len(tokens):
        raise ValueError(f"item tokens must be unique and must not include {PAD_TOKEN!r}")


def _is_complete(folder: Path, tokens: list[str]) -> bool:
    """A finished store holding every requested item (it may hold more, in another order)."""
    return ((folder / "meta.json").is_file()
            and set(tokens) <= set(read_json(folder / "index.json")["tokens"]))


def _open_build(folder: Path, spec, tokens: list[str]) -> np.ndarray:
    """The per-row status of the build in ``folder``: resumed if it is for these items."""
    index_file, status_file, data_file = (folder / "index.json", folder / "status.npy",
                                          folder / _data_file(spec))
    shape = (len(tokens), *spec.row_shape)
    resumable = (index_file.is_file() and status_file.is_file() and data_file.is_file()
                 and data_file.stat().st_size == np.prod(shape)
                 and read_json(index_file)["tokens"] == tokens)
    if resumable:
        logger.info("resuming %s store %s", spec.kind, folder)
        return np.load(status_file)
    if folder.exists():
        logger.warning("building %s from scratch: it holds no resumable build of these items",
                       folder)
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    np.memmap(data_file, dtype=np.uint8, mode="w+", shape=shape).flush()  # sparse; row 0 zeros
    status = np.full(len(tokens), CODE["pending"], dtype=np.uint8)
    status[PADDING_ROW] = CODE["padding"]
    write_json_atomic(index_file, {"tokens": tokens, "status": None})
    _save_status(folder, spec, status)
    return status


def _save_status(folder: Path, spec, status: np.ndarray) -> None:
    """Persist progress: the pixels first (fsync), then the status that vouches for them."""
    with open(folder / _data_file(spec), "rb") as data:
        os.fsync(data.fileno())
    with atomic_open(folder / "status.npy", "wb") as handle:
        np.save(handle, status)


def _decode_rows(folder: Path, spec, decoder, tokens, status: np.ndarray, todo: np.ndarray,
                 workers: int, progress: bool, checkpoint_every: int) -> tuple[int, int]:
    """Decode the ``todo`` rows (in worker processes when ``workers > 1``), updating ``status``."""
    tasks = [[(int(row), tokens[row]) for row in todo[i:i + ROWS_PER_TASK]]
             for i in range(0, len(todo), ROWS_PER_TASK)]
    writer_args = (folder / _data_file(spec), (len(tokens), *spec.row_shape), decoder)
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


def _finish(folder: Path, spec, tokens, status, seconds, resumed_rows, sources) -> None:
    """index.json gets the statuses, then meta.json marks the store complete."""
    write_json_atomic(folder / "index.json",
                      {"tokens": tokens, "status": [STATUSES[code] for code in status]})
    write_json_atomic(folder / "meta.json", {
        "kind": spec.kind,
        "format_version": FORMAT_VERSION,
        "spec": asdict(spec),
        "data_file": _data_file(spec),
        "dtype": "uint8",
        "shape": [len(tokens), *spec.row_shape],
        "padding_row": PADDING_ROW,
        "n_items": len(tokens) - 1,
        "counts": _counts(status),
        "problems": _problems(tokens, status),
        "fallback": "partial: the rule applied to the decodable frames; missing/undecodable: "
                    "the cover if a covers dir was given, else grey 128",
        "sources": {name: None if path is None else str(Path(path).resolve())
                    for name, path in sources.items()},
        "build_seconds": round(seconds, 3),
        "rows_done_before_this_run": resumed_rows - 1,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })


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


# ============================================================================= reading ===


class TokenRows:
    """Item token -> store row, shared by every store kind."""

    def __init__(self, tokens: list[str], folder: Path):
        self._row_of = {token: row for row, token in enumerate(tokens)}
        self._folder = folder

    def __call__(self, tokens: Iterable[str]) -> np.ndarray:
        tokens = [str(token) for token in tokens]
        unknown = [token for token in tokens if token not in self._row_of]
        if unknown:
            raise KeyError(f"{len(unknown)} item tokens not in {self._folder}: {unknown[:5]}")
        return np.fromiter((self._row_of[token] for token in tokens), dtype=np.int64,
                           count=len(tokens))


class IndexedStore:
    """A complete store folder (``meta.json``, ``index.json``, arrays), opened read-only.

    Open once per process, then index rows by item token. Pickling (e.g. into DataLoader
    workers) sends only the folder; the copy maps the files again.
    """

    kind_name = "store"

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        meta_file = self.folder / "meta.json"
        if not meta_file.is_file():
            raise FileNotFoundError(f"{self.folder} is not a complete {self.kind_name} (no meta.json)")
        self.meta = read_json(meta_file)
        index = read_json(self.folder / "index.json")
        self.tokens = index["tokens"]
        self.status = np.array(index["status"])
        self._rows = TokenRows(self.tokens, self.folder)
        self._map_arrays()

    def _map_arrays(self) -> None:
        raise NotImplementedError

    @classmethod
    def open(cls, folder: str | os.PathLike):
        return cls(folder)

    def rows_for(self, tokens: Iterable[str]) -> np.ndarray:
        """Row of each item token (``[PAD]`` -> the padding row); unknown tokens raise KeyError."""
        return self._rows(tokens)

    def __len__(self) -> int:
        return len(self.tokens)

    def __getstate__(self):
        return {"folder": self.folder}

    def __setstate__(self, state):
        self.__init__(state["folder"])


class MediaStore(IndexedStore):
    """Frames or covers: one uint8 memory-mapped array, a row per item."""

    kind_name = "media store"

    def _map_arrays(self) -> None:
        self.spec = SPEC_TYPES[self.meta["kind"]](**self.meta["spec"])
        self.data = np.memmap(self.folder / self.meta["data_file"], dtype=np.uint8, mode="r",
                              shape=tuple(self.meta["shape"]))

    def __getitem__(self, rows) -> np.ndarray:
        return np.asarray(self.data[rows])


# =========================================================================== datasets ===


def prepare_media(
    dataset_dir: str | os.PathLike,
    raw_dir: str | os.PathLike,
    *,
    frames: FrameSpec = FrameSpec(),
    covers_size: int = 224,
    workers: int = 2,
    progress: bool = True,
) -> dict[str, StoreReport]:
    """Build the stores a converted dataset's raw media allow, into ``dataset_dir/media/``.

    Items come from ``<dataset>.item`` (or ``<dataset>.inter``); ``raw_dir/videos`` gives the
    frame store (with ``raw_dir/covers`` as its fallback), ``raw_dir/covers`` the cover store.
    Returns {"frames": report, "covers": report} for the stores that have a source.
    """
    dataset_dir, raw_dir = Path(dataset_dir), Path(raw_dir)
    if not raw_dir.is_dir():
        raise FileNotFoundError(f"raw folder {raw_dir} does not exist (expected videos/ and/or "
                                f"covers/ in it; see --raw-dir)")
    tokens = read_item_tokens(dataset_dir)
    media_root = dataset_dir / "media"
    videos, covers = raw_dir / "videos", raw_dir / "covers"
    covers = covers if covers.is_dir() else None
    reports = {}
    if videos.is_dir():
        reports["frames"] = build_frame_store(videos, tokens, media_root, frames,
                                              covers_dir=covers, workers=workers,
                                              progress=progress)
    if covers is not None:
        reports["covers"] = build_cover_store(covers, tokens, media_root, covers_size,
                                              workers=workers, progress=progress)
    if not reports:
        logger.warning("no %s or %s: no media store built", videos, raw_dir / "covers")
    return reports


def read_item_tokens(dataset_dir: str | os.PathLike) -> list[str]:
    """Item tokens of a converted dataset: ``.item`` rows in order, else ``.inter`` first seen."""
    dataset_dir = Path(dataset_dir)
    for suffix in (".item", ".inter"):
        path = dataset_dir / f"{dataset_dir.name}{suffix}"
        if path.is_file():
            return list(dict.fromkeys(_token_column(path, "item_id")))
    raise FileNotFoundError(f"no {dataset_dir.name}.item or .inter in {dataset_dir}")


def _token_column(path: Path, field_name: str) -> Iterator[str]:
    """Values of the ``<field_name>:<type>`` column of a RecBole atomic file."""
    with open(path, encoding="utf-8") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        column = [name.split(":")[0] for name in header].index(field_name)
        for line in handle:
            if line.strip():
                yield line.rstrip("\n").split("\t")[column]
