"""The reference code's training, option by option, and the profile that turns them all on."""
import math

import pytest
import torch

from recbole_microlens.config.configurator import MLConfig
from recbole_microlens.model import get_model
from recbole_microlens.model.loss import window_targets
from recbole_microlens.model.sequential_recommender.base import left_align
from recbole_microlens.quick_start import run_recbole_ml
from tests.helpers import built_run, make_config, write_inter_file

SEQUENCES = {f"u{u}": [f"i{(u * 3 + k) % 17}" for k in range(6 + u % 4)] for u in range(24)}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    write_inter_file(root, "refdata", SEQUENCES)
    return root


def build_model(root, **overrides):
    config = make_config(root, "refdata", **overrides)
    train, _, _ = built_run(config, model=False).splits
    torch.manual_seed(0)
    return config, get_model("SASRec")(config, train._dataset), train


def test_left_align_puts_the_newest_item_last():
    seq = torch.tensor([[3, 4, 5, 0], [7, 0, 0, 0], [1, 2, 3, 4]])
    assert left_align(seq, torch.tensor([3, 1, 4]), 4).tolist() == [[0, 3, 4, 5], [0, 0, 0, 7],
                                                                 [1, 2, 3, 4]]
    targets = window_targets(seq, torch.tensor([3, 1, 4]), torch.tensor([6, 8, 9]))
    assert left_align(targets, torch.tensor([3, 1, 4]), 4).tolist() == [[0, 4, 5, 6], [0, 0, 0, 8],
                                                                     [2, 3, 4, 9]]


def test_left_padding_reads_the_last_position(root):
    _, model, train = build_model(root, padding_side="left")
    model.eval()
    batch = next(iter(train))
    seq, seq_len = batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN]
    aligned = left_align(seq, seq_len, model.max_seq_length)
    states = model.encode(model.item_tower(aligned), aligned, seq_len)
    assert torch.allclose(model.forward(seq, seq_len), states[:, -1])
    _, right, _ = build_model(root, padding_side="right")
    right.load_state_dict(model.state_dict())
    right.eval()
    assert not torch.allclose(right.forward(seq, seq_len), model.forward(seq, seq_len))
    assert torch.isfinite(model.calculate_loss(batch))


def test_a_narrower_query_window_reads_as_the_full_window(root):
    """A caller's own window of 3 items (recommend, a notebook) must put the newest item where
    training put it, the last of max_seq_length positions, not the last of 3."""
    _, model, _ = build_model(root, padding_side="left")
    model.eval()
    items, length = torch.tensor([[5, 9, 2]]), torch.tensor([3])
    full = torch.nn.functional.pad(items, (0, model.max_seq_length - 3))
    with torch.no_grad():
        assert torch.allclose(model(items, length), model(full, length), atol=1e-6)
    assert left_align(items, length, 6).tolist() == [[0, 0, 0, 5, 9, 2]]


def test_weight_init_xavier_normal(root):
    _, normal, _ = build_model(root, hidden_size=32)
    _, xavier, _ = build_model(root, hidden_size=32, weight_init="xavier_normal")
    emb_n, emb_x = normal.item_tower.embedding.weight, xavier.item_tower.embedding.weight
    n_items = emb_x.size(0)
    assert emb_n.std().item() == pytest.approx(0.02, rel=0.2)
    assert emb_x.std().item() == pytest.approx(math.sqrt(2 / (n_items + 32)), rel=0.2)


def test_inner_size_defaults_to_four_times_hidden(root):
    _, model, _ = build_model(root, hidden_size=24, inner_size=None)
    assert model.trm_encoder.layer[0].feed_forward.dense_1.out_features == 96
    _, model, _ = build_model(root, hidden_size=24, inner_size=40)
    assert model.trm_encoder.layer[0].feed_forward.dense_1.out_features == 40


@pytest.mark.parametrize("key,bad", [("padding_side", "middle"), ("weight_init", "zeros"),
                                     ("inbatch_candidates", "all")])
def test_unknown_option_values_are_refused(root, key, bad):
    with pytest.raises(ValueError, match=key):
        build_model(root, **{key: bad})


def test_reference_profile_by_name_sets_every_option(root):
    config = MLConfig("SASRec", "refdata", ["reference"],
                      {"data_path": str(root), "hidden_size": 32, "inner_size": None})
    assert config["inbatch_candidates"] == "slots" and config["padding_side"] == "left"
    assert config["weight_init"] == "xavier_normal" and config["valid_metric"] == "Hit@10"
    assert config["hidden_act"] == "relu" and config["layer_norm_eps"] == pytest.approx(1e-6)
    sasrec = MLConfig("SASRec", "refdata", None, {"data_path": str(root)})
    assert sasrec["inbatch_candidates"] == "slots" and sasrec["padding_side"] == "left"
    assert sasrec["weight_init"] == "normal" and sasrec["valid_metric"] == "NDCG@10"
    for other in ("GRU4Rec", "NextItNet"):  # SASRec's choice was measured on SASRec only
        default = MLConfig(other, "refdata", None, {"data_path": str(root)})
        assert default["inbatch_candidates"] == "unique" and default["padding_side"] == "right"
    with pytest.raises(FileNotFoundError, match="reference"):
        MLConfig("SASRec", "refdata", ["no-such-profile"], {"data_path": str(root)})


def test_reference_profile_trains_and_selects_on_hit(root, tmp_path):
    result = run_recbole_ml("SASRec", "refdata", ["reference"], {
        "data_path": str(root), "checkpoint_dir": str(tmp_path), "show_progress": False,
        "hidden_size": 8, "train_batch_size": 8, "epochs": 2, "learning_rate": 0.01,
        "state": "WARNING"})
    assert result["valid_metric"] == "Hit@10"
    assert result["best_valid_score"] == result["valid"]["hit@10"]
    assert 0.0 <= result["test"]["hit@10"] <= 1.0


# -- VideoRec options of the profile -------------------------------------------------------------

@pytest.fixture(scope="module")
def video_root(tmp_path_factory):
    from recbole_microlens.data.sample.generate import generate_sample_raw

    root = tmp_path_factory.mktemp("reference_video")
    generate_sample_raw(root / "raw", n_users=30, n_items=40, seed=4)
    return root


def build_video(root, **overrides):
    from recbole_microlens.trainer.trainer import MLTrainer

    options = {"raw_data_path": str(root / "raw"), "item_encoder": "r3d-r18",
               "encoder_overrides": {"size": 16}, "hidden_size": 16, "train_batch_size": 8,
               "encode_chunk_size": 16, "encoder_learning_rate": 1e-4, **overrides}
    config = make_config(root / "atomic", "refvideo", model="SASRecV", **options)
    train, _, _ = built_run(config, model=False).splits
    torch.manual_seed(0)
    model = get_model("SASRecV")(config, train._dataset)
    return model, MLTrainer(config, model), train


def test_projection_activation_gelu(video_root, one_thread):
    model, _, _ = build_video(video_root, item_projection_act="gelu")
    tower = model.item_tower.eval()
    ids = torch.tensor([1, 2, 3])
    features = tower.encoder(tower.inputs(ids, tower.device))
    assert torch.allclose(tower.embed(ids), torch.nn.functional.gelu(tower.projection(features)))
    plain, _, _ = build_video(video_root)
    assert isinstance(plain.item_tower.activation, torch.nn.Identity)


def test_frozen_trunk_in_train_mode_uses_batch_statistics(video_root, one_thread):
    model, trainer, _ = build_video(video_root, frozen_trunk_mode="train", finetune_top_blocks=1)
    encoder = model.item_tower.encoder
    model.train()
    trunk_norms = [m for block in encoder.blocks[:encoder.trainable_block_start]
                   for m in block.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    assert trunk_norms and all(m.training for m in trunk_norms)
    assert not any(p.requires_grad for block in encoder.blocks[:encoder.trainable_block_start]
                   for p in block.parameters())
    trainer._prepare_trunk_cache(show_progress=False)
    assert model.item_tower.runtime.trunk_cache is None  # batch statistics: nothing per item to cache
    default, _, _ = build_video(video_root)
    default.train()
    enc = default.item_tower.encoder
    assert not any(m.training for block in enc.blocks[:enc.trainable_block_start]
                   for m in block.modules() if isinstance(m, torch.nn.BatchNorm3d))


def test_encoder_group_with_projection(video_root, one_thread):
    model, trainer, _ = build_video(video_root, encoder_group="encoder+projection",
                                    encoder_weight_decay=0.0)
    groups = trainer.optimizer.param_groups
    projection = {id(p) for p in model.item_tower.projection.parameters()}
    assert projection <= {id(p) for p in groups[1]["params"]}
    assert groups[1]["lr"] == 1e-4 and groups[1]["weight_decay"] == 0.0
    assert not projection & {id(p) for p in groups[0]["params"]}
    model, trainer, _ = build_video(video_root)
    projection = {id(p) for p in model.item_tower.projection.parameters()}
    assert projection <= {id(p) for p in trainer.optimizer.param_groups[0]["params"]}
