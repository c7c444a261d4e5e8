"""The official MicroLens training loss: in-batch softmax with logQ correction.

Every position of a user's window predicts its next item among the items of the batch; each logit
is corrected by ``-log p(item)`` (training popularity), and candidates from the user's own window
other than the position's label are masked, so a user's other positives are never pushed down as
negatives. Every model trained with it ends in :func:`logq_cross_entropy`: the sequential models
through :func:`inbatch_logq_loss` (one row per window position), the CF models of
``general_recommender`` through their ``[B, C]`` scores.

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
    """(candidate ids [C], label column of each labelled position, copies [C]): the distinct
    labels, each once."""
    candidate_ids, labels = torch.unique(targets[labelled], return_inverse=True)
    return candidate_ids, labels, torch.ones_like(candidate_ids)


def slot_candidates(targets: torch.Tensor, labelled: torch.Tensor, user_items: torch.Tensor):
    """(candidate ids [C], label column of each labelled position, copies [C]): every filled
    slot of the batch's windows, as its distinct items and how many slots each fills.

    A softmax over S slots holding C distinct items equals a softmax over the C items with
    ``log(copies)`` added to each logit, so the slots never become [P, S] logits."""
    candidate_ids, copies = torch.unique(user_items[user_items > 0], return_counts=True)
    labels = torch.searchsorted(candidate_ids, targets[labelled])
    if not torch.equal(candidate_ids[labels.clamp(max=len(candidate_ids) - 1)], targets[labelled]):
        raise ValueError("a label is missing from the batch's windows (user_items)")
    return candidate_ids, labels, copies


CANDIDATES = {"unique": unique_candidates, "slots": slot_candidates}


def own_window_columns(user_items: torch.Tensor, candidate_ids: torch.Tensor):
    """(column [B, M], present [B, M]): where each item of a row's own window sits among the
    sorted candidates, and whether it is a candidate at all (padding and, for ``unique``, items
    nobody has as a label are not)."""
    columns = torch.searchsorted(candidate_ids, user_items).clamp(max=len(candidate_ids) - 1)
    return columns, (candidate_ids[columns] == user_items) & (user_items > 0)


def logq_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, own_rows: torch.Tensor,
                       own_columns: torch.Tensor) -> torch.Tensor:
    """The one in-batch loss: mean cross-entropy of logQ-corrected logits, with each row's own
    items other than its label masked out (a user's other positives are never negatives).

    logits [P, C]: scores already corrected by ``-log p(item)`` (overwritten in place: they are
    the one large tensor); labels [P]: each row's label column; own_rows, own_columns [K]: the
    (row, column) pairs of each row's own items (its label may be among them: it stays).
    """
    not_label = own_columns != labels[own_rows]
    logits.index_put_((own_rows[not_label], own_columns[not_label]),
                      logits.new_tensor(float("-inf")))
    return F.cross_entropy(logits, labels)


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

    The [P, C] logits are the one large tensor: the bias is fused into their matmul and the
    user's own items are set to -inf by index (P x M writes), never through a [P, C] mask.
    """
    labelled = targets > 0
    candidate_ids, labels, copies = CANDIDATES[candidates](targets, labelled, user_items)
    positions = torch.arange(len(labels), device=labels.device)
    bias = -log_popularity[candidate_ids]
    if candidates == "slots":
        # Each item weighs as many slots as it fills; a label only its own slot (its other
        # copies are items of the user's own window, masked below like the rest of it).
        log_copies = copies.to(bias.dtype).log()
        bias = bias + log_copies
    items = embed_items(candidate_ids)
    with torch.autocast(hidden.device.type, enabled=False):  # logQ and softmax in float32
        logits = torch.addmm(bias.float(), hidden[labelled].float(), items.float().T)
    if candidates == "slots":
        logits.index_put_((positions, labels), -log_copies[labels].to(logits.dtype),
                          accumulate=True)
    row_of_position = torch.nonzero(labelled, as_tuple=True)[0]
    columns, present = own_window_columns(user_items, candidate_ids)
    columns, present = columns[row_of_position], present[row_of_position]  # [P, M]
    if candidates == "slots":
        is_label = present & (columns == labels.unsqueeze(1))
        if not is_label.any(dim=1).all():
            raise ValueError("a label is missing from its own row of user_items")
    own_rows = positions.unsqueeze(1).expand_as(columns)[present]
    return logq_cross_entropy(logits, labels, own_rows, columns[present])
