"""The in-batch logQ loss against a direct, position-by-position computation."""
import math

import pytest
import torch

from recbole_microlens.model.loss import inbatch_logq_loss, slot_candidates, window_targets


def direct_loss(hidden, targets, table, log_pop, user_items):
    """Textbook version: loop over labelled positions, softmax over distinct batch items."""
    candidates = sorted({int(t) for t in targets.flatten() if t > 0})
    losses = []
    for b in range(targets.size(0)):
        own = {int(i) for i in user_items[b] if i > 0}
        for pos in range(targets.size(1)):
            label = int(targets[b, pos])
            if label == 0:
                continue
            logits = []
            for c in candidates:
                if c in own and c != label:
                    continue  # the user's own other items are not negatives
                logits.append((c, float(hidden[b, pos] @ table[c]) - float(log_pop[c])))
            log_norm = math.log(sum(math.exp(v) for _, v in logits))
            losses.append(log_norm - dict(logits)[label])
    return sum(losses) / len(losses)


def test_window_targets_shift_and_pad():
    item_seq = torch.tensor([[3, 4, 5, 0], [7, 0, 0, 0]])
    targets = window_targets(item_seq, torch.tensor([3, 1]), torch.tensor([6, 8]))
    assert targets.tolist() == [[4, 5, 6, 0], [8, 0, 0, 0]]


def test_inbatch_logq_loss_equals_direct_computation():
    torch.manual_seed(0)
    n_items, dim = 12, 5
    table = torch.randn(n_items, dim)
    log_pop = torch.log(torch.rand(n_items) + 0.05)
    item_seq = torch.tensor([[1, 2, 3, 4], [2, 5, 6, 0], [7, 1, 0, 0]])
    lengths = torch.tensor([4, 3, 2])
    next_item = torch.tensor([5, 8, 9])
    targets = window_targets(item_seq, lengths, next_item)
    user_items = torch.cat([item_seq, next_item[:, None]], 1)
    hidden = torch.randn(3, 4, dim)
    loss = inbatch_logq_loss(hidden, targets, lambda ids: table[ids], log_pop, user_items)
    expected = direct_loss(hidden, targets, table, log_pop, user_items)
    assert abs(loss.item() - expected) < 1e-5


def test_logq_correction_and_history_mask_matter():
    torch.manual_seed(1)
    table = torch.randn(10, 4)
    item_seq = torch.tensor([[1, 2, 3], [4, 2, 6]])
    lengths = torch.tensor([3, 3])
    next_item = torch.tensor([4, 7])
    targets = window_targets(item_seq, lengths, next_item)
    user_items = torch.cat([item_seq, next_item[:, None]], 1)
    hidden = torch.randn(2, 3, 4)
    embed = lambda ids: table[ids]  # noqa: E731
    flat = torch.zeros(10)
    skewed = torch.log(torch.linspace(0.01, 0.5, 10))
    with_logq = inbatch_logq_loss(hidden, targets, embed, skewed, user_items)
    without = inbatch_logq_loss(hidden, targets, embed, flat, user_items)
    assert not torch.isclose(with_logq, without)
    no_mask = inbatch_logq_loss(hidden, targets, embed, flat, torch.zeros_like(user_items))
    assert no_mask > without  # masking the user's own items removes competitors


def test_gradients_flow_to_hidden_and_items():
    table = torch.randn(6, 3, requires_grad=True)
    hidden = torch.randn(2, 2, 3, requires_grad=True)
    targets = torch.tensor([[2, 3], [3, 0]])
    user_items = torch.tensor([[1, 2, 3], [1, 3, 0]])
    loss = inbatch_logq_loss(hidden, targets, lambda ids: table[ids], torch.zeros(6), user_items)
    loss.backward()
    assert hidden.grad.abs().sum() > 0 and table.grad[[2, 3]].abs().sum() > 0
    assert table.grad[[0, 1, 4, 5]].abs().sum() == 0  # only batch items are candidates


def direct_slot_loss(hidden, targets, table, log_pop, user_items):
    """The reference code's candidates, by hand: every filled slot of the batch, duplicates
    kept; the user's own items masked except the label's slot in the user's own row."""
    slots = [(b, int(i)) for b in range(user_items.size(0)) for i in user_items[b] if i > 0]
    losses = []
    for b in range(targets.size(0)):
        own = {int(i) for i in user_items[b] if i > 0}
        for pos in range(targets.size(1)):
            label = int(targets[b, pos])
            if label == 0:
                continue
            label_slot = next(s for s, (row, item) in enumerate(slots) if row == b and item == label)
            logits = [float(hidden[b, pos] @ table[item]) - float(log_pop[item])
                      for s, (_, item) in enumerate(slots) if s == label_slot or item not in own]
            label_logit = float(hidden[b, pos] @ table[label]) - float(log_pop[label])
            losses.append(math.log(sum(math.exp(v) for v in logits)) - label_logit)
    return sum(losses) / len(losses)


def _popular_batch(seed=0):
    torch.manual_seed(seed)
    table = torch.randn(12, 5)
    log_pop = torch.log(torch.rand(12) + 0.05)
    item_seq = torch.tensor([[1, 2, 3, 4], [2, 5, 6, 0], [7, 2, 0, 0], [2, 9, 10, 0]])
    lengths = torch.tensor([4, 3, 2, 3])
    next_item = torch.tensor([5, 8, 9, 11])  # item 2 sits in every window, 9 in two
    targets = window_targets(item_seq, lengths, next_item)
    user_items = torch.cat([item_seq, next_item[:, None]], 1)
    return table, log_pop, targets, user_items, torch.randn(4, 4, 5)


def test_slot_candidates_equal_the_reference_computation():
    table, log_pop, targets, user_items, hidden = _popular_batch()
    loss = inbatch_logq_loss(hidden, targets, lambda ids: table[ids], log_pop, user_items,
                             candidates="slots")
    assert abs(loss.item() - direct_slot_loss(hidden, targets, table, log_pop, user_items)) < 1e-5


def test_slot_candidates_weigh_repeated_negatives():
    table, log_pop, targets, user_items, hidden = _popular_batch(1)
    embed = lambda ids: table[ids]  # noqa: E731
    slots = inbatch_logq_loss(hidden, targets, embed, log_pop, user_items, candidates="slots")
    unique = inbatch_logq_loss(hidden, targets, embed, log_pop, user_items, candidates="unique")
    assert not torch.isclose(slots, unique)


def every_slot_loss(hidden, targets, table, log_pop, user_items):
    """Slot candidates as the reference code builds them: [P, S] logits, one column per filled
    slot of the batch, duplicates kept, the label at its first slot in its own row."""
    labelled = targets > 0
    filled = user_items > 0
    slots = user_items[filled]
    slot_rows = torch.nonzero(filled, as_tuple=True)[0]
    rows = torch.nonzero(labelled, as_tuple=True)[0]
    own = (slot_rows[None] == rows[:, None]) & (slots[None] == targets[labelled][:, None])
    labels = own.to(torch.uint8).argmax(dim=1)
    logits = hidden[labelled] @ table[slots].T - log_pop[slots]
    mask = (user_items[rows].unsqueeze(2) == slots.view(1, 1, -1)).any(dim=1)
    mask[torch.arange(len(labels)), labels] = False
    return torch.nn.functional.cross_entropy(logits.masked_fill(mask, float("-inf")), labels)


def test_slot_candidates_as_counted_items_equal_every_slot_in_loss_and_gradients():
    """The slots are scored as distinct items plus log(copies): same loss, same gradients as the
    [P, S] computation, on a batch with many repeats, padded on either side."""
    torch.manual_seed(3)
    item_seq = torch.randint(1, 9, (64, 10))  # few items: many repeats within and across rows
    lengths = torch.randint(1, 11, (64,))
    item_seq[torch.arange(10).unsqueeze(0) >= lengths.unsqueeze(1)] = 0
    next_item = torch.randint(1, 9, (64,))
    targets = window_targets(item_seq, lengths, next_item)
    log_pop = torch.log(torch.rand(9) + 0.05)
    for user_items in (torch.cat([item_seq, next_item[:, None]], 1),
                       torch.cat([next_item[:, None], item_seq.flip(1)], 1)):  # zeros leading
        grads = []
        for compute in ("counted", "every slot"):
            table = torch.randn(9, 6, generator=torch.Generator().manual_seed(0)).requires_grad_()
            hidden = torch.randn(64, 10, 6, generator=torch.Generator().manual_seed(1)).requires_grad_()
            if compute == "counted":
                loss = inbatch_logq_loss(hidden, targets, lambda ids: table[ids], log_pop,
                                         user_items, candidates="slots")
            else:
                loss = every_slot_loss(hidden, targets, table, log_pop, user_items)
            loss.backward()
            grads.append((loss.detach(), hidden.grad, table.grad))
        (loss_a, hidden_a, table_a), (loss_b, hidden_b, table_b) = grads
        assert torch.allclose(loss_a, loss_b, atol=1e-6)
        assert torch.allclose(hidden_a, hidden_b, atol=1e-6)
        assert torch.allclose(table_a, table_b, atol=1e-6)
        unique = inbatch_logq_loss(hidden.detach(), targets, lambda ids: table.detach()[ids],
                                   log_pop, user_items)
        assert not torch.isclose(unique, loss_a)  # repeats weigh differently there


def test_a_slot_label_missing_from_its_row_is_an_error():
    targets = torch.tensor([[2, 0], [3, 0]])
    user_items = torch.tensor([[1, 3, 0], [3, 2, 0]])  # row 0's label 2 only sits in row 1
    with pytest.raises(ValueError, match="missing from its own row"):
        inbatch_logq_loss(torch.randn(2, 2, 4), targets, lambda ids: torch.randn(len(ids), 4),
                          torch.zeros(5), user_items, candidates="slots")
    with pytest.raises(ValueError, match="missing from the batch"):
        slot_candidates(targets, targets > 0, torch.tensor([[1, 3, 0], [3, 1, 0]]))


BF16_LOSS = """
import json, torch
from recbole_microlens.model.loss import inbatch_logq_loss
from tests.model.test_loss import _popular_batch

table, log_pop, targets, user_items, hidden = _popular_batch()
expected = inbatch_logq_loss(hidden, targets, lambda ids: table[ids], log_pop, user_items,
                             candidates="slots")
with torch.autocast("cpu", dtype=torch.bfloat16):
    loss = inbatch_logq_loss(hidden, targets, lambda ids: table[ids].bfloat16(), log_pop,
                             user_items, candidates="slots")
print(json.dumps({"dtype": str(loss.dtype), "loss": loss.item(), "expected": expected.item()}))
"""


def test_under_bf16_autocast_the_logits_stay_float32_and_match():
    """Autocast would run the fused addmm (and its logQ bias) in bf16 and refuse the float32
    copy correction; the loss computes its logits in float32 whatever the context. (bf16 on CPU
    runs in its own interpreter: see test_precision.py.)"""
    from tests.helpers import run_isolated

    result = run_isolated(BF16_LOSS)
    assert result["dtype"] == "torch.float32"
    assert abs(result["loss"] - result["expected"]) < 0.02

# ----------------------------------------- one loss: the two old computations, kept here ---
def old_inbatch_softmax_loss(logits, labels, candidate_log_popularity, seen):
    """``general_recommender/base.py``'s loss before it called ``logq_cross_entropy``."""
    seen = seen.clone()
    seen[torch.arange(len(labels)), labels] = False
    logits = (logits - candidate_log_popularity).masked_fill(seen, float("-inf"))
    return torch.nn.functional.cross_entropy(logits, labels)


def old_inbatch_logq_loss(hidden, targets, embed_items, log_popularity, user_items, candidates):
    """``loss.py``'s position loss before its masking and cross-entropy moved out."""
    from recbole_microlens.model.loss import CANDIDATES, own_window_columns

    labelled = targets > 0
    candidate_ids, labels, copies = CANDIDATES[candidates](targets, labelled, user_items)
    positions = torch.arange(len(labels))
    bias = -log_popularity[candidate_ids]
    if candidates == "slots":
        log_copies = copies.to(bias.dtype).log()
        bias = bias + log_copies
    logits = torch.addmm(bias.float(), hidden[labelled].float(), embed_items(candidate_ids).float().T)
    if candidates == "slots":
        logits.index_put_((positions, labels), -log_copies[labels].to(logits.dtype), accumulate=True)
    row_of_position = torch.nonzero(labelled, as_tuple=True)[0]
    columns, present = own_window_columns(user_items, candidate_ids)
    columns, present = columns[row_of_position], present[row_of_position]
    masked = present & ~(present & (columns == labels.unsqueeze(1)))
    masked_positions = positions.unsqueeze(1).expand_as(columns)[masked]
    logits.index_put_((masked_positions, columns[masked]), logits.new_tensor(float("-inf")))
    return torch.nn.functional.cross_entropy(logits, labels)


def loss_and_grads(loss_fn, *leaves):
    leaves = [leaf.detach().clone().requires_grad_(True) for leaf in leaves]
    loss = loss_fn(*leaves)
    return loss.detach(), torch.autograd.grad(loss, leaves)


@pytest.mark.parametrize("candidates", ["unique", "slots"])
def test_the_position_loss_is_bitwise_its_old_computation(candidates):
    torch.manual_seed(3)
    table, log_pop = torch.randn(30, 6), torch.log(torch.rand(30) + 0.05)
    item_seq = torch.randint(1, 30, (8, 7))
    lengths = torch.randint(1, 8, (8,))
    item_seq = item_seq.masked_fill(torch.arange(7) >= lengths[:, None], 0)
    next_item = torch.randint(1, 30, (8,))
    targets = window_targets(item_seq, lengths, next_item)
    user_items = torch.cat([item_seq, next_item[:, None]], 1)

    def with_(loss_fn):
        return loss_and_grads(lambda h, t: loss_fn(h, targets, lambda ids: t[ids], log_pop,
                                                   user_items, candidates),
                              torch.randn(8, 7, 6, generator=torch.Generator().manual_seed(4)),
                              table)

    (loss, grads), (old, old_grads) = with_(inbatch_logq_loss), with_(old_inbatch_logq_loss)
    assert torch.equal(loss, old) and all(map(torch.equal, grads, old_grads))


def test_the_pairwise_loss_is_bitwise_its_old_computation():
    from recbole_microlens.model.general_recommender.base import inbatch_softmax_loss

    torch.manual_seed(5)
    logits, log_pop = torch.randn(9, 12), torch.log(torch.rand(12) + 0.05)
    labels = torch.randint(0, 12, (9,))
    seen = torch.rand(9, 12) < 0.3
    seen[0, labels[0]] = True  # a label among the row's own items stays a label
    (loss, grads), (old, old_grads) = (
        loss_and_grads(lambda x: fn(x, labels, log_pop, seen), logits)
        for fn in (inbatch_softmax_loss, old_inbatch_softmax_loss))
    assert torch.isfinite(loss) and torch.equal(loss, old)
    assert all(map(torch.equal, grads, old_grads))
