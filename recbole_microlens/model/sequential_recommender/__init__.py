from recbole_microlens.model.sequential_recommender.gru4rec import GRU4Rec
from recbole_microlens.model.sequential_recommender.nextitnet import NextItNet
from recbole_microlens.model.sequential_recommender.sasrec import SASRec

__all__ = ["GRU4Rec", "NextItNet", "SASRec"]
