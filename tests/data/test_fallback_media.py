"""Items whose media fell back cannot flatter the metrics, and are counted in the results.

The issue behind it: with no videos and no covers every item gets the same grey clip, hence the
same vector; ties used to go to the target and such a model scored HR@10 = 1.0.
"""
import pytest

from recbole_microlens.data.sample.generate import generate_sample_raw
from recbole_microlens.quick_start import run_recbole_ml
from recbole_microlens.evaluator.results import metrics_table

TINY = {"item_encoder": "r3d-r18", "encoder_overrides": {"size": 16}, "hidden_size": 16,
        "train_batch_size": 16, "encode_chunk_size": 32, "epochs": 1, "show_progress": False,
        "state": "WARNING", "encoder_checkpoint": "random"}


@pytest.fixture(scope="module")
def raw_without_media(tmp_path_factory):
    root = tmp_path_factory.mktemp("nomedia")
    generate_sample_raw(root / "raw", n_users=40, n_items=40, seed=5, with_media=False)
    assert not (root / "raw" / "videos").exists() and not (root / "raw" / "covers").exists()
    return root


def test_a_content_model_over_items_without_media_stops_before_training(raw_without_media):
    """Was: a random network trained for minutes over MicroLens-50k's grey fallback clips."""
    root = raw_without_media
    with pytest.raises(ValueError, match=r"item_modality video: 40 of 40 items have no video or "
                                         r"cover.*allow_missing_content: true"):
        run_recbole_ml("SASRecV", "nomedia", None, {
            **TINY, "raw_data_path": str(root / "raw"), "data_path": str(root / "atomic"),
            "checkpoint_dir": str(root / "saved")})
    assert not (root / "atomic" / "nomedia" / "media").exists()  # stopped before any store


def test_identical_fallback_items_score_zero_and_are_counted(raw_without_media, one_thread):
    root = raw_without_media
    result = run_recbole_ml("SASRecV", "nomedia", None, {
        **TINY, "raw_data_path": str(root / "raw"), "data_path": str(root / "atomic"),
        "checkpoint_dir": str(root / "saved"), "allow_missing_content": True})
    n_users = result["n_users"]
    for split in ("valid", "test"):
        metrics = result[split]
        # every item is the same grey clip: every target ties with every unmasked item
        assert metrics["hit@10"] == 0.0 and metrics["ndcg@10"] == 0.0
        assert metrics["fallback_targets"] == n_users
        assert metrics["real_content"] is None  # no target with real media is left: no metric
    for key in ("best_valid_result", "test_result"):  # RecBole's keys: metrics only
        assert all(isinstance(value, float) for value in result[key].values())
    table = metrics_table({"valid": result["valid"], "test": result["test"]})
    real_rows = [line for line in table.splitlines()
                 if f"real content only ({n_users} fallback targets left out)" in line]
    assert len(real_rows) == 2 and all("n/a" in row and "0.0000" not in row for row in real_rows)
