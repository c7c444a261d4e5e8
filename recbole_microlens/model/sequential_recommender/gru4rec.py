"""GRU4Rec (Hidasi et al., 2016; Tan et al.'s improved variant as in RecBole)."""
from __future__ import annotations

from torch import nn

from recbole_microlens.model.sequential_recommender.base import MLSequentialRecommender, VideoRec


class GRU4Rec(MLSequentialRecommender):
    item_dim_key = "embedding_size"

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.emb_dropout = nn.Dropout(config["dropout_prob"])
        self.gru_layers = nn.GRU(
            input_size=self.item_dim,
            hidden_size=config["hidden_size"],
            num_layers=config["num_layers"],
            bias=False,
            batch_first=True,
        )
        self.dense = nn.Linear(config["hidden_size"], self.item_dim)
        self.init_weights()
        for name, param in self.gru_layers.named_parameters():
            if "weight" in name:
                nn.init.xavier_uniform_(param)

    def encode(self, item_emb, item_seq, item_seq_len):
        states, _ = self.gru_layers(self.emb_dropout(item_emb))
        return self.dense(states)


class GRU4RecV(VideoRec, GRU4Rec):
    """VideoRec: GRU4Rec with the item ID embedding replaced by a content encoder trained end to end
    (video by default; covers or titles by `item_modality`). Defaults: properties/model/VideoRec.yaml."""
