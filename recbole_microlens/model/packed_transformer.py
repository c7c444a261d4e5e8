"""RecBole's TransformerEncoder run on the filled positions of a window only.

MicroLens windows are mostly padding: on MicroLens-50k about 4 of SASRec's 10 positions hold an
item. Every layer of the encoder except attention itself works position by position (projections,
feed-forward, LayerNorm, dropout), so those run on the filled positions alone, as a [N, H] stack;
only the [B, heads, L, L] attention scores see the padded layout. A filled position never attends
to padding (RecBole's mask gives padding -10000, whose softmax weight is exactly 0 in float32), so
the filled positions' outputs equal RecBole's ``TransformerEncoder``'s; padding comes out as zeros.
The modules and parameters are RecBole's own: checkpoints do not change.
"""
from __future__ import annotations

import torch
from recbole.model.layers import MultiHeadAttention, TransformerEncoder


class Packing:
    """Where the filled positions of a [B, L] window sit in its flattened [B * L] layout."""

    def __init__(self, filled: torch.Tensor):
        self.shape = filled.shape
        self.index = torch.nonzero(filled.reshape(-1), as_tuple=True)[0]

    def pack(self, padded: torch.Tensor) -> torch.Tensor:
        """[B, L, H] -> [N, H], the filled positions in row-major order."""
        return padded.reshape(-1, padded.size(-1)).index_select(0, self.index)

    def unpack(self, tokens: torch.Tensor) -> torch.Tensor:
        """[N, H] -> [B, L, H], zeros at padding."""
        flat = tokens.new_zeros(self.shape.numel(), tokens.size(-1))
        return flat.index_copy(0, self.index, tokens).view(*self.shape, -1)


def packed_attention(attention: MultiHeadAttention, tokens: torch.Tensor, packing: Packing,
                     attention_mask: torch.Tensor) -> torch.Tensor:
    """RecBole's ``MultiHeadAttention.forward`` with its projections on the [N, H] tokens."""
    heads, head_size = attention.num_attention_heads, attention.attention_head_size

    def split_heads(projection):
        return packing.unpack(projection(tokens)).view(*packing.shape, heads, head_size)

    query = split_heads(attention.query).permute(0, 2, 1, 3)
    key = split_heads(attention.key).permute(0, 2, 3, 1)
    value = split_heads(attention.value).permute(0, 2, 1, 3)
    scores = torch.matmul(query, key) / attention.sqrt_attention_head_size + attention_mask
    probabilities = attention.attn_dropout(attention.softmax(scores))
    context = torch.matmul(probabilities, value).permute(0, 2, 1, 3)
    context = packing.pack(context.reshape(*packing.shape, attention.all_head_size))
    hidden = attention.out_dropout(attention.dense(context))
    return attention.LayerNorm(hidden + tokens)


def packed_encoder(encoder: TransformerEncoder, tokens: torch.Tensor, packing: Packing,
                   attention_mask: torch.Tensor) -> torch.Tensor:
    """The last layer's output of ``encoder`` for the [N, H] filled tokens."""
    for layer in encoder.layer:
        tokens = packed_attention(layer.multi_head_attention, tokens, packing, attention_mask)
        tokens = layer.feed_forward(tokens)
    return tokens
