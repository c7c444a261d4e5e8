"""The sample's covers and videos: each item drawn as drifting stripes in its category's colour
with a disc moving in its category's direction, so pixels carry the category; one video is
missing and one truncated on purpose."""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image

COVERS_DIR = "covers"
VIDEOS_DIR = "videos"
# One colour per category, in the order of sample.CATEGORIES.
CATEGORY_COLOURS = np.array(
    [[230, 120, 40], [60, 200, 90], [235, 90, 180], [170, 120, 70],
     [40, 110, 230], [150, 60, 220], [240, 200, 60], [40, 200, 210]],
    dtype=np.float64,
)
COVER_SIZE = (160, 90)  # width, height: 16:9 like the official 640x360
VIDEO_SIZE = (128, 72)
VIDEO_FPS = 12
VIDEO_LENGTH_RANGE = (0.5, 1.5)  # per-item factor on video_seconds
H264_ENCODERS = ("libx264", "h264", "libopenh264")
FALLBACK_ENCODER = "mpeg4"


@dataclass(frozen=True)
class ItemLook:
    """How one item's cover and video look: category colour plus item-specific pattern."""

    base_colour: np.ndarray  # (3,) category colour with a small item jitter
    accent_colour: np.ndarray  # (3,)
    stripe_angle: float
    stripe_frequency: float
    stripe_phase: float
    disc_radius: float
    disc_start: np.ndarray  # (2,) x, y in [0, 1]
    disc_velocity: np.ndarray  # (2,) per second; direction set by the category


def write_media(out_dir: Path, category: np.ndarray, item_counts, video_seconds: float,
                rng) -> dict:
    """Covers for every item (``category``: its index, 0-based items), videos for all but one;
    one video deliberately truncated."""
    n_items = len(category)
    looks = _item_looks(category, rng)
    lengths = video_seconds * rng.uniform(*VIDEO_LENGTH_RANGE, size=n_items)
    n_frames = np.maximum(1, np.round(lengths * VIDEO_FPS)).astype(int)
    truncated, missing = (rng.choice(np.flatnonzero(item_counts > 0), size=2, replace=False) + 1)
    encoder = _video_encoder_name()
    (out_dir / COVERS_DIR).mkdir()
    (out_dir / VIDEOS_DIR).mkdir()
    for item, look, frames in zip(range(1, n_items + 1), looks, n_frames):
        _write_cover(out_dir / COVERS_DIR / f"{item}.jpg", look)
        if item != missing:
            _write_video(out_dir / VIDEOS_DIR / f"{item}.mp4", look, int(frames), encoder)
    _truncate_to_half(out_dir / VIDEOS_DIR / f"{truncated}.mp4")
    return {
        "cover_size": list(COVER_SIZE),
        "video_size": list(VIDEO_SIZE),
        "video_fps": VIDEO_FPS,
        "video_codec": _codec_name(encoder),
        "n_covers": n_items,
        "n_videos": n_items - 1,
        "video_frames": {str(item): int(n) for item, n in enumerate(n_frames, start=1)
                         if item != missing},
        "truncated_video_item": int(truncated),
        "missing_video_item": int(missing),
    }


def _item_looks(category: np.ndarray, rng: np.random.Generator) -> list[ItemLook]:
    """Draw every item's look at once; the category sets colour and motion direction."""
    n = len(category)
    n_categories = len(CATEGORY_COLOURS)
    base = np.clip(CATEGORY_COLOURS[category] + rng.normal(0, 12, (n, 3)), 0, 255)
    direction = 2 * np.pi * category / n_categories + rng.normal(0, 0.2, n)
    speed = rng.uniform(0.2, 0.5, n)
    velocity = np.stack([np.cos(direction), np.sin(direction)], axis=1) * speed[:, None]
    accent = rng.uniform(0, 255, (n, 3))
    angle = rng.uniform(0, np.pi, n)
    frequency = rng.uniform(2, 8, n)
    phase = rng.uniform(0, 2 * np.pi, n)
    radius = rng.uniform(0.08, 0.2, n)
    start = rng.uniform(0, 1, (n, 2))
    return [ItemLook(base[i], accent[i], angle[i], frequency[i], phase[i], radius[i],
                     start[i], velocity[i]) for i in range(n)]


def _render(look: ItemLook, seconds: np.ndarray, width: int, height: int) -> np.ndarray:
    """RGB uint8 frames (T, H, W, 3): drifting stripes in the item colour plus a moving disc."""
    t = seconds[:, None, None]
    y, x = np.mgrid[0:height, 0:width] / width  # same aspect for every size
    along = x * np.cos(look.stripe_angle) + y * np.sin(look.stripe_angle)
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * look.stripe_frequency * along + look.stripe_phase
                                 + np.pi * t)
    frames = look.base_colour * (0.55 + 0.45 * stripes)[..., None]
    aspect = height / width
    centre_x = (look.disc_start[0] + look.disc_velocity[0] * t) % 1.0
    centre_y = ((look.disc_start[1] + look.disc_velocity[1] * t) % 1.0) * aspect
    disc = (x - centre_x) ** 2 + (y - centre_y) ** 2 < look.disc_radius ** 2
    frames[disc] = look.accent_colour
    return np.clip(frames, 0, 255).astype(np.uint8)


def _write_cover(path: Path, look: ItemLook) -> None:
    frame = _render(look, np.array([0.5]), *COVER_SIZE)[0]
    Image.fromarray(frame).save(path, format="JPEG", quality=90)


def _write_video(path: Path, look: ItemLook, n_frames: int, encoder: str) -> None:
    """A small yuv420p mp4; single-threaded and bitexact so two runs give identical bytes."""
    frames = _render(look, np.arange(n_frames) / VIDEO_FPS, *VIDEO_SIZE)
    options = {"preset": "veryfast"} if encoder == "libx264" else {}
    with av.open(str(path), "w", format="mp4",
                 options={"movflags": "+faststart", "fflags": "+bitexact"}) as container:
        stream = container.add_stream(encoder, rate=VIDEO_FPS, options=options)
        stream.width, stream.height = VIDEO_SIZE
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        for index, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def _video_encoder_name() -> str:
    """The first H.264 encoder this PyAV build has; mpeg4 (with a warning) only if none."""
    for name in H264_ENCODERS:
        try:
            av.codec.Codec(name, "w")
        except ValueError:  # unknown, or known only as a decoder
            continue
        return name
    warnings.warn("no H.264 encoder in this PyAV build; sample videos use mpeg4", stacklevel=2)
    return FALLBACK_ENCODER


def _codec_name(encoder: str) -> str:
    return "h264" if encoder in H264_ENCODERS else encoder


def _truncate_to_half(path: Path) -> None:
    """A partial download: header and index intact (faststart), the second half of data gone."""
    os.truncate(path, path.stat().st_size // 2)
