"""SASRec with side features beside the item ID (paper Table 11: SASRecID+Pop, +Tag, +Pop+Tag).

It is SASRec with the ``id+side`` item tower (recbole_microlens/model/layers.py) switched on:
the item ID embedding averaged with one embedding per side feature of the ``.item`` file
(``pop_bin``, ``tags``). Defaults: properties/model/SASRecSide.yaml.
"""
from __future__ import annotations

from recbole_microlens.model.sequential_recommender.sasrec import SASRec


class SASRecSide(SASRec):
    """SASRec over ID + side-feature item vectors (``side_features``). Defaults:
    properties/model/SASRecSide.yaml."""
