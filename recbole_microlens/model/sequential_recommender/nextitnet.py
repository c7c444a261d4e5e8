"""NextItNet (Yuan et al., 2019): stacked dilated causal convolutions."""
from __future__ import annotations

from torch import nn
from recbole.model.sequential_recommender.nextitnet import ResidualBlock_b

from recbole_microlens.model.sequential_recommender.base import MLSequentialRecommender, VideoRec


class NextItNet(MLSequentialRecommender):
    item_dim_key = "embedding_size"

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        dim = self.item_dim
        dilations = config["dilations"] * config["block_num"]
        self.residual_blocks = nn.Sequential(
            *[
                ResidualBlock_b(dim, dim, kernel_size=config["kernel_size"], dilation=d)
                for d in dilations
            ]
        )
        self.final_layer = nn.Linear(dim, dim)
        self.init_weights()

    def encode(self, item_emb, item_seq, item_seq_len):
        return self.final_layer(self.residual_blocks(item_emb))


class NextItNetV(VideoRec, NextItNet):
    """VideoRec: NextItNet with the item ID embedding replaced by a content encoder trained end to end
    (video by default; covers or titles by `item_modality`). Defaults: properties/model/VideoRec.yaml."""
