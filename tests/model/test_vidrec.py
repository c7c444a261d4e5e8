"""The CF baselines and VIDRec models of Table 2, end to end on a tiny sample, and their parts."""
import json
import math

import numpy as np
import pytest
import torch
from recbole.data.interaction import Interaction

from recbole_microlens.data.sample.generate import generate_sample_raw
from recbole_microlens.data.stores.titles import minilm_folder
from recbole_microlens.encoders.extract import extract_features
from recbole_microlens.model import get_model
from recbole_microlens.model.general_recommender.base import masked_first_order, masked_item_vectors
from recbole_microlens.model.general_recommender.deepfm import most_recent_first
from recbole_microlens.model.layers import FrozenFeatureItemTower
from recbole_microlens.quick_start import run_recbole_ml
from tests.helpers import built_run, make_config

DATASET = "vidlens"
ID_MODELS = ["DSSM", "LightGCN", "NFM", "DeepFM", "YouTubeID", "MMGCNID", "GRCNID"]
FEATURE_MODELS = ["DSSMIDV", "YouTubeIDV", "MMGCNIDV", "GRCNIDV", "SASRecIDV"]
TINY = {"train_batch_size": 16, "embedding_size": 16, "hidden_size": 16, "inner_size": 32,
        "mlp_hidden_size": [16]}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A tiny sample with frozen title features (all-MiniLM-L6-v2, or a random BERT without it)."""
    root = tmp_path_factory.mktemp("vidrec")
    generate_sample_raw(root / "raw", n_users=40, n_items=40, seed=7)
    encoder = ("minilm", minilm_folder()) if minilm_folder() else ("bert-tiny", None)
    report = extract_features(root / "atomic", DATASET, encoder[0], checkpoint=encoder[1],
                              raw_dir=root / "raw", out=root / "atomic" / DATASET / "features" /
                              "titles.npy", progress=False)
    assert report.complete
    return root


def run(root, model, **overrides):
    return run_recbole_ml(model, DATASET, config_dict={
        "data_path": str(root / "atomic"), "raw_data_path": str(root / "raw"),
        "checkpoint_dir": str(root / "saved"), "epochs": 1, "show_progress": False,
        "features_file": "features/titles.npy", **TINY, **overrides})


def build(root, model, **overrides):
    config = make_config(root / "atomic", DATASET, model=model, features_file="features/titles.npy",
                         **{**TINY, **overrides})
    train, valid, _ = built_run(config, model=False).splits
    torch.manual_seed(0)
    return get_model(model)(config, train._dataset), train, valid


def assert_valid_metrics(result):
    assert set(result["test"]) == {"hit@10", "ndcg@10", "hit@20", "ndcg@20"}
    for value in [*result["test"].values(), *result["valid"].values()]:
        assert math.isfinite(value) and 0.0 <= value <= 1.0


@pytest.mark.parametrize("model", ID_MODELS)
def test_id_models_train_and_rank_every_item(root, model):
    result = run(root, model)
    assert_valid_metrics(result)
    assert result["epochs_run"] == 1
    assert result["config"]["train_neg_sample_args"]["distribution"] == "none"  # in-batch softmax


@pytest.mark.parametrize("model,fusion",
                         [(m, "sum") for m in FEATURE_MODELS] + [("SASRecIDV", "concat")])
def test_feature_models_train_on_frozen_features(root, model, fusion):
    result = run(root, model, fusion=fusion)
    assert_valid_metrics(result)
    assert result["config"]["features_file"] == "features/titles.npy"


def test_fusion_modes_give_different_items_for_the_same_weights():
    torch.manual_seed(0)
    features = torch.randn(5, 3)
    summed = FrozenFeatureItemTower(5, 4, features, fusion="sum")
    concatenated = FrozenFeatureItemTower(5, 4, features, fusion="concat")
    concatenated.embedding.load_state_dict(summed.embedding.state_dict())
    concatenated.feature_projection.load_state_dict(summed.feature_projection.state_dict())
    ids = torch.tensor([[0, 1, 2], [3, 4, 0]])
    a, b = summed(ids), concatenated(ids)
    assert a.shape == b.shape == (2, 3, 4)
    assert not torch.allclose(a[ids != 0], b[ids != 0])
    expected = summed.embedding(ids[0, 1:]) + summed.feature_projection(features[ids[0, 1:]])
    assert torch.allclose(a[0, 1:], expected)
    assert (a[ids == 0] == 0).all() and (b[ids == 0] == 0).all()
    assert "features" not in summed.state_dict()  # frozen input, not a weight
    assert not any(p is summed.features for p in summed.parameters())


def test_towers_read_the_feature_row_of_each_item_token(root):
    model, train, _ = build(root, "DSSMIDV")
    dataset = train._dataset
    matrix = np.load(root / "atomic" / DATASET / "features" / "titles.npy")
    meta = json.loads((root / "atomic" / DATASET / "features" / "titles.json").read_text())
    row_of = {token: row for row, token in enumerate(meta["row_tokens"])}
    features = model.item_tower.features
    assert (features[0] == 0).all()  # padding
    for item_id in (1, dataset.item_num // 2, dataset.item_num - 1):
        token = dataset.id2token(dataset.iid_field, item_id)
        assert torch.equal(features[item_id], torch.from_numpy(matrix[row_of[token]]))


def test_nfm_and_deepfm_full_ranking_equals_pairwise_scoring(root):
    """The factorised full ranking scores each (window, item) exactly as scoring the pair does."""
    for name in ("NFM", "DeepFM"):
        model, _, valid = build(root, name, pair_chunk_elements=16 * 16 * 8)  # several chunks
        model.eval()
        batch = next(iter(valid))[0]
        with torch.no_grad():
            ranking = model.full_sort_predict(batch)
            for item in (1, 5, model.n_items - 1):
                batch[model.ITEM_ID] = torch.full_like(batch[model.ITEM_ID], item)
                assert torch.allclose(ranking[:, item], model.predict(batch), atol=1e-5)


def test_deepfm_is_fm_plus_dnn_over_the_concatenated_fields(root):
    model, train, _ = build(root, "DeepFM")
    model.eval()
    batch = next(iter(train))
    seq, length, item = batch["item_id_list"][:3], batch["item_length"][:3], batch["item_id"][:3]
    with torch.no_grad():
        fields = torch.cat([most_recent_first(seq, length), item.unsqueeze(1)], dim=1)
        vectors = masked_item_vectors(model.item_tower, fields)
        first_order = model.global_bias + masked_first_order(model.item_bias, fields)
        pairs = 0.5 * (vectors.sum(1).pow(2).sum(-1) - vectors.pow(2).sum((1, 2)))
        deep = model.upper_layers(model.first_layer(vectors.flatten(1))).squeeze(-1)
        rows = Interaction({k: v[:3] for k, v in batch.interaction.items()})
        assert torch.allclose(model.predict(rows), first_order + pairs + deep, atol=1e-5)


def test_nfm_is_bi_interaction_pooling_over_the_fields(root):
    model, train, _ = build(root, "NFM")
    model.eval()
    batch = next(iter(train))
    seq, item = batch["item_id_list"][:3], batch["item_id"][:3]
    with torch.no_grad():
        fields = torch.cat([seq, item.unsqueeze(1)], dim=1)
        vectors = masked_item_vectors(model.item_tower, fields)
        pooled = 0.5 * (vectors.sum(1).pow(2) - vectors.pow(2).sum(1))
        first_order = model.global_bias + masked_first_order(model.item_bias, fields)
        deep = model.prediction(model.mlp(model.bi_interaction_norm(pooled))).squeeze(-1)
        rows = Interaction({k: v[:3] for k, v in batch.interaction.items()})
        assert torch.allclose(model.predict(rows), first_order + deep, atol=1e-5)


def test_user_id_models_mask_only_the_users_own_training_items(root):
    model, train, _ = build(root, "DSSM")
    dataset = train._dataset
    users = dataset.inter_feat["user_id"][:4]
    items = torch.arange(dataset.item_num)
    seen = model.training_items(users, items)
    pairs = set(zip(dataset.inter_feat["user_id"].tolist(), dataset.inter_feat["item_id"].tolist()))
    expected = torch.tensor([[(u, i) in pairs for i in items.tolist()] for u in users.tolist()])
    assert torch.equal(seen, expected) and seen.any()
