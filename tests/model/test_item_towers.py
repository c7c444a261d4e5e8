"""Item towers: the padding item is a zero vector in training as in evaluation."""
import pytest
import torch

from recbole_microlens.model import get_model
from recbole_microlens.model.layers import IDItemTower
from tests.helpers import built_run, make_config, write_inter_file

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def sasrec(tmp_path_factory):
    root = tmp_path_factory.mktemp("towers")
    write_inter_file(root, "padlens", {f"u{u}": [f"i{(u * 3 + k) % 17}" for k in range(7)]
                                       for u in range(24)})
    config = make_config(root, "padlens", model="SASRec", padding_side="left")
    train, _, _ = built_run(config, model=False).splits
    torch.manual_seed(0)
    return get_model("SASRec")(config, train._dataset), train


def test_id_tower_padding_row_stays_zero_and_untrained_in_training(sasrec):
    model, train = sasrec
    tower = model.item_tower
    assert isinstance(tower, IDItemTower)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    model.train()
    for step, batch in zip(range(3), train):
        assert (batch["item_id_list"] == 0).any()  # the windows hold padding
        optimizer.zero_grad()
        model.calculate_loss(batch).backward()
        assert torch.count_nonzero(tower.embedding.weight.grad[0]) == 0
        optimizer.step()
    ids = torch.tensor([[0, 1, 0, 2]])
    vectors = tower(ids)
    assert torch.count_nonzero(vectors[0, [0, 2]]) == 0
    assert torch.count_nonzero(vectors[0, [1, 3]]) > 0
    assert torch.count_nonzero(tower.all_items()[0]) == 0
    torch.testing.assert_close(tower.all_items()[1:], tower.embedding.weight[1:])


def test_an_encoder_tower_owns_its_runtime_and_reads_other_inputs_without_its_cache():
    from recbole_microlens.model.layers import EncoderItemTower

    encoder = torch.nn.Module()
    encoder.out_dim = 4
    tower = EncoderItemTower(5, 3, encoder, inputs="catalogue")
    tower.configure_runtime(checkpoint_blocks=True, length_grouping=True)
    tower.use_trunk_cache("cache")
    assert (tower.runtime.checkpoint_blocks, tower.runtime.length_grouping) == (True, True)
    with tower.reading("new items"):
        assert (tower.inputs, tower.runtime.trunk_cache) == ("new items", None)
    assert (tower.inputs, tower.runtime.trunk_cache) == ("catalogue", "cache")
    tower.configure_runtime()  # a new configuration starts without a cache
    assert (tower.runtime.checkpoint_blocks, tower.runtime.trunk_cache) == (False, None)
    with pytest.raises(AttributeError):
        tower.runtime = None  # read-only: the tower's methods change it
