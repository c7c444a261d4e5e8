"""The packed encoder against RecBole's TransformerEncoder on the same modules."""
import pytest
import torch
from recbole.model.layers import TransformerEncoder

from recbole_microlens.model.packed_transformer import Packing, packed_encoder


def attention_mask(item_seq):
    """RecBole's causal mask with -10000 at padding (SequentialRecommender.get_attention_mask)."""
    filled = (item_seq != 0).unsqueeze(1).unsqueeze(2)
    causal = torch.tril(filled.expand(-1, -1, item_seq.size(-1), -1))
    return torch.where(causal, 0.0, -10000.0)


def windows(padding_side):
    lengths = torch.tensor([1, 4, 6, 3, 6])
    positions = torch.arange(6).unsqueeze(0)
    filled = positions < lengths.unsqueeze(1)
    if padding_side == "left":
        filled = positions >= 6 - lengths.unsqueeze(1)
    return torch.randint(1, 50, (5, 6)) * filled


def encoder(hidden_act="gelu", dropout=0.0):
    return TransformerEncoder(n_layers=2, n_heads=2, hidden_size=8, inner_size=16,
                              hidden_dropout_prob=dropout, attn_dropout_prob=dropout,
                              hidden_act=hidden_act, layer_norm_eps=1e-12)


@pytest.mark.parametrize("padding_side", ["left", "right"])
@pytest.mark.parametrize("hidden_act", ["gelu", "relu"])
def test_packed_states_and_gradients_equal_recboles_encoder_at_filled_positions(
        padding_side, hidden_act):
    torch.manual_seed(0)
    item_seq = windows(padding_side)
    filled = item_seq > 0
    trm = encoder(hidden_act)
    hidden = torch.randn(5, 6, 8, requires_grad=True)
    mask = attention_mask(item_seq)

    expected = trm(hidden, mask, output_all_encoded_layers=True)[-1]
    packing = Packing(filled)
    states = packing.unpack(packed_encoder(trm, packing.pack(hidden), packing, mask))

    torch.testing.assert_close(states[filled], expected[filled], atol=1e-5, rtol=1e-5)
    assert torch.count_nonzero(states[~filled]) == 0
    weights = torch.randn(5, 6, 8) * filled.unsqueeze(-1)
    expected_grads = torch.autograd.grad((expected * weights).sum(), [hidden, *trm.parameters()])
    grads = torch.autograd.grad((states * weights).sum(), [hidden, *trm.parameters()])
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_packing_round_trip_keeps_filled_positions_in_order():
    filled = torch.tensor([[False, True, True], [True, False, False]])
    padded = torch.arange(6.0).view(2, 3, 1)
    packing = Packing(filled)
    assert packing.pack(padded).flatten().tolist() == [1.0, 2.0, 3.0]
    assert packing.unpack(packing.pack(padded)).flatten().tolist() == [0.0, 1.0, 2.0, 3.0, 0.0, 0.0]


def test_dropout_still_drops_in_training_and_not_in_eval():
    torch.manual_seed(0)
    item_seq = windows("left")
    packing = Packing(item_seq > 0)
    trm = encoder(dropout=0.5)
    tokens = torch.randn(int((item_seq > 0).sum()), 8)
    mask = attention_mask(item_seq)
    train_a = packed_encoder(trm, tokens, packing, mask)
    train_b = packed_encoder(trm, tokens, packing, mask)
    assert not torch.allclose(train_a, train_b)
    trm.eval()
    torch.testing.assert_close(packed_encoder(trm, tokens, packing, mask),
                               packed_encoder(trm, tokens, packing, mask))
