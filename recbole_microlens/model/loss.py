"""The official MicroLens training loss: in-batch softmax with logQ correction.

Every position of a user's window predicts its next item among the distinct items of the batch;
each logit is corrected by ``-log p(item)`` (training popularity), and candidates from the user's
own window other than the position's label are masked, so a user's other positives are never
pushed down as negatives.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def window_targets(item_seq: torch.Tensor, item_seq_len: torch.Tensor, next_item: torch.Tensor):
    """Label of every position: the item after it in the window (0 beyond the sequence)."""
    targets = torch.zeros_like(item_seq)
    targets[:, :-1] = item_seq[:, 1:]
    rows = torch.arange(item_seq.size(0), device=item_seq.device)
    targets[rows, item_seq_len - 1] = next_item
    positions = torch.arange(item_seq.size(1), device=item_seq.device)
    return targets.masked_fill(positions.unsqueeze(0) >= item_seq_len.unsqueeze(1), 0)


def inbatch_logq_loss(
    hidden: torch.Tensor,
    targets: torch.Tensor,
    embed_items,
    log_popularity: torch.Tensor,
    user_items: torch.Tensor,
) -> torch.Tensor:
    """Mean cross-entropy over the non-padding positions.

    hidden [B, L, H] position outputs; targets [B, L] labels (0 = no label); embed_items maps
    candidate ids [C] to [C, H]; log_popularity [n_items]; user_items [B, M] the ids of each row's
    own window (0 = padding).
    """
    labelled = targets > 0
    candidates, labels = torch.unique(targets[labelled], return_inverse=True)
    logits = hidden[labelled] @ embed_items(candidates).T - log_popularity[candidates]
    row_of_position = torch.nonzero(labelled, as_tuple=True)[0]
    seen = (user_items.unsqueeze(2) == candidates.view(1, 1, -1)).any(dim=1)  # [B, C]
    mask = seen[row_of_position]
    mask[torch.arange(len(labels), device=labels.device), labels] = False
    return F.cross_entropy(logits.masked_fill(mask, float("-inf")), labels)
