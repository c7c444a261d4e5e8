"""Model lookup: registered models first (ours and yours), then installed plugins (the entry point
group ``recbole_microlens.models``), then RecBole's (as RecBole-GNN resolves models).
``register_model`` adds a class; ``--model=package.module.Class`` imports one."""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from pathlib import Path

from recbole.utils import get_model as recbole_get_model

from recbole_microlens.model import general_recommender, sequential_recommender
from recbole_microlens.errors import ConfigError

MODELS = {name: getattr(sequential_recommender, name) for name in sequential_recommender.__all__}
MODELS.update({name: getattr(general_recommender, name) for name in general_recommender.__all__})
RECBOLE_MODEL_FOLDERS = ("general_recommender", "context_aware_recommender",
                         "sequential_recommender", "knowledge_aware_recommender",
                         "exlib_recommender")
#: installed packages name their models here: ``[recbole_microlens.models] LSTMRec = pkg.mod:LSTMRec``
ENTRY_POINT_GROUP = "recbole_microlens.models"


def register_model(model_class=None, *, name: str | None = None):
    """Make ``model_class`` resolvable by name (``--model=Name``, checkpoints); also a decorator.

    A subclass of one of our models inherits its yaml (``properties/model/<Parent>.yaml``).
    """
    def register(cls):
        key = name or cls.__name__
        if MODELS.get(key, cls) is not cls:
            raise ValueError(f"model name {key!r} is taken by {MODELS[key].__module__}."
                             f"{MODELS[key].__qualname__}")
        MODELS[key] = cls
        return cls

    return register if model_class is None else register(model_class)


def get_model(name: str):
    """The model class called ``name``: registered (ours or yours), an installed plugin's entry
    point, a dotted ``module.Class`` path (imported and registered), else RecBole's."""
    if name in MODELS:
        return MODELS[name]
    plugin = _entry_point(name)
    if plugin is not None:
        return register_model(plugin, name=name)
    if "." in name:
        return register_model(_import_class(name))
    if not _is_recbole_model(name):
        raise ConfigError(
            f"unknown model {name!r}: not registered ({', '.join(sorted(MODELS))}) nor a RecBole "
            "model; register your class with recbole_microlens.model.register_model, or pass "
            "--model=package.module.ClassName")
    try:
        return recbole_get_model(name)
    except ImportError as error:  # a RecBole model whose optional library is missing
        raise ConfigError(f"RecBole model {name!r} needs a library that is not installed: "
                          f"{error}") from error


def _entry_point(name: str):
    """The class an installed package declares as ``name`` in ENTRY_POINT_GROUP, or None."""
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == name:
            try:
                return _model_class(entry.load(), entry.value)
            except (ImportError, AttributeError) as error:
                raise ValueError(f"model {name!r} of the installed package "
                                 f"{entry.dist.name if entry.dist else '?'} ({entry.value}) "
                                 f"cannot be imported: {error}") from error
    return None


def _import_class(path: str):
    module_name, _, class_name = path.rpartition(".")
    try:
        return _model_class(getattr(importlib.import_module(module_name), class_name), path)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"model {path!r} cannot be imported: {error}") from error


def _model_class(found, where: str):
    """``found`` if it is a RecBole model class (a checkpoint or a command line names it)."""
    from recbole.model.abstract_recommender import AbstractRecommender

    if not (isinstance(found, type) and issubclass(found, AbstractRecommender)):
        raise ValueError(f"{where!r} is not a model class (a subclass of RecBole's "
                         f"AbstractRecommender): {found!r}")
    return found


def _is_recbole_model(name: str) -> bool:
    """Whether RecBole ships ``name`` (looked up by file, so that RecBole's optional libraries,
    e.g. lightgbm for its exlib models, are imported only for the models that need them)."""
    root = Path(importlib.util.find_spec("recbole.model").submodule_search_locations[0])
    return any((root / folder / f"{name.lower()}.py").is_file() for folder in RECBOLE_MODEL_FOLDERS)
