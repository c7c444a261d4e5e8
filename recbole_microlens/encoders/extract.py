"""Frozen item features (VIDRec): an encoder run once over every item, one row per item token.

``recbole-microlens extract-features`` writes into ``<data_path>/<dataset>/features/``::

    <encoder>.npy       float32 [n_items, out_dim]; row i is the i-th item token of
                        ``<dataset>.item`` in file order (``.inter`` first-seen order without one),
                        i.e. ``data.media.read_item_tokens(dataset_dir)``
    <encoder>.json      encoder, checkpoint and its sha256, modality, input (frames spec or
                        tokenizer), dtype, shape, the row tokens, ``complete``; written last
    .<encoder>.npy.partial/   an unfinished run: the matrix so far, its per-row done mask and
                        the identity it is for (gone once complete)

The matrix follows the artefact protocol (:mod:`recbole_microlens.data.stores.artefact`): one
extraction at a time, computed in the partial folder, renamed into place, then the .json.

Rows are computed in fixed slices of that order (``batch_size``), always the same slices
whether a run is interrupted and resumed or not, by a frozen encoder in eval mode without
gradients: the matrix is bit-identical across runs. A file is resumed or reused only for the same
extraction (batch size and device included: they decide the exact bits). Models never parse
features from an atomic-file column; a tower reads the .npy through
:func:`dataset_item_features`, mapped from item tokens to RecBole's internal ids.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from recbole_microlens.data.stores.features import (  # noqa: F401 (reading, re-exported)
    dataset_item_features,
    load_item_features,
    meta_path,
)
from recbole_microlens.data.stores.item_inputs import ItemSource
from recbole_microlens.data.stores.media import PAD_TOKEN, read_item_tokens
from recbole_microlens.data.prepare import ensure_atomic_files
from recbole_microlens.encoders.factory import EncoderChoice, build_encoder_inputs, build_item_encoder
from recbole_microlens.data.stores.artefact import build_file_once
from recbole_microlens.encoders.weights import PRETRAINED
from recbole_microlens.io import atomic_open, read_json, sha256_file, write_json_atomic

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
DTYPE = "float32"
ROW_ORDER = "item tokens of <dataset>.item in file order (.inter first-seen order without one)"
SAVE_EVERY_BATCHES = 20  # how often an unfinished run persists its done mask
SEED = 0  # weights of an encoder without checkpoint are random: make them the same every run


@dataclass(frozen=True)
class FeatureReport:
    path: Path
    rows: int
    rows_done: int
    rows_computed: int  # by this call

    @property
    def complete(self) -> bool:
        return self.rows_done == self.rows


def default_features_path(dataset_dir: str | os.PathLike, encoder: str) -> Path:
    return Path(dataset_dir) / "features" / f"{encoder}.npy"


def extract_features(
    data_path: str | os.PathLike,
    dataset: str,
    encoder: str,
    *,
    checkpoint: str | os.PathLike | None = PRETRAINED,
    raw_dir: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    batch_size: int = 64,
    overrides: dict | None = None,
    frame_interval: int = 1,
    tokenizer_path: str | os.PathLike | None = None,
    device: str = "cpu",
    limit: int | None = None,
    progress: bool = True,
) -> FeatureReport:
    """Features of every item of ``<data_path>/<dataset>``, written to ``out`` (default
    ``features/<encoder>.npy`` in the dataset folder); resumes an unfinished run of the same
    extraction. ``limit`` stops after that many batches (an interruption, for tests).

    Atomic files are converted from ``raw_dir`` (or the sample generated) when missing, and the
    media or title store is built on first use. Encoder and inputs come from the same factory
    as a tower's (``encoder_factory``): ``checkpoint`` is an ``encoder_checkpoint`` value (default
    the encoder's upstream weights, fetched into their cache; ``random``); a pre-trained text
    checkpoint reads its own tokenizer, an error when it has none unless ``tokenizer_path`` is
    given; random weights read a WordPiece trained on the titles.
    """
    choice = EncoderChoice(encoder, checkpoint, dict(overrides or {}), tokenizer_path)
    weights = choice.weights.path  # missing weights stop here, before any data work
    dataset_dir = Path(data_path) / dataset
    ensure_atomic_files({"dataset": dataset, "data_path": str(dataset_dir), "warm": None,
                         "raw_data_path": None if raw_dir is None else str(raw_dir)})
    tokens = read_item_tokens(dataset_dir)
    source = ItemSource(dataset_dir, None if raw_dir is None else Path(raw_dir),
                        frame_interval=frame_interval, progress=progress)
    inputs = build_encoder_inputs(choice, [PAD_TOKEN, *tokens], source)
    model = _frozen_encoder(choice, inputs, device)

    path = Path(out) if out is not None else default_features_path(dataset_dir, encoder)
    identity = _identity(dataset, model, weights, inputs.store, tokens, batch_size, device)
    progress_of = {"rows_done": len(tokens), "rows_computed": 0}  # as reported when reused

    def build(partial: Path) -> dict | None:
        matrix, done = _open_or_resume(partial / path.name, identity, (len(tokens), model.out_dim))
        progress_of["rows_computed"] = _compute_rows(model, inputs, matrix, done, partial / path.name,
                                                     batch_size, device, limit, progress)
        progress_of["rows_done"] = int(done.sum())
        del matrix  # the memory map closes before the file is renamed
        return {**identity, "complete": True} if done.all() else None

    build_file_once(path, meta_path(path), build, reuse=lambda _: _extracted_as(path, identity),
                    resume=True, describe="features")
    return FeatureReport(path, len(tokens), **progress_of)


def _frozen_encoder(choice: EncoderChoice, inputs, device: str):
    with torch.random.fork_rng(devices=[]):  # seeded weights, the caller's RNG untouched
        torch.manual_seed(SEED)
        encoder = build_item_encoder(choice, inputs)
    return encoder.set_finetune("frozen").eval().to(device)


def _identity(dataset: str, encoder, checkpoint, store, tokens: list[str], batch_size: int,
              device: str) -> dict:
    """Everything the matrix depends on; a resumed or reused file must match it exactly."""
    meta = getattr(store, "meta", {})
    store_input = {key: meta[key] for key in ("spec", "tokenizer", "max_length", "vocab_size")
                   if key in meta}
    identity = {
        "format_version": FORMAT_VERSION,
        "dataset": dataset,
        "encoder": encoder.name,
        "checkpoint": None if checkpoint is None else str(Path(checkpoint).resolve()),
        "checkpoint_sha256": None if checkpoint is None else checkpoint_sha256(checkpoint),
        "seed": SEED if checkpoint is None else None,
        "input": {"spec": dataclasses.asdict(encoder.input), "store": Path(store.folder).name,
                  **store_input},
        "batch_size": batch_size,
        "device": torch.device(device).type,
        "dtype": DTYPE,
        "shape": [len(tokens), encoder.out_dim],
        "row_order": ROW_ORDER,
        "row_tokens": tokens,
    }
    return json.loads(json.dumps(identity))  # as it reads back from the file


def checkpoint_sha256(checkpoint: str | os.PathLike) -> str:
    """sha256 of a checkpoint file, or of a folder's (relative name, file sha256) list."""
    checkpoint = Path(checkpoint)
    if checkpoint.is_file():
        return sha256_file(checkpoint)
    digest = hashlib.sha256()
    for file in sorted(p for p in checkpoint.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(checkpoint).as_posix()}\0{sha256_file(file)}\n".encode())
    return digest.hexdigest()


def _done_path(path: Path) -> Path:
    return path.with_suffix(".done.npy")


def _extracted_as(path: Path, identity: dict) -> bool:
    """Whether the complete features at ``path`` are this same extraction."""
    saved = read_json(meta_path(path))
    same = saved.get("complete") and all(saved.get(key) == value
                                         for key, value in identity.items())
    if not same:
        logger.warning("recomputing %s: it was extracted with other settings", path)
    return bool(same)


def _open_or_resume(path: Path, identity: dict,
                    shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The unfinished matrix in a partial folder (memory-mapped) and its done mask: resumed if
    it is this same extraction, else started afresh."""
    identity_file, done_file = meta_path(path), _done_path(path)
    if (identity_file.is_file() and path.is_file() and done_file.is_file()
            and read_json(identity_file) == identity):
        logger.info("resuming features %s", path)
        return np.lib.format.open_memmap(path, mode="r+"), np.load(done_file)
    matrix = np.lib.format.open_memmap(path, mode="w+", dtype=DTYPE, shape=shape)
    done = np.zeros(shape[0], dtype=bool)
    _save_done(matrix, done, done_file)
    write_json_atomic(identity_file, identity)
    return matrix, done


def _save_done(matrix: np.memmap, done: np.ndarray, done_file: Path) -> None:
    """Persist progress: the rows first, then the mask that vouches for them."""
    matrix.flush()
    with atomic_open(done_file, "wb") as handle:
        np.save(handle, done)


@torch.no_grad()
def _compute_rows(encoder, inputs, matrix, done: np.ndarray, path: Path, batch_size: int,
                  device: str, limit: int | None, progress: bool) -> int:
    """Encode every fixed batch that has a missing row; returns how many rows were computed."""
    starts = [s for s in range(0, len(done), batch_size) if not done[s:s + batch_size].all()]
    starts = starts[:limit] if limit is not None else starts
    computed = 0
    try:
        for index, start in enumerate(tqdm(starts, desc=f"features {encoder.name}", unit="batch",
                                           disable=not progress, ncols=100), start=1):
            stop = min(start + batch_size, len(done))
            ids = torch.arange(start + 1, stop + 1)  # item id = row + 1 (id 0 is padding)
            matrix[start:stop] = encoder(inputs(ids, torch.device(device))).float().cpu().numpy()
            done[start:stop] = True
            computed += stop - start
            if index % SAVE_EVERY_BATCHES == 0:
                _save_done(matrix, done, _done_path(path))
    finally:
        if starts:
            _save_done(matrix, done, _done_path(path))  # also on Ctrl-C: keep what is done
    return computed
