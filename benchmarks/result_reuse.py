"""Whether a benchmark's earlier result file was trained exactly as a run would be trained now.

Comparing only the keys a benchmark passes would reuse a result across a change of the
project's defaults (a yaml key), and publish an old default's numbers under the new one's name;
so the whole resolved config is compared, key by key, except where files go and what device
runs it.
"""
from __future__ import annotations

import json
from pathlib import Path

# where things are read and written, how the run is shown or placed: not how it trains
NOT_TRAINING = {"data_path", "checkpoint_dir", "result_file", "device", "gpu_id", "use_gpu",
                "worker", "show_progress", "state", "run_id", "log_wandb", "wandb_project",
                "dataset_save_path", "dataloaders_save_path", "local_rank", "world_size",
                "nproc", "offset", "ip", "port", "single_spec"}


def resolved_config(model: str, dataset: str, config_files, settings: dict) -> dict:
    """The config a run would resolve to now, as the plain JSON its result file stores."""
    from recbole_microlens.config.configurator import MLConfig
    from recbole_microlens.evaluator.results import jsonable_config

    config = MLConfig(model, dataset, list(config_files or []) or None, dict(settings))
    return json.loads(json.dumps(jsonable_config(config)))


def differences(stored: dict, wanted: dict) -> list[str]:
    """The training keys whose values differ. A key the stored config lacks was added to the
    project after that run, as a switch whose default keeps the behaviour the run had: skipped.
    A stored key the current config lacks counts as a difference."""
    keys = set(stored) - NOT_TRAINING
    return sorted(key for key in keys if stored.get(key) != wanted.get(key))


def trained_alike(result_file: Path, model: str, dataset: str, config_files, settings: dict) -> bool:
    """True when ``result_file`` exists and was trained with the config this run would use."""
    if not result_file.is_file():
        return False
    stored = json.loads(result_file.read_text()).get("config") or {}
    changed = differences(stored, resolved_config(model, dataset, config_files, settings))
    if changed:
        print(f"{result_file.name}: trained with other settings ({', '.join(changed[:6])}"
              f"{', ...' if len(changed) > 6 else ''}): not reused")
    return not changed
