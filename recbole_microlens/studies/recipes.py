"""The paper's studies as recipes: each is a list of runs, and one executor runs any list.

A recipe says what to train (model, dataset, settings), never how: :func:`run_study` trains each
run with :func:`~recbole_microlens.quick_start.quick_start.run_recbole_ml`, one after the other, and writes one
result JSON per run, which ``recbole-microlens report`` turns into tables and plots.

* Warm-N (Tables 8 and 10), :func:`warm_runs`: items under N interactions removed;
* side features (Table 11), :func:`side_feature_runs`: SASRecID+Pop, +Tag, +Pop+Tag;
* cold start (Figure 6), :func:`cold_start_runs`: test HR@10 per training-popularity group;
* encoder sweep (Table 6, Figure 4), :func:`encoder_sweep_runs`: encoders x fine-tuning modes.

Warm-N datasets get their own name, ``<dataset>-warm<N>`` (:func:`warm_dataset_name`): each warm
level is a separate store, converted on first use from ``raw_data_path`` with ``warm: N``.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from recbole_microlens.encoders import ENCODERS, FINETUNE_MODES
from recbole_microlens.io import write_text
from recbole_microlens.report import encoder_table, load_summaries, side_feature_label
from recbole_microlens.errors import ConfigError

logger = logging.getLogger(__name__)

WARM_LEVELS = (0, 20, 50, 200)  # paper Table 8: Regular, Warm-20, Warm-50, Warm-200
SIDE_FEATURE_SETS = ((), ("pop_bin",), ("tags",), ("pop_bin", "tags"))  # paper Table 11
POPULARITY_GROUPS = 5


@dataclass(frozen=True)
class StudyRun:
    """One training run: its result is written to ``<out_dir>/<name>.json``."""

    name: str
    model: str
    dataset: str
    config: dict = field(default_factory=dict)


def warm_dataset_name(dataset: str, warm: int) -> str:
    """The store of a warm level: ``microlens-50k`` at Warm-20 is ``microlens-50k-warm20``."""
    return f"{dataset}-warm{warm}" if warm else dataset


def warm_runs(model: str, dataset: str, levels=WARM_LEVELS) -> list[StudyRun]:
    """``model`` on the regular dataset and on each Warm-N one (``raw_data_path`` must be set
    in the shared config for a level not converted yet)."""
    return [StudyRun(f"{warm_dataset_name(dataset, warm)}_{model}", model,
                     warm_dataset_name(dataset, warm), {"warm": warm} if warm else {})
            for warm in levels]


def side_feature_runs(dataset: str, feature_sets=SIDE_FEATURE_SETS) -> list[StudyRun]:
    """SASRec with each set of side features (the empty set is plain SASRec)."""
    runs = []
    for features in feature_sets:
        if features:
            runs.append(StudyRun(f"{dataset}_{side_feature_label('SASRec', features)}",
                                 "SASRecSide", dataset, {"side_features": list(features)}))
        else:
            runs.append(StudyRun(f"{dataset}_SASRec", "SASRec", dataset))
    return runs


def cold_start_runs(dataset: str, models=("SASRec", "SASRecV"),
                    groups: int = POPULARITY_GROUPS) -> list[StudyRun]:
    """Each model with its test metrics broken down by training-popularity group."""
    return [StudyRun(f"{dataset}_{model}_by_popularity", model, dataset,
                     {"popularity_groups": groups}) for model in models]


def encoder_sweep_runs(model: str, dataset: str, encoders, finetunes) -> list[StudyRun]:
    """``model`` with each item encoder in each fine-tuning mode (the encoder's own modality)."""
    unknown = [name for name in encoders if name not in ENCODERS]
    if unknown:
        raise ConfigError(f"unknown encoders {unknown}; choose from {list(ENCODERS)}")
    wrong = [mode for mode in finetunes if mode not in FINETUNE_MODES]
    if wrong:
        raise ConfigError(f"unknown finetune modes {wrong}; choose from {list(FINETUNE_MODES)}")
    return [StudyRun(f"{dataset}_{model}_{encoder}_{mode}", model, dataset,
                     {"item_tower": "encoder", "item_encoder": encoder, "finetune": mode,
                      "item_modality": ENCODERS[encoder].modality})
            for encoder in encoders for mode in finetunes]


def unique_runs(runs: list[StudyRun]) -> list[StudyRun]:
    """Runs shared by two recipes (plain SASRec is Regular and SASRecID) are trained once."""
    by_name: dict[str, StudyRun] = {}
    for run in runs:
        if run.name in by_name and by_name[run.name] != run:
            raise ConfigError(f"two different runs are both named {run.name!r}")
        by_name.setdefault(run.name, run)
    return list(by_name.values())


def run_study(runs: list[StudyRun], out_dir: str | os.PathLike, *, config_file_list=None,
              config_dict: dict | None = None, rerun: bool = False) -> list[Path]:
    """Train every run in turn (``config_dict`` is shared, a run's own settings win) and return
    their result files. A result file that exists is kept unless ``rerun``: an interrupted study
    resumes where it stopped."""
    from recbole_microlens.quick_start.quick_start import run_recbole_ml

    paths = []
    for run in unique_runs(runs):
        path = Path(out_dir) / f"{run.name}.json"
        paths.append(path)
        if path.is_file() and not rerun:
            logger.info("keeping %s (rerun to replace it)", path)
            continue
        settings = {**(config_dict or {}), **run.config, "result_file": str(path)}
        run_recbole_ml(run.model, run.dataset, config_file_list, settings)
    return paths


def run_encoder_sweep(model: str, dataset: str, encoders, finetunes, out_dir, **study_options
                      ) -> tuple[list[Path], str]:
    """The encoder sweep, then its Table-6 layout table (also written to ``sweep.md``)."""
    paths = run_study(encoder_sweep_runs(model, dataset, encoders, finetunes), out_dir,
                      **study_options)
    table = encoder_table(load_summaries(paths))
    write_text(Path(out_dir) / "sweep.md", table + "\n")
    return paths, table
