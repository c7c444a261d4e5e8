"""Make sure a dataset's atomic files exist and are complete before RecBole loads them (convert
on first use, or again when a folder does not match its meta.json)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from recbole_microlens.data.stores.atomic import (
    check_dataset_name,
    dataset_lock,
    dataset_problem,
    is_output,
    require_complete,
)
from recbole_microlens.errors import ConfigError, MissingInputError

SAMPLE_DATASET = "microlens-sample"

logger = logging.getLogger(__name__)


def atomic_inter_file(dataset_dir: Path, dataset: str) -> Path:
    return Path(dataset_dir) / f"{dataset}.inter"


def ensure_atomic_files(config) -> Path:
    """Convert raw files (``raw_data_path``) or generate the embedded sample when needed.

    ``config['data_path']`` is RecBole's per-dataset folder (``<data_path>/<dataset>``).
    ``config['warm']`` (Warm-N) is applied when converting, and checked against an existing store.
    Checked and converted under the dataset folder's lock: runs starting together convert once.
    """
    check_dataset_name(config["dataset"])
    with dataset_lock(config["data_path"]):
        return _ensure_locked(config)


def _ensure_locked(config) -> Path:
    dataset = config["dataset"]
    dataset_dir = Path(config["data_path"])
    has_outputs = dataset_dir.is_dir() and any(is_output(path.name, dataset)
                                               for path in dataset_dir.iterdir())
    problem = dataset_problem(dataset_dir, dataset) if has_outputs else "absent"
    if problem is None:
        check_stored_warm(dataset_dir, dataset, config["warm"])
        return dataset_dir
    raw_dir = config["raw_data_path"]
    if raw_dir is None and dataset == SAMPLE_DATASET:
        from recbole_microlens.data.sample.generate import ensure_sample_raw

        raw_dir = dataset_dir / "raw"
        logger.info("Generating the embedded sample into %s", raw_dir)
        ensure_sample_raw(raw_dir)
    if raw_dir is None and problem != "absent":
        require_complete(dataset_dir, dataset)  # raises, saying why and how to rebuild
    if raw_dir is None:
        raise MissingInputError(
            f"no atomic files for dataset {dataset!r}: expected {atomic_inter_file(dataset_dir, dataset)}. "
            f"Convert the raw MicroLens files with `recbole-microlens convert --raw-dir DIR "
            f"--dataset {dataset}`, or pass --raw_data_path=DIR to convert on first use."
        )
    from recbole_microlens.data.raw.convert import convert_dataset
    from recbole_microlens.data.raw.readers import detect_raw_files

    if problem != "absent":
        logger.warning("dataset folder %s is incomplete (%s): converting again", dataset_dir, problem)
    logger.info("Converting raw files in %s to atomic files in %s", raw_dir, dataset_dir)
    convert_dataset(detect_raw_files(raw_dir), dataset, dataset_dir.parent,
                    warm=config["warm"] or 0)
    return dataset_dir


def check_stored_warm(dataset_dir: Path, dataset: str, warm: int | None) -> None:
    """Refuse to train a requested ``warm`` on a store converted with another one: each warm level
    needs its own dataset name (``microlens-50k-warm20``)."""
    meta_file = Path(dataset_dir) / f"{dataset}.meta.json"
    if warm is None or not meta_file.is_file():
        return
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    stored = (meta.get("warm") or {}).get("min_item_inter", 0)
    if stored != warm:
        raise ConfigError(f"dataset {dataset!r} was converted with warm={stored}, not warm={warm}; "
                          f"use a dataset name per warm level, e.g. {dataset}-warm{warm}")
