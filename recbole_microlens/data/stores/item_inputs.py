"""Encoder inputs for internal item ids, read from the per-dataset media stores.

The data layer owns files: stores are built once per dataset (on first use), opened once, and
each call turns a batch of item ids into the tensor (or token dict) an encoder expects. Models
only ever see ``inputs(ids)``.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from recbole_microlens.data.stores.decode import COVER_SUFFIX, VIDEO_SUFFIX
from recbole_microlens.data.stores.media import FrameSpec, MediaStore, build_cover_store, build_frame_store
from recbole_microlens.data.stores.titles import TitleStore, prepare_titles, read_titles
from recbole_microlens.errors import CheckpointError, ConfigError, DatasetError
from recbole_microlens.paths import overall_default

logger = logging.getLogger(__name__)

# Store statuses whose row shows the item's own content (media.STATUSES, text's title statuses).
REAL_CONTENT = ("ok", "partial", "padding")
# A content model stops when more items than this share have no content of their own (no
# video nor cover: a grey clip; no cover; no title): it would learn from fallbacks, not items.
MAX_MISSING_CONTENT = 0.5


class ItemInputs:
    """``inputs(ids) -> encoder input`` for a store whose rows are indexed by item token."""

    def __init__(self, store, item_tokens: list[str], convert):
        self.store = store
        self.rows_by_id = torch.from_numpy(np.asarray(store.rows_for(item_tokens), dtype=np.int64))
        self.convert = convert

    def __call__(self, ids: torch.Tensor, device=None):
        rows = self.rows_by_id[ids.cpu()].numpy()
        return self.convert(self.store[rows], device or ids.device)

    def fallback_items(self) -> np.ndarray:
        """Per item id: True where the store holds a fallback instead of the item's own media
        or title (missing, undecodable, empty); a partial video still shows the video."""
        status = np.asarray(getattr(self.store, "status", []), dtype=object)
        if status.size == 0:
            return np.zeros(len(self.rows_by_id), dtype=bool)
        flags = ~np.isin(status, REAL_CONTENT)
        flags[0] = False  # the padding row
        return flags[self.rows_by_id.numpy()]

    def lengths(self, ids: torch.Tensor) -> torch.Tensor | None:
        """Real tokens of each item's input (token stores only; None for frames and covers)."""
        lengths = getattr(self.store, "lengths", None)
        if lengths is None:
            return None
        return torch.from_numpy(lengths[self.rows_by_id[ids.cpu()].numpy()])

    @property
    def vocab_size(self) -> int | None:
        return getattr(self.store, "meta", {}).get("vocab_size")


def _normaliser(mean, std, channel_axis_shape):
    mean = torch.tensor(mean, dtype=torch.float32).view(channel_axis_shape)
    std = torch.tensor(std, dtype=torch.float32).view(channel_axis_shape)
    return mean, std


def clips_to_tensor(input_spec):
    """uint8 [N, T, S, S, 3] -> normalised float [N, 3, T, S, S]."""
    mean, std = _normaliser(input_spec.mean, input_spec.std, (1, 3, 1, 1, 1))

    def convert(frames: np.ndarray, device):
        clips = torch.from_numpy(np.ascontiguousarray(frames)).to(device)
        clips = clips.permute(0, 4, 1, 2, 3).float().div_(255.0)
        return (clips - mean.to(device)) / std.to(device)

    return convert


def images_to_tensor(input_spec):
    """uint8 [N, S, S, 3] -> normalised float [N, 3, S, S]."""
    mean, std = _normaliser(input_spec.mean, input_spec.std, (1, 3, 1, 1))

    def convert(images: np.ndarray, device):
        batch = torch.from_numpy(np.ascontiguousarray(images)).to(device)
        batch = batch.permute(0, 3, 1, 2).float().div_(255.0)
        return (batch - mean.to(device)) / std.to(device)

    return convert


def tokens_to_device(token_batch: dict, device):
    return {key: value.to(device) for key, value in token_batch.items()}


@dataclass(frozen=True)
class ItemSource:
    """Where one dataset's item stores are read from and built, as plain values (no Config).

    ``tokenizer_path`` is already resolved (:func:`resolve_tokenizer`): None trains a WordPiece
    on the titles. Values not given are overall.yaml's, as in a training run.
    """

    dataset_dir: Path
    raw_dir: Path | None = None  # default <dataset_dir>/raw
    frame_interval: int = field(default_factory=lambda: overall_default("frame_interval"))
    workers: int = field(default_factory=lambda: overall_default("media_workers"))
    progress: bool = True
    tokenizer_path: str | None = None
    title_max_length: int = field(default_factory=lambda: overall_default("title_max_length"))

    @classmethod
    def from_config(cls, config) -> ItemSource:
        """The source a training run's config names (RecBole's ``data_path`` is the dataset's)."""
        return cls(Path(config["data_path"]),
                   Path(config["raw_data_path"]) if config["raw_data_path"] else None,
                   frame_interval=config["frame_interval"],
                   workers=config["media_workers"], progress=bool(config["show_progress"]),
                   title_max_length=config["title_max_length"])

    @property
    def raw(self) -> Path:
        return self.raw_dir or self.dataset_dir / "raw"

    @property
    def media(self) -> Path:
        return self.dataset_dir / "media"


def _open_frames(item_tokens: list[str], source: ItemSource, input_spec):
    spec = FrameSpec(num_frames=input_spec.frames, interval=source.frame_interval,
                     size=input_spec.size)
    covers = source.raw / "covers"
    report = build_frame_store(source.raw / "videos", item_tokens[1:], source.media, spec,
                               covers_dir=covers if covers.is_dir() else None,
                               workers=source.workers, progress=source.progress)
    _log_report(report)
    return MediaStore.open(report.folder), clips_to_tensor(input_spec)


def _open_covers(item_tokens: list[str], source: ItemSource, input_spec):
    report = build_cover_store(source.raw / "covers", item_tokens[1:], source.media,
                               input_spec.size, workers=source.workers, progress=source.progress)
    _log_report(report)
    return MediaStore.open(report.folder), images_to_tensor(input_spec)


def _open_titles(item_tokens: list[str], source: ItemSource, input_spec):
    folder = prepare_titles(source.dataset_dir, source.tokenizer_path,
                            max_length=source.title_max_length)
    return TitleStore.open(folder), tokens_to_device


TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")


def resolve_tokenizer(checkpoint, tokenizer_path) -> str | None:
    """The one tokenizer rule for title encoders: ``tokenizer_path`` when given; else a
    pre-trained checkpoint's own (its ids index the checkpoint's embedding table), an error when
    the checkpoint has none; else (random weights) None, a WordPiece trained on the titles."""
    if tokenizer_path:
        return str(tokenizer_path)
    if not checkpoint:
        return None
    folder = Path(checkpoint)
    if folder.is_dir() and any((folder / name).is_file() for name in TOKENIZER_FILES):
        return str(folder)
    raise CheckpointError(
        f"text encoder checkpoint {checkpoint} has no tokenizer ({' or '.join(TOKENIZER_FILES)}"
        f"{'' if folder.is_dir() else ' beside a weights file'}): its embedding table needs the "
        "tokenizer it was trained with; give its folder as tokenizer_path (--tokenizer-path)")


def items_without_content(item_tokens: list[str], modality: str, source: ItemSource) -> int:
    """How many items (``item_tokens[1:]``; 0 is padding) have no file of their own to show:
    no video and no cover (a grey clip), no cover, or no non-empty title. Counted from file
    names before any store is built, so a release without media stops at once."""
    tokens = list(item_tokens[1:])
    if modality == "text":
        titles_csv = source.dataset_dir / f"{source.dataset_dir.name}.titles.csv"
        titles = read_titles(titles_csv) if titles_csv.is_file() else {}
        return sum(not (titles.get(token) or "").strip() for token in tokens)
    folders = {"covers": COVER_SUFFIX, **({"videos": VIDEO_SUFFIX} if modality == "video" else {})}
    if not any((source.raw / name).is_dir() for name in folders) and _has_store(source, modality):
        return 0  # stores built elsewhere, raw media gone: their statuses are what the run sees
    shown = set().union(*(_file_stems(source.raw / name, suffix) for name, suffix in folders.items()))
    return sum(token not in shown for token in tokens)


def _has_store(source: ItemSource, modality: str) -> bool:
    prefix = "frames_" if modality == "video" else "covers_"
    return source.media.is_dir() and any(path.name.startswith(prefix)
                                         for path in source.media.iterdir())


def _file_stems(folder: Path, suffix: str) -> set[str]:
    if not folder.is_dir():
        return set()
    return {name[: -len(suffix)] for name in os.listdir(folder) if name.endswith(suffix)}


def require_content(item_tokens: list[str], modality: str, source: ItemSource, *,
                    allowed: bool = False) -> None:
    """Stop a content model whose items mostly lack their own content (more than
    ``MAX_MISSING_CONTENT``), unless ``allowed`` (``allow_missing_content: true``)."""
    missing, total = items_without_content(item_tokens, modality, source), len(item_tokens) - 1
    if not missing:
        return
    what = {"video": f"no video or cover in {source.raw / 'videos'} or {source.raw / 'covers'} "
                     "(a grey fallback clip)",
            "image": f"no cover in {source.raw / 'covers'} (a grey fallback image)",
            "text": "no title (an empty title)"}[modality]
    message = f"item_modality {modality}: {missing:,} of {total:,} items have {what}"
    if allowed or missing <= MAX_MISSING_CONTENT * total:
        logger.warning("%s%s", message, " (allow_missing_content: true)" if allowed else "")
        return
    raise DatasetError(f"{message}: the encoder would learn from fallbacks, not items. Point "
                     f"raw_data_path at a release with the media, choose a modality the data has "
                     f"(e.g. item_modality: text), or set allow_missing_content: true")


def _log_report(report) -> None:
    problems = {k: v for k, v in report.counts.items() if k != "ok" and v}
    logger.info("media store %s: %s%s", report.folder, report.counts,
                f" (fallback inputs for {problems})" if problems else "")


OPENERS = {"video": _open_frames, "image": _open_covers, "text": _open_titles}


def build_item_inputs(item_tokens: list[str], modality: str, input_spec,
                      source: ItemSource) -> ItemInputs:
    """Build (first use) or open the store of ``modality`` for ``item_tokens`` (RecBole's id ->
    token list: id 0 is padding) and index it by item id."""
    if modality not in OPENERS:
        raise ConfigError(f"item_modality {modality!r} is unknown; choose one of {sorted(OPENERS)}")
    store, convert = OPENERS[modality](list(item_tokens), source, input_spec)
    return ItemInputs(store, list(item_tokens), convert)
