from recbole_microlens.model.sequential_recommender.gru4rec import GRU4Rec, GRU4RecV
from recbole_microlens.model.sequential_recommender.nextitnet import NextItNet, NextItNetV
from recbole_microlens.model.sequential_recommender.sasrec import SASRec, SASRecV

__all__ = ["GRU4Rec", "GRU4RecV", "NextItNet", "NextItNetV", "SASRec", "SASRecV"]
