"""Title encoders: BERT-shaped transformers built from a config, as ordered blocks.

Input is ``{"input_ids": [N, L], "attention_mask": [N, L]}``. Blocks pass a ``(hidden, mask)``
pair, so a cached trunk output still knows which tokens are padding, and the last block is a
masked mean pool (the sentence-transformers pooling, with which MiniLM was trained).
"""
from __future__ import annotations

from functools import partial

import torch
from torch import nn
from transformers import BertConfig, BertModel

from recbole_microlens.encoders.base import Blocks, Builder, InputSpec
from recbole_microlens.encoders.formats import CheckpointFormat, KeyRule


HiddenAndMask = tuple[torch.Tensor, torch.Tensor]

# Shapes of the published checkpoints; vocabulary 30522 (BERT uncased WordPiece) unless overridden.
BERT_SMALL = {"hidden_size": 512, "num_hidden_layers": 4, "num_attention_heads": 8, "intermediate_size": 2048}
BERT_TINY = {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 512}
MINILM_L6 = {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536}

BERT_FORMAT = CheckpointFormat(
    expected="a Hugging Face BERT folder (config.json + model.safetensors or pytorch_model.bin)",
    rules=(
        KeyRule(r"^(bert\.)?embeddings\.", "blocks.0.embeddings."),
        KeyRule(r"^(bert\.)?encoder\.layer\.(?P<i>\d+)\.", "blocks.{i}.layer.", shift=1),
    ),
    # The pooler and pre-training heads are unused; position_ids is a constant buffer.
    ignored=(r"^(bert\.)?pooler\.", r"^cls\.", r"position_ids$"),
)


class BertEmbed(nn.Module):
    """Token ids -> embeddings, with the attention mask carried along."""

    def __init__(self, embeddings: nn.Module):
        super().__init__()
        self.embeddings = embeddings

    def forward(self, text: dict[str, torch.Tensor]) -> HiddenAndMask:
        return self.embeddings(input_ids=text["input_ids"]), text["attention_mask"]


class BertBlock(nn.Module):
    """One transformer layer; padding tokens are masked out of attention."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, hidden_and_mask: HiddenAndMask) -> HiddenAndMask:
        hidden, mask = hidden_and_mask
        blocked = 1.0 - mask[:, None, None, :].to(hidden.dtype)
        additive_mask = blocked * torch.finfo(hidden.dtype).min
        output = self.layer(hidden, attention_mask=additive_mask)
        # transformers 4 returns a tuple (hidden, attentions...); 5 returns the hidden tensor
        return (output[0] if isinstance(output, tuple) else output), mask


def token_lengths(mask: torch.Tensor) -> torch.Tensor:
    """Real tokens per row of a right-padded ``[N, L]`` mask (BERT tokenizers pad on the right)."""
    return mask.sum(dim=1)


def trim_padding(value, width: int | None = None):
    """Token inputs (dict) or ``(hidden, mask)`` cut to ``width`` columns (default: the longest
    real row). Exact: trailing padding is masked out of attention and of the pool, so no real
    token's output depends on it; it only costs compute."""
    if isinstance(value, dict):
        mask = value["attention_mask"]
        width = width or int(token_lengths(mask).max())
        return {key: tensor[:, :width] for key, tensor in value.items()}
    hidden, mask = value
    width = width or int(token_lengths(mask).max())
    return hidden[:, :width], mask[:, :width]


class MaskedMeanPool(nn.Module):
    """``(hidden [N, L, D], mask [N, L]) -> [N, D]``: mean over the real tokens."""

    def forward(self, hidden_and_mask: HiddenAndMask) -> torch.Tensor:
        hidden, mask = hidden_and_mask
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


def build_bert(shape: dict, spec_input: InputSpec, overrides: dict) -> Blocks:
    """A randomly initialised BERT of ``shape`` (``overrides`` may set any BertConfig field,
    e.g. ``vocab_size`` for a tokenizer trained on the titles)."""
    config = BertConfig(**{**shape, **overrides})
    model = BertModel(config, add_pooling_layer=False)
    layers = [BertBlock(layer) for layer in model.encoder.layer]
    return [BertEmbed(model.embeddings), *layers, MaskedMeanPool()], config.hidden_size


def bert_builder(shape: dict) -> Builder:
    return partial(build_bert, shape)
