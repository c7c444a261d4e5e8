"""RecBole's Config with two changes (as RecBole-GNN does it): our models resolve first, and our
yaml layers on top of RecBole's before config files and the command line."""
from __future__ import annotations

import inspect
from pathlib import Path

import yaml

from recbole.config import Config
from recbole.utils import ModelType

from recbole_microlens import compat

from recbole_microlens.config import run_id
from recbole_microlens.config.check import (
    EXTRA_KEYS,
    check_known_keys,
    check_ranges,
    check_switches,
    known_defaults,
    typed_value,
)
from recbole_microlens.model import get_model, register_model
from recbole_microlens.paths import properties_dir, yaml_file
from recbole_microlens.errors import ConfigError, MissingInputError

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
        raise MissingInputError(f"{path}: no such yaml file for dataset {name!r}")
    DATASET_LAYERS.setdefault(name, [])
    if path not in DATASET_LAYERS[name]:
        DATASET_LAYERS[name].append(path)


def _model_layers(model_class) -> list:
    """The model's defaults, parents first: for each class of its lineage, mixins included
    (SASRecV reads SASRec.yaml, then VideoRec.yaml, then its own), ``properties/model/<Name>.yaml``
    or, for a class defined outside the package, ``<Name>.yaml`` beside its module; and a class's
    own ``config_defaults`` dict (keys declared in code)."""
    root = properties_dir()
    layers = []
    for cls in reversed(model_class.__mro__[:-1]):  # all but ``object``
        layers.append(root / "model" / f"{cls.__name__}.yaml")
        beside = _yaml_beside(cls)
        if beside is not None:
            layers.append(beside)
        if "config_defaults" in vars(cls):
            layers.append(dict(cls.config_defaults))
    return layers


def _yaml_beside(cls) -> Path | None:
    """``<Name>.yaml`` in the folder of the module defining ``cls``, for classes of other packages."""
    if cls.__module__.split(".")[0] in ("recbole_microlens", "recbole", "torch"):
        return None
    try:
        return Path(inspect.getfile(cls)).with_name(f"{cls.__name__}.yaml")
    except (TypeError, OSError):  # a class without a source file
        return None


def _yaml_layers(model_class, dataset: str) -> list:
    """Our config layers for this run (yaml paths, or dicts of model defaults), in the order they
    apply (later wins)."""
    root = properties_dir()
    layers = [root / "overall.yaml", root / f"{TYPE_LAYERS.get(model_class.type, '-')}.yaml"]
    layers += _model_layers(model_class)
    layers.append(root / "dataset" / f"{dataset}.yaml")
    layers += DATASET_LAYERS.get(dataset, [])
    return [layer for layer in layers if isinstance(layer, dict) or layer.is_file()]


def resolve_config_files(config_file_list):
    """Config files by path, or by the name of a packaged profile (``properties/profile/``,
    e.g. ``reference``: the reference code's training)."""
    if not config_file_list:
        return config_file_list
    return [str(yaml_file(name, PROFILE_FOLDER, "config file or profile"))
            for name in config_file_list]


class MLConfig(Config):
    """``Config`` that knows recbole-microlens models and properties, and is strict: unknown keys
    and out-of-range values are errors (``config_check``), and it never reads ``sys.argv``: the
    entry points parse the command line (``config_check.parse_overrides``) into ``config_dict``.
    Each run gets a ``run_id`` unique across processes, which names its checkpoint and log."""

    def __init__(self, model=None, dataset=None, config_file_list=None, config_dict=None):
        compat.apply()
        super().__init__(model, dataset, resolve_config_files(config_file_list), config_dict)

    def _load_config_files(self, file_list):
        self._config_files = list(file_list or [])  # checked, file by file, in _check_keys
        for path in self._config_files:  # a yaml error names its file
            try:
                yaml.load(Path(path).read_text(encoding="utf-8"), Loader=self.yaml_loader)
            except (yaml.YAMLError, UnicodeDecodeError) as error:
                raise ConfigError(f"config file {path} is not valid yaml: "
                                  f"{' '.join(str(error).split())}") from None
        return super()._load_config_files(file_list)

    def _load_cmd_line(self):
        """RecBole would ``eval`` every ``--key=value`` of ``sys.argv`` (a Ray worker's too)."""
        return {}

    def _convert_config_dict(self, config_dict):
        """RecBole ``eval``s every string value (``id.json`` -> the builtin ``id``...);
        read them as literals instead, and keep path-like values strings."""
        return {key: typed_value(key, value) if isinstance(value, str) else value
                for key, value in config_dict.items()}

    def _set_default_parameters(self):
        self._check_keys()
        super()._set_default_parameters()
        check_ranges(self.final_config_dict)
        check_switches(self.final_config_dict)
        self.final_config_dict["run_id"] = self.final_config_dict.get("run_id") or run_id.new_run_id()

    def _check_keys(self) -> None:
        known = set(known_defaults()) | set(self.internal_config_dict)
        extra = self.final_config_dict.get(EXTRA_KEYS) or ()
        for path in self._config_files:
            with open(path, encoding="utf-8") as handle:
                keys = yaml.load(handle.read(), Loader=self.yaml_loader) or {}
            check_known_keys(keys, f"config file {path}", known, extra)
        check_known_keys(self.variable_config_dict, "config_dict (or --key=value)", known, extra)

    def _get_model_and_dataset(self, model, dataset):
        if isinstance(model, str) or model is None:
            model = model or self.external_config_dict.get("model")
            if model is None:
                raise ConfigError("model must be given (argument, config file, dict or --model=)")
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
        for layer in _yaml_layers(model_class, dataset):
            if isinstance(layer, dict):
                self.internal_config_dict.update(layer)
            else:
                self._update_internal_config_dict(str(layer))
