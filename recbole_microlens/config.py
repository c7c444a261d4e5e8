"""RecBole's Config with two changes (as RecBole-GNN does it): our models resolve first, and our
yaml layers on top of RecBole's before config files and the command line."""
from __future__ import annotations

from pathlib import Path

from recbole.config import Config
from recbole.utils import ModelType

from recbole_microlens import compat
from recbole_microlens.model import get_model, register_model
from recbole_microlens.paths import properties_dir, yaml_file

PROFILE_FOLDER = "profile"


# Yaml shared by every model of a RecBole model type.
TYPE_LAYERS = {ModelType.SEQUENTIAL: "sequential", ModelType.GENERAL: "general"}
#: dataset name -> yaml files registered for it (after properties/dataset/<name>.yaml)
DATASET_LAYERS: dict[str, list[Path]] = {}


def register_dataset(name: str, config_file) -> None:
    """Give dataset ``name`` its own defaults, as the packaged ``properties/dataset/*.yaml`` do:
    every run on ``name`` reads ``config_file`` (before --config_files and the command line).
    The data itself are RecBole atomic files in ``<data_path>/<name>/``."""
    path = Path(config_file)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such yaml file for dataset {name!r}")
    DATASET_LAYERS.setdefault(name, [])
    if path not in DATASET_LAYERS[name]:
        DATASET_LAYERS[name].append(path)


def _yaml_layers(model_class, dataset: str) -> list[Path]:
    """Our yaml files for this run, in the order they apply (later wins).

    A model inherits the yaml of the models it subclasses (SASRecV reads SASRec.yaml first).
    """
    root = properties_dir()
    layers = [root / "overall.yaml", root / f"{TYPE_LAYERS.get(model_class.type, '-')}.yaml"]
    lineage = [cls.__name__ for cls in reversed(model_class.__mro__) if hasattr(cls, "type")]
    layers += [root / "model" / f"{name}.yaml" for name in lineage]
    layers.append(root / "dataset" / f"{dataset}.yaml")
    layers += DATASET_LAYERS.get(dataset, [])
    return [path for path in layers if path.is_file()]


def resolve_config_files(config_file_list):
    """Config files by path, or by the name of a packaged profile (``properties/profile/``,
    e.g. ``reference``: the reference code's training)."""
    if not config_file_list:
        return config_file_list
    return [str(yaml_file(name, PROFILE_FOLDER, "config file or profile"))
            for name in config_file_list]


class MLConfig(Config):
    """``Config`` that knows recbole-microlens models and properties."""

    def __init__(self, model=None, dataset=None, config_file_list=None, config_dict=None):
        compat.apply()
        super().__init__(model, dataset, resolve_config_files(config_file_list), config_dict)

    def _get_model_and_dataset(self, model, dataset):
        if isinstance(model, str) or model is None:
            model = model or self.external_config_dict.get("model")
            if model is None:
                raise KeyError("model must be given (argument, config file, dict or --model=)")
            model = get_model(model)
        else:
            register_model(model)  # a class given directly: checkpoints name it, reloads find it
        return super()._get_model_and_dataset(model, dataset)

    def _init_device(self):
        """RecBole's device set-up, plus multi-process training without GPUs (gloo on CPU),
        so DDP runs, and is tested, on any machine."""
        import torch

        distributed = "local_rank" in self.final_config_dict
        if not distributed or torch.cuda.is_available():
            return super()._init_device()
        config = self.final_config_dict
        config["gpu_id"] = ""
        torch.distributed.init_process_group(
            backend="gloo", rank=config["local_rank"] + (config["offset"] or 0),
            world_size=config["world_size"], init_method=f"tcp://{config['ip']}:{config['port']}")
        config.update(device=torch.device("cpu"), single_spec=False)
        if config["local_rank"] != 0:
            config.update(state="error", show_progress=False, verbose=False)

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(model, model_class, dataset)
        for path in _yaml_layers(model_class, dataset):
            self._update_internal_config_dict(str(path))
