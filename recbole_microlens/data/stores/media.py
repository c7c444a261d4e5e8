"""Video frames and covers -> uint8 memory-mapped stores, built once per dataset.

Models never read media files: the data layer decodes each item once (:mod:`.decode`), here, into
one file per store that every training worker maps read-only (:mod:`.store`, built resumably by
:mod:`.store_build`). Layout of a store folder (``spec.dirname``)::

    frames.u8 | covers.u8   raw uint8 array, C order, shape meta["shape"] = [n_rows, *row_shape]
    index.json              {"tokens": [...], "status": [...]}, one entry per row
    meta.json               spec, shape, counts by status, problem items, build time, sources;
                            written last, so its presence means "complete"
    status.npy              per-row status codes: the resumable progress of a build

beside it, ``.<dirname>.lock`` serialises builders of the same store (flock).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from recbole_microlens.data.stores.decode import (
    FALLBACK, SPEC_TYPES, CoverRowDecoder, CoverSpec, FrameRowDecoder, FrameSpec,
)
from recbole_microlens.data.stores.base import PAD_TOKEN, IndexedStore, read_item_tokens
from recbole_microlens.data.stores.build import CHECKPOINT_EVERY, StoreReport, build_row_store
from recbole_microlens.errors import MissingInputError

# What callers of the media stores use; decoding itself is in .decode, the generic store in .store.
__all__ = ["CoverSpec", "FrameSpec", "MediaStore", "PAD_TOKEN", "StoreReport", "build_cover_store",
           "build_frame_store", "prepare_media", "read_item_tokens"]

logger = logging.getLogger(__name__)


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
    return build_row_store(spec, decoder, item_tokens, Path(store_root), workers=workers,
                        progress=progress, max_items=max_items, checkpoint_every=checkpoint_every,
                        sources={"videos_dir": videos_dir, "covers_dir": covers_dir},
                           fallback=FALLBACK)


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
    return build_row_store(spec, decoder, item_tokens, Path(store_root), workers=workers,
                        progress=progress, max_items=max_items, checkpoint_every=checkpoint_every,
                        sources={"covers_dir": covers_dir}, fallback=FALLBACK)


def _optional_path(path) -> Path | None:
    return None if path is None else Path(path)


class MediaStore(IndexedStore):
    """Frames or covers: one uint8 memory-mapped array, a row per item."""

    kind_name = "media store"

    def _map_arrays(self) -> None:
        self.spec = SPEC_TYPES[self.meta["kind"]](**self.meta["spec"])
        self.data = np.memmap(self.folder / self.meta["data_file"], dtype=np.uint8, mode="r",
                              shape=tuple(self.meta["shape"]))

    def __getitem__(self, rows) -> np.ndarray:
        return np.asarray(self.data[rows])




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
        raise MissingInputError(f"raw folder {raw_dir} does not exist (expected videos/ and/or "
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
