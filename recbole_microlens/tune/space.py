"""The search space: a tune yaml parsed and checked, its axes as Ray domains, and the paper's
embedding size written into each model's own keys."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from recbole_microlens.config.check import check_ranges
from recbole_microlens.errors import ConfigError
from recbole_microlens.paths import properties_dir, yaml_file

# The selection metric: valid NDCG@10 of the trial's best epoch (so far, while it trains).
SELECTION = "valid_ndcg@10"
# The paper's "embedding size": one logical key, written into each model's ``item_dim_key``.
EMBEDDING_SIZE = "embedding_size"
# Keys that scale with an item dimension key wherever a model has that key: a Transformer's
# feed-forward width is 4 x its hidden size (as SASRec's ``inner_size: ~`` default is).
FOLLOWS_ITEM_DIM = {"hidden_size": {"inner_size": 4}}
SETUP = "setup"  # the param_space entry holding what every trial shares (restored with --resume)
SPEC_KEYS = {"search_space", "optional_space", "fixed", "num_samples", "asha"}


@dataclass(frozen=True)
class TuneSpec:
    """A parsed tune yaml: what is swept and what is fixed."""

    name: str
    search_space: dict
    fixed: dict = field(default_factory=dict)
    num_samples: int = 1
    asha: dict = field(default_factory=dict)


class _TuneYamlLoader(yaml.SafeLoader):
    """Reads ``1e-5`` as a float, as RecBole's config files do (plain YAML reads a string)."""


_TuneYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def packaged_tune_configs() -> list[str]:
    return sorted(path.stem for path in (properties_dir() / "tune").glob("*.yaml"))


def tune_config_path(name_or_path: str | os.PathLike) -> Path:
    """A yaml file, or the name of a packaged one (``paper``, ``sample``)."""
    return yaml_file(name_or_path, "tune", "tune config")


def load_tune_spec(tune_config: str | os.PathLike | dict, axes=()) -> TuneSpec:
    """Parse a tune yaml (path, packaged name or dict); ``axes`` adds optional axes to the sweep."""
    if isinstance(tune_config, dict):
        name, raw = "custom", tune_config
    else:
        path = tune_config_path(tune_config)
        name, raw = path.stem, yaml.load(path.read_text(encoding="utf-8"), _TuneYamlLoader) or {}
    unknown = set(raw) - SPEC_KEYS
    if unknown:
        raise ConfigError(f"tune config {name}: unknown sections {sorted(unknown)}; "
                          f"expected {sorted(SPEC_KEYS)}")
    space = dict(raw.get("search_space") or {})
    optional = raw.get("optional_space") or {}
    missing = [axis for axis in axes if axis not in optional]
    if missing:
        raise ConfigError(f"tune config {name}: no optional axes {missing}; "
                          f"it has {sorted(optional)}")
    space.update({axis: optional[axis] for axis in axes})
    if not space:
        raise ConfigError(f"tune config {name}: search_space is empty")
    for key, value in space.items():  # validate every axis before anything starts
        search_domain(key, value)
        check_axis_ranges(name, key, value)
    return TuneSpec(name, space, dict(raw.get("fixed") or {}), int(raw.get("num_samples", 1)),
                    dict(raw.get("asha") or {}))


def _samplers() -> dict:
    from ray import tune

    return {
        "grid_search": tune.grid_search,
        "choice": tune.choice,
        "uniform": lambda bounds: tune.uniform(*bounds),
        "loguniform": lambda bounds: tune.loguniform(*bounds),
        "randint": lambda bounds: tune.randint(*bounds),
    }


def search_domain(key: str, value):
    """A yaml axis as a Ray search domain: a list is a grid, ``{form: args}`` a sampler."""
    samplers = _samplers()
    if isinstance(value, list) and value:
        return samplers["grid_search"](value)
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in samplers:
        form, args = next(iter(value.items()))
        try:
            return samplers[form](args)
        except (TypeError, ValueError) as error:  # Ray's own checks of the bounds
            raise ConfigError(f"search_space.{key}: {form} {args!r}: {error}") from None
    raise ConfigError(f"search_space.{key}: expected a non-empty list (grid) or one of "
                      f"{{{', '.join(samplers)}: ...}}, got {value!r}")


def check_axis_ranges(name: str, key: str, value) -> None:
    """Every value an axis can take (grid points, choices, sampler bounds) passes the command
    line's range checks: a sweep of negative learning rates fails here, not in every trial."""
    values = value if isinstance(value, list) else next(iter(value.values()))
    for point in values if isinstance(values, (list, tuple)) else [values]:
        try:
            check_ranges({key: point})
        except ConfigError as error:
            raise ConfigError(f"tune config {name}: search_space.{key}: {error}") from None


def param_space(spec: TuneSpec, setup: dict) -> dict:
    axes = {key: search_domain(key, value) for key, value in spec.search_space.items()}
    return {SETUP: setup, **axes}


def embedding_size_keys(model: str) -> dict[str, int]:
    """The model's own keys for the paper's embedding size: its class's ``item_dim_key``
    (RecBole's own models: ``embedding_size``), plus the keys that follow that one."""
    from recbole_microlens.model import get_model

    item_dim_key = getattr(get_model(model), "item_dim_key", EMBEDDING_SIZE)
    return {item_dim_key: 1, **FOLLOWS_ITEM_DIM.get(item_dim_key, {})}


def model_settings(model: str, settings: dict) -> dict:
    """``settings`` with the logical ``embedding_size`` written as the model's own keys."""
    settings = dict(settings)
    if EMBEDDING_SIZE in settings:
        size = settings.pop(EMBEDDING_SIZE)
        settings.update({key: factor * size for key, factor in embedding_size_keys(model).items()})
    return settings
