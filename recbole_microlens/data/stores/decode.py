"""Decoding one item's media: which frames (the MicroLens protocol), PyAV for videos, PIL for
covers, and the per-row decoders a store build runs in its worker processes.

Frame choice: ``num_frames`` frames ``interval`` apart, centred on the middle of the video,
clipped to the first/last frame on short videos. Each frame is scaled by libswscale (bilinear) so
its *shorter* side is ``size``, then centre-cropped to ``size`` x ``size``: the encoder sees
undistorted pixels, and 16:9 videos lose their left and right edges.

Rows that cannot be decoded as asked are flagged, counted and filled with a defined input:

* ``partial``: the wanted frames do not all decode (truncated or damaged file); the same rule is
  applied to the frames that do decode, so the row still shows the video;
* ``missing`` (no file) and ``undecodable`` (no frame decodes): the item's cover repeated over
  time when a covers dir is given, else constant mid-grey.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from recbole_microlens.data.stores.build import DecodedRow
from recbole_microlens.errors import ConfigError

if TYPE_CHECKING:
    import av

GREY = 128
INTERPOLATION = "BILINEAR"  # libswscale's bilinear filter widens when downscaling: no aliasing


def _pyav():
    """PyAV, imported at the first decode: the ID and title paths run where it is not installed
    (a GPU machine that carries no FFmpeg)."""
    import av

    return av


def decode_errors() -> tuple[type[Exception], ...]:
    """What a broken file raises (IndexError: no video stream; ValueError: odd formats); anything
    else is a bug and stops the build (its progress is kept)."""
    return (_pyav().error.FFmpegError, OSError, IndexError, ValueError)


FALLBACK = ("partial: the rule applied to the decodable frames; missing/undecodable: "
            "the cover if a covers dir was given, else grey 128")




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
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")




def select_frame_indices(n_total: int, num_frames: int = 5, interval: int = 1) -> list[int]:
    """Indices of ``num_frames`` frames ``interval`` apart, centred on the video's middle.

    The window starts at ``(n_total - 1 - span) // 2`` (``span = (num_frames - 1) * interval``), so
    its centre sits on the middle frame, or half a frame before it; indices outside the video
    are clipped, which pads a short video by repeating its first and last frames.
    """
    if n_total < 1:
        raise ConfigError("a video needs at least one frame")
    span = (num_frames - 1) * interval
    start = (n_total - 1 - span) // 2
    return [min(max(start + k * interval, 0), n_total - 1) for k in range(num_frames)]


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
    except decode_errors():
        return DecodedRow(None, "undecodable")


def _decode_clip(path: Path, spec: FrameSpec, seek: bool) -> DecodedRow:
    with _pyav().open(str(path)) as container:
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
    with _pyav().open(str(path)) as container:
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
    except decode_errors() as error:
        damage.append(error)
        try:
            yield from context.decode(None)
        except decode_errors():
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

# An item's files in a raw release: ``videos/<token>.mp4`` and ``covers/<token>.jpg``.
VIDEO_SUFFIX, COVER_SUFFIX = ".mp4", ".jpg"


def video_file(videos_dir: Path, token: str) -> Path:
    return Path(videos_dir) / f"{token}{VIDEO_SUFFIX}"


def cover_file(covers_dir: Path, token: str) -> Path:
    return Path(covers_dir) / f"{token}{COVER_SUFFIX}"


@dataclass(frozen=True)
class FrameRowDecoder:
    videos_dir: Path
    spec: FrameSpec
    covers_dir: Path | None = None
    seek: bool = True

    def __call__(self, token: str) -> DecodedRow:
        row = decode_clip(video_file(self.videos_dir, token), self.spec, seek=self.seek)
        if row.pixels is None:
            row.pixels = np.broadcast_to(self._still(token), self.spec.row_shape)
        return row

    def _still(self, token: str) -> np.ndarray:
        """What a video without decodable frames shows: its cover, else grey."""
        if self.covers_dir is not None:
            cover = load_cover(cover_file(self.covers_dir, token), self.spec.size).pixels
            if cover is not None:
                return cover
        return np.full(self.spec.row_shape[1:], GREY, dtype=np.uint8)


@dataclass(frozen=True)
class CoverRowDecoder:
    covers_dir: Path
    spec: CoverSpec

    def __call__(self, token: str) -> DecodedRow:
        row = load_cover(cover_file(self.covers_dir, token), self.spec.size)
        if row.pixels is None:
            row.pixels = np.full(self.spec.row_shape, GREY, dtype=np.uint8)
        return row
