"""The README's main path on the embedded sample: generate, convert, train, evaluate, report."""
import json

import pytest

from recbole_microlens.compat import torch_load
from recbole_microlens.quick_start import run_recbole_ml

METRICS = ["hit@10", "ndcg@10", "hit@20", "ndcg@20"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("e2e")


def _run(workdir, model, **overrides):
    options = {
        "data_path": str(workdir / "atomic_files"),
        "checkpoint_dir": str(workdir / "saved"),
        "epochs": 1,
        "show_progress": False,
        "result_file": str(workdir / f"{model}.json"),
    }
    options.update(overrides)
    return run_recbole_ml(model=model, dataset="microlens-sample", config_dict=options)


def test_sasrec_one_epoch_on_sample_writes_result_file(workdir):
    result = _run(workdir, "SASRec")
    assert (workdir / "atomic_files" / "microlens-sample" / "microlens-sample.inter").is_file()
    saved = json.loads((workdir / "SASRec.json").read_text())
    assert saved["model"] == "SASRec" and saved["epochs_run"] == 1
    for split in ("valid", "test"):
        assert list(saved[split]) == METRICS
        assert all(0.0 <= saved[split][m] <= 1.0 for m in METRICS)
    assert saved["config"]["loss_type"] == "inbatch"
    assert saved["config"]["MAX_ITEM_LIST_LENGTH"] == 10
    assert saved["versions"]["recbole"] == "1.2.1"
    assert saved["seconds"]["mean_epoch"] > 0 and len(saved["seconds"]["per_epoch"]) == 1
    assert result["n_users"] == saved["n_users"] > 300


def test_checkpoints_load_weights_only(workdir):
    checkpoints = sorted((workdir / "saved").glob("SASRec-*.pth"))
    assert checkpoints
    state = torch_load(checkpoints[-1])  # weights_only=True: no pickled Config inside
    assert "state_dict" in state and "item_tower.embedding.weight" in state["state_dict"]


@pytest.mark.parametrize("model", ["GRU4Rec", "NextItNet"])
@pytest.mark.parametrize("loss_type", ["inbatch", "CE"])
def test_sequential_models_train_with_both_losses(workdir, model, loss_type):
    result = _run(workdir, model, loss_type=loss_type, epochs=2, embedding_size=16, hidden_size=16)
    assert result["config"]["loss_type"] == loss_type
    assert all(0.0 <= result["test"][m] <= 1.0 for m in METRICS)


def test_sasrec_learns_the_sample(workdir):
    """A few epochs must beat a random ranking (HR@10 ~ 10/280) by a wide margin."""
    result = _run(workdir, "SASRec", epochs=8, loss_type="inbatch")
    assert result["valid"]["hit@10"] > 0.15


def test_recbole_general_model_runs_through_our_protocol(workdir):
    """RecBole's own BPR (general, pairwise) gets sampled negatives and our evaluation."""
    result = _run(workdir, "BPR", epochs=1, embedding_size=16)
    assert result["config"]["train_neg_sample_args"]["distribution"] == "uniform"
    assert list(result["test"]) == METRICS


def test_main_job_sasrecv_on_sample(workdir):
    """The README's main command: SASRecV over decoded video frames of the sample."""
    result = _run(workdir, "SASRecV", epochs=1)
    assert result["config"]["item_tower"] == "encoder"
    assert result["config"]["item_encoder"] == "x3d-xs"  # the sample's small CPU encoder
    store = workdir / "atomic_files" / "microlens-sample" / "media" / "frames_n5_i1_s64"
    counts = json.loads((store / "meta.json").read_text())["counts"]
    assert counts["missing"] == 1 and counts["partial"] + counts["undecodable"] == 1
    assert result["encoder_items_per_epoch"][0] > 0
    assert all(0.0 <= result["test"][m] <= 1.0 for m in METRICS)
