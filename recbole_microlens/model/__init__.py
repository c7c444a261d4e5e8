"""Model lookup: ours first, then RecBole's (as RecBole-GNN resolves models)."""
from __future__ import annotations

from recbole.utils import get_model as recbole_get_model

from recbole_microlens.model import general_recommender, sequential_recommender

MODELS = {name: getattr(sequential_recommender, name) for name in sequential_recommender.__all__}
MODELS.update({name: getattr(general_recommender, name) for name in general_recommender.__all__})


def get_model(name: str):
    """The model class called ``name``: ours if we define it, else RecBole's."""
    if name in MODELS:
        return MODELS[name]
    try:
        return recbole_get_model(name)
    except (ValueError, ImportError) as error:  # RecBole also imports optional libraries here
        raise ValueError(
            f"unknown model {name!r}: not one of ours ({', '.join(sorted(MODELS))}) "
            f"nor found in RecBole ({error})"
        ) from error
