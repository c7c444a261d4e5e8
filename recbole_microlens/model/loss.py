"""The official MicroLens training loss: in-batch softmax with logQ correction.

Every position of a user's window predicts its next item among the items of the batch; each logit
is corrected by ``-log p(item)`` (training popularity), and candidates from the user's own window
other than the position's label are masked, so a user's other positives are never pushed down as
negatives.

Which items of the batch are candidates (``inbatch_candidates``):

* ``slots`` (the reference code): every non-padding slot of the batch's windows, duplicates kept.
  A popular item sits in many windows and so appears several times among the negatives: this is
  the sampled softmax whose sampling bias the ``-log p(item)`` term corrects.
* ``unique``: each distinct labelled item once, so popular negatives weigh less than logQ
  assumes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

CANDIDATE_SETS = ("slots", "unique")


def window_targets(item_seq: torch.Tensor, item_seq_len: torch.Tensor, next_item: torch.Tensor):
    """Label of every position: the item after it in the window (0 beyond the sequence)."""
    targets = torch.zeros_like(item_seq)
    targets[:, :-1] = item_seq[:, 1:]
    rows = torch.arange(item_seq.size(0), device=item_seq.device)
    targets[rows, item_seq_len - 1] = next_item
    positions = torch.arange(item_seq.size(1), device=item_seq.device)
    return targets.masked_fill(positions.unsqueeze(0) >= item_seq_len.unsqueeze(1), 0)


def unique_candidates(targets: torch.Tensor, labelled: torch.Tensor, user_items: torch.Tensor):
    """(candidate ids [C], label column of each labelled position): the distinct labels."""
    return torch.unique(targets[labelled], return_inverse=True)


def slot_candidates(targets: torch.Tensor, labelled: torch.Tensor, user_items: torch.Tensor):
    """(candidate ids [S], label column of each labelled position): every filled slot of the
    batch's windows, duplicates kept; a position's label is the slot of its target in its own
    row (any copy elsewhere of an item of the user's window is masked)."""
    filled = user_items > 0
    candidates = user_items[filled]
    slot_rows = torch.nonzero(filled, as_tuple=True)[0]
    rows = torch.nonzero(labelled, as_tuple=True)[0]
    own_slot = (slot_rows.unsqueeze(0) == rows.unsqueeze(1)) & (
        candidates.unsqueeze(0) == targets[labelled].unsqueeze(1))
    if not own_slot.any(dim=1).all():
        raise ValueError("a label is missing from its own row of user_items")
    return candidates, own_slot.to(torch.uint8).argmax(dim=1)


CANDIDATES = {"unique": unique_candidates, "slots": slot_candidates}


def inbatch_logq_loss(
    hidden: torch.Tensor,
    targets: torch.Tensor,
    embed_items,
    log_popularity: torch.Tensor,
    user_items: torch.Tensor,
    candidates: str = "unique",
) -> torch.Tensor:
    """Mean cross-entropy over the non-padding positions.

    hidden [B, L, H] position outputs; targets [B, L] labels (0 = no label); embed_items maps
    candidate ids [C] to [C, H]; log_popularity [n_items]; user_items [B, M] the ids of each row's
    own window (0 = padding), every label among them; candidates: ``unique`` or ``slots``.
    """
    labelled = targets > 0
    candidate_ids, labels = CANDIDATES[candidates](targets, labelled, user_items)
    logits = hidden[labelled] @ embed_items(candidate_ids).T - log_popularity[candidate_ids]
    row_of_position = torch.nonzero(labelled, as_tuple=True)[0]
    seen = (user_items.unsqueeze(2) == candidate_ids.view(1, 1, -1)).any(dim=1)  # [B, C]
    mask = seen[row_of_position]
    mask[torch.arange(len(labels), device=labels.device), labels] = False
    return F.cross_entropy(logits.masked_fill(mask, float("-inf")), labels)
