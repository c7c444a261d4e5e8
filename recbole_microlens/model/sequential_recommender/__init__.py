from recbole_microlens.model.sequential_recommender.gru4rec import GRU4Rec, GRU4RecV
from recbole_microlens.model.sequential_recommender.nextitnet import NextItNet, NextItNetV
from recbole_microlens.model.sequential_recommender.sasrec import SASRec, SASRecV
from recbole_microlens.model.sequential_recommender.sasrec_id_v import SASRecIDV
from recbole_microlens.model.sequential_recommender.sasrec_side import SASRecSide

__all__ = ["GRU4Rec", "GRU4RecV", "NextItNet", "NextItNetV", "SASRec", "SASRecIDV", "SASRecSide",
           "SASRecV"]
