"""The paper's studies on tiny data: Warm-N, side features, popularity groups, encoder sweep."""
import csv
import json

import numpy as np
import pytest
import torch

from recbole_microlens.cli import commands as cli
from recbole_microlens.data.raw.convert import convert_dataset
from recbole_microlens.data.prepare import ensure_atomic_files
from recbole_microlens.data.raw.readers import detect_raw_files
from recbole_microlens.data.sample.generate import generate_sample_raw
from recbole_microlens.evaluator.ranking import popularity_groups
from recbole_microlens.model import get_model
from recbole_microlens.model.layers import SideFeatureItemTower, TokenBagEmbedding
from recbole_microlens.studies.recipes import (
    StudyRun,
    cold_start_runs,
    encoder_sweep_runs,
    run_study,
    side_feature_runs,
    unique_runs,
    warm_dataset_name,
    warm_runs,
)
from recbole_microlens.trainer.trainer import MLTrainer
from tests.helpers import built_run, make_config

METRICS = ("hit@10", "ndcg@10", "hit@20", "ndcg@20")
# Raw counts 1:3 2:3 3:3 5:3 8:1 9:1. Warm-3 removes 8 and 9 (2 rows); then user 4, left with
# one item, is dropped (min 3), which leaves item 5 with 2 interactions: kept, and counted.
WARM_PAIRS = ["1\t1 2 3 5", "2\t1 2 3 5", "3\t1 2 3", "4\t5 8 9"]
TINY = {"epochs": 1, "show_progress": False, "train_batch_size": 16, "hidden_size": 16,
        "inner_size": 32, "embedding_size": 16, "state": "WARNING", "encoder_checkpoint": "random"}


class Settings(dict):
    """A config as the data layer reads it: a missing key is None."""

    def __missing__(self, key):
        return None


def inter_rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return [(row["user_id:token"], row["item_id:token"])
                for row in csv.DictReader(handle, delimiter="\t")]


# ------------------------------------------------------------------------------ Warm-N ---
def test_warm_removes_items_by_raw_count_then_applies_the_protocol(write_raw, tmp_path):
    write_raw("ml_pairs.tsv", WARM_PAIRS)
    meta = convert_dataset(detect_raw_files(tmp_path / "raw"), "w", tmp_path / "out",
                           min_user_inter=3, warm=3)
    assert inter_rows(tmp_path / "out/w/w.inter") == [
        ("1", "1"), ("1", "2"), ("1", "3"), ("1", "5"),
        ("2", "1"), ("2", "2"), ("2", "3"), ("2", "5"),
        ("3", "1"), ("3", "2"), ("3", "3")]
    assert meta["warm"] == {"min_item_inter": 3, "items_removed": 2, "interactions_removed": 2,
                            "items_under_min_after_protocol": 1}
    kept = meta["statistics"]["protocol"]
    assert (kept["users"], kept["items"], kept["interactions"]) == (3, 4, 11)
    assert meta["statistics"]["raw"]["interactions"] == 14  # raw statistics stay raw

    plain = convert_dataset(detect_raw_files(tmp_path / "raw"), "p", tmp_path / "out",
                            min_user_inter=3)
    assert plain["warm"] == {"min_item_inter": 0, "items_removed": 0, "interactions_removed": 0,
                             "items_under_min_after_protocol": 0}
    assert plain["statistics"]["protocol"]["interactions"] == 14


def test_warm_on_the_command_line(write_raw, tmp_path, capsys):
    write_raw("ml_pairs.tsv", WARM_PAIRS)
    code = cli.main(["convert", "--raw-dir", str(tmp_path / "raw"), "--dataset", "w3",
                     "--out", str(tmp_path / "out"), "--min-user-inter", "3", "--warm", "3"])
    assert code == 0 and "'items_removed': 2" in capsys.readouterr().out
    assert len(inter_rows(tmp_path / "out/w3/w3.inter")) == 11


def test_warm_config_converts_on_first_use_and_guards_the_store(write_raw, tmp_path):
    write_raw("ml_pairs.tsv", ["1\t1 2 3 4 5", "2\t1 2 3 4 5", "3\t1 2 3 4 5 9"])
    name = warm_dataset_name("ml", 3)
    settings = Settings(dataset=name, data_path=str(tmp_path / "out" / name), warm=3,
                        raw_data_path=str(tmp_path / "raw"))
    ensure_atomic_files(settings)
    meta = json.loads((tmp_path / "out" / name / f"{name}.meta.json").read_text())
    assert name == "ml-warm3" and meta["warm"]["min_item_inter"] == 3
    rows = inter_rows(tmp_path / "out" / name / f"{name}.inter")
    assert {item for _, item in rows} == set("12345")
    with pytest.raises(ValueError, match="converted with warm=3, not warm=20"):
        ensure_atomic_files(Settings(settings, warm=20))
    assert [run.dataset for run in warm_runs("SASRec", "ml", (0, 20))] == ["ml", "ml-warm20"]


# ----------------------------------------------------------------------------- recipes ---
def test_recipes_name_their_runs_and_share_the_common_one():
    warm = warm_runs("SASRec", "ml", (0, 20))
    side = side_feature_runs("ml")
    assert [(r.name, r.dataset, r.config) for r in warm] == [
        ("ml_SASRec", "ml", {}), ("ml-warm20_SASRec", "ml-warm20", {"warm": 20})]
    assert [r.name for r in side] == ["ml_SASRec", "ml_SASRecID+Pop", "ml_SASRecID+Tag",
                                      "ml_SASRecID+Pop+Tag"]
    assert side[3].model == "SASRecSide"
    assert side[3].config == {"side_features": ["pop_bin", "tags"]}
    assert len(unique_runs(warm + side)) == 5  # plain SASRec is Regular and SASRecID: once
    with pytest.raises(ValueError, match="both named 'ml_SASRec'"):
        unique_runs([warm[0], StudyRun("ml_SASRec", "SASRec", "ml", {"epochs": 1})])
    cold = cold_start_runs("ml")
    assert [r.model for r in cold] == ["SASRec", "SASRecV"]
    assert all(r.config == {"popularity_groups": 5} for r in cold)
    sweep = encoder_sweep_runs("SASRecV", "ml", ["r3d-r18", "resnet18"], ["frozen"])
    assert [r.config["item_modality"] for r in sweep] == ["video", "image"]
    with pytest.raises(ValueError, match="unknown encoders"):
        encoder_sweep_runs("SASRecV", "ml", ["r3d-r19"], ["top"])
    with pytest.raises(ValueError, match="unknown finetune modes"):
        encoder_sweep_runs("SASRecV", "ml", ["r3d-r18"], ["topT"])


# ------------------------------------------------------------------------------ sample ---
@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("studies")
    generate_sample_raw(root / "raw", n_users=40, n_items=40, seed=3, with_media=False)
    return root


def shared(root, **extra):
    return {**TINY, "data_path": str(root / "atomic"), "raw_data_path": str(root / "raw"),
            "checkpoint_dir": str(root / "saved"), **extra}


@pytest.fixture(scope="module")
def side_study(root):
    """Plain SASRec and SASRecID+Pop+Tag, both with the popularity breakdown."""
    runs = side_feature_runs("tiny", feature_sets=((), ("pop_bin", "tags")))
    paths = run_study(runs, root / "results", config_dict=shared(root, popularity_groups=3))
    return [json.loads(path.read_text()) for path in paths]


# ------------------------------------------------------------------------ side features ---
def test_side_tower_averages_the_parts_an_item_has():
    tags = TokenBagEmbedding(torch.tensor([[0, 0], [1, 2], [0, 0]]), vocab_size=3, dim=2)
    pop = TokenBagEmbedding(torch.tensor([[0], [1], [2]]), vocab_size=3, dim=2)
    tower = SideFeatureItemTower(3, 2, {"pop_bin": pop, "tags": tags})
    with torch.no_grad():
        tower.embedding.weight.copy_(torch.tensor([[5.0, 5.0], [3.0, 0.0], [6.0, 3.0]]))
        pop.embedding.weight.copy_(torch.tensor([[9.0, 9.0], [0.0, 3.0], [0.0, 3.0]]))
        tags.embedding.weight.copy_(torch.tensor([[9.0, 9.0], [2.0, 0.0], [4.0, 6.0]]))
    vectors = tower(torch.tensor([0, 1, 2]))
    # item 1: (id + pop + mean of tags 1, 2) / 3; item 2 has no tags: (id + pop) / 2; padding 0
    expected = torch.tensor([[0.0, 0.0], [(3 + 0 + 3) / 3, (0 + 3 + 3) / 3], [3.0, 3.0]])
    assert torch.allclose(vectors, expected)


def test_side_features_train_and_differ_from_plain_sasrec(root, side_study):
    plain, side = side_study
    assert side["model"] == "SASRecSide" and side["config"]["item_tower"] == "id+side"
    assert side["config"]["side_features"] == ["pop_bin", "tags"]
    config = make_config(root / "atomic", "tiny", model="SASRecSide", **shared(root))
    train, _, _ = built_run(config, model=False).splits
    torch.manual_seed(0)
    model = get_model("SASRecSide")(config, train._dataset)
    features = model.item_tower.features
    assert set(features) == {"pop_bin", "tags"}
    before = {name: f.embedding.weight.detach().clone() for name, f in features.items()}
    MLTrainer(config, model)._train_epoch(train, 0)
    assert all(not torch.equal(before[name], f.embedding.weight) for name, f in features.items())
    assert plain["test"] != side["test"]


def test_any_backbone_takes_the_side_tower(root):
    config = make_config(root / "atomic", "tiny", model="GRU4Rec", **shared(root),
                         item_tower="id+side", side_features=["pop_bin"],
                         load_col={"inter": ["user_id", "item_id", "timestamp"],
                                   "item": ["item_id", "pop_bin"]})
    train, _, _ = built_run(config, model=False).splits
    tower = get_model("GRU4Rec")(config, train._dataset).item_tower
    assert isinstance(tower, SideFeatureItemTower) and list(tower.features) == ["pop_bin"]
    assert tower.all_items().shape == (train._dataset.item_num, 16)


def test_side_features_must_be_loaded(root):
    config = make_config(root / "atomic", "tiny", model="SASRecSide", **shared(root),
                         load_col={"inter": ["user_id", "item_id", "timestamp"],
                                   "item": ["item_id", "pop_bin"]})
    train, _, _ = built_run(config, model=False).splits
    with pytest.raises(ValueError, match=r"side features \['tags'\] are not loaded"):
        get_model("SASRecSide")(config, train._dataset)


# -------------------------------------------------------------------- popularity groups ---
def test_popularity_groups_are_equal_count_coldest_first():
    counts = np.array([0, 9, 0, 3, 3, 1, 7])  # id 0 is padding
    assert popularity_groups(counts, 3).tolist() == [0, 3, 1, 2, 2, 1, 3]


def test_popularity_group_metrics_sum_back_to_the_overall(side_study):
    for result in side_study:
        groups = result["test"]["by_popularity"]
        assert list(groups) == ["1", "2", "3"]
        n_users = np.array([group["n_users"] for group in groups.values()])
        assert n_users.sum() == result["n_users"]  # one test target per user
        assert sum(group["items"] for group in groups.values()) == result["n_items"]
        assert all(groups[a]["train_count_max"] <= groups[b]["train_count_min"]
                   for a, b in (("1", "2"), ("2", "3")))
        for metric in METRICS:
            weighted = sum(g[metric] * g["n_users"] for g in groups.values()) / n_users.sum()
            assert weighted == pytest.approx(result["test"][metric], abs=1e-5)
        assert "by_popularity" not in result["valid"]  # a test report, not a selection signal
        unseen = result["test"]["unseen_targets"]  # never-seen items are the coldest group's
        assert 0 <= unseen["n_users"] <= groups["1"]["n_users"]
        assert "unseen_targets" not in result["valid"]


def test_recbole_result_keys_stay_flat_metric_to_float_with_popularity_groups(side_study):
    """RecBole's ``test_result`` / ``best_valid_result`` hold metrics only, as stock RecBole's
    (``pd.Series(...).astype(float)`` works); the breakdowns live in our ``test``."""
    import pandas as pd

    for result in side_study:
        for key in ("test_result", "best_valid_result"):
            assert result[key] and all(isinstance(v, float) for v in result[key].values()), key
            assert pd.Series(result[key]).astype(float).index.tolist() == list(result[key])
        assert {k: v for k, v in result["test"].items() if "@" in k} == result["test_result"]
        assert "by_popularity" in result["test"] and "by_popularity" not in result["test_result"]


# ------------------------------------------------------------------------ encoder sweep ---
def test_encoder_sweep_writes_a_result_per_run_and_a_table(root, capsys):
    out = root / "sweep"
    argv = ["sweep", "--model", "SASRecV", "--dataset", "tiny", "--encoders", "bert-tiny",
            "bert-small", "--finetune", "top", "--out", str(out),
            *(f"--{key}={value}" for key, value in
              shared(root, title_max_length=8, train_batch_size=64).items())]
    assert cli.main(argv) == 0
    files = sorted(out.glob("*.json"))
    assert [f.name for f in files] == ["tiny_SASRecV_bert-small_top.json",
                                       "tiny_SASRecV_bert-tiny_top.json"]
    results = [json.loads(f.read_text()) for f in files]
    assert [r["config"]["item_encoder"] for r in results] == ["bert-small", "bert-tiny"]
    assert all(r["config"]["item_modality"] == "text" and r["epochs_run"] == 1 for r in results)
    table = (out / "sweep.md").read_text()
    assert table in capsys.readouterr().out
    for result in results:
        encoder, test = result["config"]["item_encoder"], result["test"]
        row = next(line for line in table.splitlines() if f"| {encoder} " in line)
        assert f"{test['hit@10']:.4f}" in row and f"{test['ndcg@10']:.4f}" in row
    stamps = [f.stat().st_mtime_ns for f in files]
    assert cli.main(argv) == 0  # resumes: existing results are kept, nothing retrains
    assert [f.stat().st_mtime_ns for f in files] == stamps
    assert cli.main(["sweep", "--model", "SASRecV", "--dataset", "tiny", "--encoders",
                     "bert-tiny", "--out", str(out), "stray"]) == 2
