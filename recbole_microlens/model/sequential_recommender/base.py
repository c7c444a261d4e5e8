"""Shared body of our sequential recommenders: an ItemTower in, position states out.

A subclass only says how a window of item vectors becomes one state per position
(``encode``); losses, scoring and the item tower are the same for every backbone, which is
what lets SASRec over IDs, video, covers or titles be one model file.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType

from recbole_microlens.model.layers import build_item_tower
from recbole_microlens.model.loss import CANDIDATE_SETS, inbatch_logq_loss, window_targets
from recbole_microlens.model.options import choose
from recbole_microlens.errors import ConfigError

LOSS_TYPES = ("inbatch", "CE")
PADDING_SIDES = ("right", "left")
WEIGHT_INITS = ("normal", "xavier_normal")


def left_align(item_seq: torch.Tensor, item_seq_len: torch.Tensor, width: int) -> torch.Tensor:
    """RecBole's windows (items at 0..len-1, zeros after) moved right in a window of ``width``,
    so that the newest item sits at the last position and the padding comes first (the reference
    code's layout). A narrower window (a caller's own query) is widened first: the newest item
    must land on the position it was trained at, ``width - 1``."""
    if item_seq.size(1) < width:
        item_seq = F.pad(item_seq, (0, width - item_seq.size(1)))
    width = item_seq.size(1)
    positions = torch.arange(width, device=item_seq.device).unsqueeze(0)
    return item_seq.gather(1, (positions - (width - item_seq_len).unsqueeze(1)) % width)


def log_training_popularity(dataset) -> torch.Tensor:
    """log p(item) on training interactions (unseen items count once, so the log is finite)."""
    counts = dataset.train_item_counts().astype(np.float64)
    return torch.from_numpy(np.log(np.maximum(counts, 1.0) / max(counts.sum(), 1.0))).float()


class VideoRec:
    """Mixin of the VideoRec variants, first among the bases (``class SASRecV(VideoRec, SASRec)``):
    the item ID embedding becomes a content encoder trained end to end. It adds no code, only its
    yaml layer (``properties/model/VideoRec.yaml``: an encoder tower over video by default,
    covers or titles by ``item_modality``), read after the backbone's by the config's lineage rule."""


class MLSequentialRecommender(SequentialRecommender):
    input_type = InputType.POINTWISE
    #: config key holding the size of the item vectors the tower produces
    item_dim_key = "hidden_size"

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.loss_type = config["loss_type"]
        if self.loss_type not in LOSS_TYPES:
            raise ConfigError(f"loss_type must be one of {LOSS_TYPES}, got {self.loss_type!r}")
        self.item_dim = config[self.item_dim_key]
        self.padding_side = choose(config, "padding_side", PADDING_SIDES)
        self.weight_init = choose(config, "weight_init", WEIGHT_INITS)
        self.initializer_range = config["initializer_range"]
        self.inbatch_candidates = choose(config, "inbatch_candidates", CANDIDATE_SETS)
        self.item_tower = build_item_tower(config, dataset, self.item_dim)
        self.register_buffer("log_popularity", log_training_popularity(dataset))

    def encode(self, item_emb, item_seq, item_seq_len) -> torch.Tensor:
        """[B, L, D] item vectors -> [B, L, D] states; position t sees items 0..t only."""
        raise NotImplementedError

    def init_weights(self):
        """Initialise the recommender's own layers; a content encoder keeps its weights
        (random from its builder, or loaded from ``encoder_checkpoint``)."""
        encoder = getattr(self.item_tower, "encoder", None)
        skip = set(encoder.modules()) if encoder is not None else set()
        for module in self.modules():
            if module not in skip:
                self._init_weights(module)

    def _init_weights(self, module):
        """RecBole's SASRec initialisation (``weight_init: normal``, N(0, initializer_range)) or
        the reference code's (``xavier_normal``), shared by all our backbones."""
        if isinstance(module, (torch.nn.Linear, torch.nn.Embedding)):
            if self.weight_init == "xavier_normal":
                torch.nn.init.xavier_normal_(module.weight.data)
            else:
                module.weight.data.normal_(mean=0.0, std=self.initializer_range)
        elif isinstance(module, torch.nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)
        if isinstance(module, torch.nn.Linear) and module.bias is not None:
            module.bias.data.zero_()

    def position_states(self, item_seq, item_seq_len) -> torch.Tensor:
        """One state per position, in the layout of ``padding_side`` (``left``: the newest item
        at the last position)."""
        if self.padding_side == "left":
            item_seq = left_align(item_seq, item_seq_len, self.max_seq_length)
        return self.encode(self.item_tower(item_seq), item_seq, item_seq_len)

    def last_positions(self, item_seq_len) -> torch.Tensor:
        """Position of the newest item of each window."""
        if self.padding_side == "left":
            return torch.full_like(item_seq_len, self.max_seq_length - 1)
        return item_seq_len - 1

    def forward(self, item_seq, item_seq_len) -> torch.Tensor:
        """State at the newest item: the user's next-item query."""
        states = self.position_states(item_seq, item_seq_len)
        return self.gather_indexes(states, self.last_positions(item_seq_len))

    def calculate_loss(self, interaction):
        item_seq = interaction[self.ITEM_SEQ]
        item_seq_len = interaction[self.ITEM_SEQ_LEN]
        next_item = interaction[self.POS_ITEM_ID]
        if self.loss_type == "CE":
            logits = self.forward(item_seq, item_seq_len) @ self.item_tower.all_items().T
            return F.cross_entropy(logits, next_item)
        states = self.position_states(item_seq, item_seq_len)
        targets = window_targets(item_seq, item_seq_len, next_item)
        if self.padding_side == "left":
            targets = left_align(targets, item_seq_len, self.max_seq_length)
        user_items = torch.cat([item_seq, next_item.unsqueeze(1)], dim=1)
        return inbatch_logq_loss(states, targets, self.item_tower, self.log_popularity,
                                 user_items, candidates=self.inbatch_candidates)

    def predict(self, interaction):
        query = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        return (query * self.item_tower(interaction[self.ITEM_ID])).sum(dim=-1)

    def query_vectors(self, interaction) -> torch.Tensor:
        """``[B, D]``: each user's query, the state after their window; a score is its dot
        product with :meth:`item_vectors` (what ``export-embeddings`` writes per user)."""
        return self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])

    def item_vectors(self) -> torch.Tensor:
        """``[n_items, D]`` (row 0: padding): the vectors queries are scored against."""
        return self.item_tower.all_items()

    def full_sort_predict(self, interaction):
        return self.query_vectors(interaction) @ self.item_vectors().T
