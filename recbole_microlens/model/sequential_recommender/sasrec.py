"""SASRec (Kang & McAuley, 2018): causal self-attention over the window."""
from __future__ import annotations

import torch
from torch import nn
from recbole.model.layers import TransformerEncoder

from recbole_microlens.model.packed_transformer import Packing, packed_encoder
from recbole_microlens.model.sequential_recommender.base import MLSequentialRecommender, VideoRec


class SASRec(MLSequentialRecommender):
    item_dim_key = "hidden_size"

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.position_embedding = nn.Embedding(self.max_seq_length, self.item_dim)
        self.trm_encoder = TransformerEncoder(
            n_layers=config["n_layers"],
            n_heads=config["n_heads"],
            hidden_size=self.item_dim,
            inner_size=config["inner_size"] or 4 * self.item_dim,
            hidden_dropout_prob=config["hidden_dropout_prob"],
            attn_dropout_prob=config["attn_dropout_prob"],
            hidden_act=config["hidden_act"],
            layer_norm_eps=config["layer_norm_eps"],
        )
        self.layer_norm = nn.LayerNorm(self.item_dim, eps=config["layer_norm_eps"])
        self.dropout = nn.Dropout(config["hidden_dropout_prob"])
        self.init_weights()

    def encode(self, item_emb, item_seq, item_seq_len):
        """Only the filled positions go through the position-wise layers (``packed_transformer``);
        their states equal RecBole's encoder's, padding's are zeros."""
        positions = torch.arange(item_seq.size(1), device=item_seq.device)
        packing = Packing(item_seq > 0)
        tokens = packing.pack(item_emb + self.position_embedding(positions))
        tokens = self.dropout(self.layer_norm(tokens))
        tokens = packed_encoder(self.trm_encoder, tokens, packing, self.get_attention_mask(item_seq))
        return packing.unpack(tokens)


class SASRecV(VideoRec, SASRec):
    """VideoRec: SASRec with the item ID embedding replaced by a content encoder trained end to end
    (video by default; covers or titles by `item_modality`). Defaults: properties/model/VideoRec.yaml."""
