"""SASRecID+V (Table 2, VIDRec): SASRec over item vectors that fuse the learned ID embedding with
frozen, pre-extracted item features. Nothing but configuration separates it from SASRec: the
``id+features`` ItemTower (``features_file``, ``fusion: sum | concat``)."""
from __future__ import annotations

from recbole_microlens.model.sequential_recommender.sasrec import SASRec


class SASRecIDV(SASRec):
    """SASRec with ``item_tower: id+features``. Defaults: properties/model/SASRecIDV.yaml."""
