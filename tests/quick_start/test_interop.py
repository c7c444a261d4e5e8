"""RecBole interop on the sample: RecBole-shaped results and logs, HyperTuning, checkpoints that
rebuild their run (load_data_and_model, full_sort_topk), recommend and export-embeddings."""
import csv
import logging
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from recbole_microlens.errors import CheckpointError
from recbole_microlens.quick_start import load_data_and_model
from recbole_microlens.trainer.checkpoint import read_checkpoint
from recbole_microlens.cli.commands import main
from recbole_microlens.io import sha256_file
from recbole_microlens.quick_start import objective_function, run_recbole_ml
from recbole_microlens.trainer.trainer import MLTrainer
from tests.helpers import built_run

DATASET = "microlens-sample"


def _options(root: Path, **overrides) -> dict:
    options = {"data_path": str(root / "atomic_files"), "checkpoint_dir": str(root / "saved"),
               "epochs": 2, "show_progress": False, "hidden_size": 16, "inner_size": 32}
    options.update(overrides)
    return options


@pytest.fixture(scope="module")
def trained(tmp_path_factory, one_thread):
    """SASRec trained 2 epochs on the sample: (result, checkpoint path, log lines, root)."""
    root = tmp_path_factory.mktemp("interop")
    lines, root_logger = LogLines(), logging.getLogger()
    level = root_logger.level  # under pytest RecBole's basicConfig does not set INFO
    root_logger.addHandler(lines)
    root_logger.setLevel(logging.INFO)
    try:
        result = run_recbole_ml("SASRec", DATASET, config_dict=_options(root))
    finally:
        root_logger.removeHandler(lines)
        root_logger.setLevel(level)
    checkpoint = max((root / "saved").glob("SASRec-*.pth"), key=lambda p: p.stat().st_mtime)
    return result, checkpoint, lines.lines, root


class LogLines(logging.Handler):
    """What the run logs, as RecBole's log file would hold it."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.append(re.sub(r"\x1b\[[0-9;]*m", "", record.getMessage()))  # colours off


@pytest.fixture(scope="module")
def loaded(trained):
    return load_data_and_model(trained[1])


def test_result_has_recbole_keys_beside_ours(trained):
    result = trained[0]
    assert result["valid_score_bigger"] is True
    assert dict(result["best_valid_result"]) == result["valid"]
    assert dict(result["test_result"]) == result["test"]
    assert result["best_valid_score"] == pytest.approx(result["valid"]["ndcg@10"])


def test_log_has_recbole_best_valid_and_test_result_lines(trained):
    result, _, lines, _ = trained
    best = [line for line in lines if "best valid : " in line]
    test = [line for line in lines if "test result: " in line]
    assert best and test
    assert f"('ndcg@10', {result['valid']['ndcg@10']})" in best[-1]
    assert f"('hit@20', {result['test']['hit@20']})" in test[-1]


def test_checkpoint_is_plain_data_with_checksums_and_versions(trained):
    _, checkpoint, _, root = trained
    state = torch.load(checkpoint, weights_only=True)  # no pickled Config inside
    assert state["model"] == "SASRec" and state["dataset"] == DATASET
    assert state["run_config"]["hidden_size"] == 16 and state["run_config"]["epochs"] == 2
    assert state["config"]["MAX_ITEM_LIST_LENGTH"] == 10  # the resolved config, for reading
    folder = root / "atomic_files" / DATASET
    assert state["atomic_files"] == {
        f"{DATASET}.inter": sha256_file(folder / f"{DATASET}.inter"),
        f"{DATASET}.item": sha256_file(folder / f"{DATASET}.item")}
    assert state["versions"]["recbole"] == "1.2.1"


def test_load_data_and_model_reproduces_the_test_metrics(trained, loaded):
    """The rebuilt run evaluates to exactly the numbers the training run reported."""
    result = trained[0]
    config, model, dataset, train_data, valid_data, test_data = loaded
    assert config["model"] == "SASRec" and config["hidden_size"] == 16
    assert dataset.user_num - 1 == result["n_users"]
    assert not model.training
    trainer = MLTrainer(config, model)
    assert trainer.evaluate(test_data, load_best_model=False) == result["test"]
    assert trainer.evaluate(valid_data, load_best_model=False) == result["valid"]


def test_a_reloaded_run_is_the_run_built_for_training(trained, loaded):
    """Training and reload build through one ``build_run``: the same dataset and splits, the
    same initial weights (one seed rule), and with the checkpoint's weights the same scores."""
    from recbole_microlens.config.configurator import MLConfig
    from recbole_microlens.quick_start.reload import rebuild_config

    _, checkpoint, _, root = trained
    config, model, dataset, *splits = loaded
    training = built_run(MLConfig("SASRec", DATASET, config_dict=_options(root)))
    assert training.dataset.inter_feat.interaction.keys() == dataset.inter_feat.interaction.keys()
    for field, values in training.dataset.inter_feat.interaction.items():
        assert torch.equal(values, dataset.inter_feat.interaction[field]), field
    for built, rebuilt in zip(training.splits, splits):
        sequences, sequences_again = built._dataset.user_sequences, rebuilt._dataset.user_sequences
        assert np.array_equal(sequences.items, sequences_again.items)
        assert np.array_equal(sequences.indptr, sequences_again.indptr)
        batches, batches_again = list(built), list(rebuilt)
        assert len(batches) == len(batches_again) > 0
        assert all(_same_batch(a, b) for a, b in zip(batches, batches_again))
    untrained = built_run(rebuild_config(read_checkpoint(checkpoint), path=checkpoint)).model
    initial = training.model.state_dict()
    assert all(torch.equal(initial[name], value) for name, value in untrained.state_dict().items())
    training.model.load_state_dict(read_checkpoint(checkpoint)["state_dict"])
    training.model.eval()
    batch = next(iter(splits[2]))[0]
    with torch.no_grad():
        assert torch.equal(training.model.full_sort_predict(batch), model.full_sort_predict(batch))


def _same_batch(batch, again) -> bool:
    """Whether two loader batches (an Interaction, or a tuple of them and tensors) are equal."""
    if isinstance(batch, tuple):
        return len(batch) == len(again) and all(map(_same_batch, batch, again))
    if hasattr(batch, "interaction"):
        return batch.interaction.keys() == again.interaction.keys() and all(
            torch.equal(value, again[key]) for key, value in batch.interaction.items())
    return torch.equal(batch, again) if torch.is_tensor(batch) else batch == again


def test_a_reload_gets_a_run_id_of_its_own(trained):
    """A reloaded run logs to a file of its own, even from a checkpoint that recorded its id."""
    from recbole_microlens.quick_start.reload import rebuild_config

    state = read_checkpoint(trained[1])
    state["run_config"]["run_id"] = "the-training-run"
    assert rebuild_config(state)["run_id"] != "the-training-run"
    assert rebuild_config(state, {"run_id": "named"})["run_id"] == "named"


def test_recbole_full_sort_topk_runs_on_the_loaded_run(loaded):
    from recbole.utils.case_study import full_sort_topk

    _, model, dataset, _, _, test_data = loaded
    uids = np.array([1, 2, 3])
    scores, items = full_sort_topk(uids, model, test_data, k=5)
    assert items.shape == (3, 5) and (items > 0).all()
    assert (scores[:, :-1] >= scores[:, 1:]).all()


def test_loading_refuses_changed_atomic_files_and_foreign_pickles(trained, tmp_path):
    state = read_checkpoint(trained[1])
    state["atomic_files"][f"{DATASET}.inter"] = "0" * 64
    changed = tmp_path / "changed.pth"
    torch.save(state, changed)
    with pytest.raises(CheckpointError, match=f"{DATASET}.inter is not the file"):
        load_data_and_model(changed)
    pickled = tmp_path / "pickled.pth"
    torch.save({"config": logging.Formatter(), "state_dict": {}}, pickled)  # a RecBole-like pickle
    with pytest.raises(CheckpointError, match="refused to read .*only weights_only loading is allowed"):
        load_data_and_model(pickled)


def _read_tsv(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def test_recommend_writes_topk_tsv_with_tokens_and_history_masked(trained, loaded, tmp_path):
    _, model, dataset, *_ = loaded
    users = [str(token) for token in dataset.field2id_token[dataset.uid_field][1:4]]
    out = tmp_path / "recs.tsv"
    assert main(["recommend", "--checkpoint", str(trained[1]), "--users", *users,
                 "--topk", "7", "--out", str(out)]) == 0
    assert out.read_text().splitlines()[0] == "user_id\trank\titem_id\tscore"
    rows = _read_tsv(out)
    assert [row["user_id"] for row in rows] == [user for user in users for _ in range(7)]
    sequences, iid = dataset.user_sequences, dataset.iid_field
    for user in users:
        mine = [row for row in rows if row["user_id"] == user]
        assert [int(row["rank"]) for row in mine] == list(range(1, 8))
        uid = dataset.field2token_id[dataset.uid_field][user]
        history = sequences.items[sequences.indptr[uid]:sequences.indptr[uid + 1]]
        # the expected ranking, computed directly: last 10 items of the whole history as query
        window = torch.tensor(history[-10:]).unsqueeze(0)
        with torch.no_grad():
            scores = (model(window, torch.tensor([len(window[0])])) @
                      model.item_tower.all_items().T)[0]
        scores[0] = -torch.inf
        scores[torch.from_numpy(history)] = -torch.inf
        expected = torch.topk(scores, 7)
        assert [row["item_id"] for row in mine] == \
            [str(dataset.field2id_token[iid][i]) for i in expected.indices.tolist()]
        assert [float(row["score"]) for row in mine] == \
            pytest.approx(expected.values.tolist(), rel=1e-5)


def test_recommend_scores_all_users_with_one_product_per_batch(trained, loaded, monkeypatch):
    from recbole_microlens.serve import inference

    _, model, dataset, *_ = loaded
    calls = []
    original = type(model).full_sort_predict
    monkeypatch.setattr(type(model), "full_sort_predict",
                        lambda self, interaction: calls.append(len(interaction))
                        or original(self, interaction))
    users = np.arange(1, dataset.user_num)
    rows = inference.recommend(model, dataset, users, k=3, batch_size=100)
    assert calls == [100] * (len(users) // 100) + ([len(users) % 100] if len(users) % 100 else [])
    assert len(rows) == 3 * len(users)


def test_recommend_reports_unknown_users_with_their_line(trained, tmp_path, capsys):
    users_file = tmp_path / "users.txt"
    users_file.write_text("# users to serve\n\nnobody-1\n")
    assert main(["recommend", "--checkpoint", str(trained[1]), "--users-file",
                 str(users_file)]) == 2
    assert f"{users_file}:3: unknown user 'nobody-1'" in capsys.readouterr().err
    assert main(["recommend", "--checkpoint", str(trained[1]), "--users", "ghost"]) == 2
    assert "--users: unknown user 'ghost'" in capsys.readouterr().err


def test_export_embeddings_writes_item_vectors_with_tokens(trained, loaded, tmp_path):
    import json

    _, model, dataset, *_ = loaded
    out = tmp_path / "items.npy"
    assert main(["export-embeddings", "--checkpoint", str(trained[1]), "--out", str(out)]) == 0
    vectors = np.load(out)
    meta = json.loads(out.with_suffix(".json").read_text())
    assert vectors.shape == (dataset.item_num - 1, 16) and vectors.dtype == np.float32
    assert meta["row_tokens"] == [str(t) for t in dataset.field2id_token[dataset.iid_field][1:]]
    np.testing.assert_array_equal(vectors, model.item_tower.embedding.weight[1:].detach().numpy())


def test_user_vectors_dotted_with_item_vectors_give_the_scores_recommend_prints(trained, tmp_path):
    """export-embeddings --user-vectors: one vector per user token, whose dot product with an
    item's vector is the score recommend prints for that (user, item)."""
    import json

    items_out = tmp_path / "vectors.items.npy"
    assert main(["export-embeddings", "--checkpoint", str(trained[1]), "--out", str(items_out),
                 "--user-vectors"]) == 0
    users_out = tmp_path / "vectors.users.npy"
    items, users = np.load(items_out), np.load(users_out)
    item_tokens = json.loads(items_out.with_suffix(".json").read_text())["row_tokens"]
    user_meta = json.loads(users_out.with_suffix(".json").read_text())
    assert users.dtype == np.float32 and users.shape == (trained[0]["n_users"], 16)
    assert user_meta["rows"] == "users" and len(user_meta["row_tokens"]) == len(users)
    chosen = user_meta["row_tokens"][::37]
    recs = tmp_path / "recs.tsv"
    assert main(["recommend", "--checkpoint", str(trained[1]), "--users", *chosen,
                 "--topk", "10", "--out", str(recs)]) == 0
    rows = _read_tsv(recs)
    assert len(rows) == 10 * len(chosen)
    user_row = {token: row for row, token in enumerate(user_meta["row_tokens"])}
    item_row = {token: row for row, token in enumerate(item_tokens)}
    dots = [float(users[user_row[r["user_id"]]] @ items[item_row[r["item_id"]]]) for r in rows]
    assert [float(r["score"]) for r in rows] == pytest.approx(dots, rel=1e-5, abs=1e-6)


def test_a_user_id_model_exports_the_vectors_it_scores_with(tmp_path, one_thread):
    """DSSM: the user and item towers' outputs (after their MLPs), not the raw item embedding."""
    from recbole_microlens.serve.inference import item_vectors, query_interaction, user_vectors

    run_recbole_ml("DSSM", DATASET, config_dict=_options(tmp_path, epochs=1, embedding_size=8,
                                                         mlp_hidden_size=[8]))
    _, model, dataset, *_ = load_data_and_model(next((tmp_path / "saved").glob("DSSM-*.pth")))
    users = np.arange(1, dataset.user_num)
    with torch.no_grad():
        scores = model.full_sort_predict(query_interaction(model, dataset, users))
    torch.testing.assert_close(user_vectors(model, dataset, users, batch_size=50) @
                               item_vectors(model).T, scores, rtol=1e-5, atol=1e-5)


def test_log_wandb_logs_what_stock_recbole_logs(tmp_path, monkeypatch, one_thread):
    """RecBole's own WandbLogger, over a recording stand-in for the wandb service: train/* and
    valid/* per epoch, and the test metrics as eval/* in the run summary (stock evaluate's)."""
    import importlib.machinery
    import types

    logged, service = [], types.ModuleType("wandb")
    service.__spec__ = importlib.machinery.ModuleSpec("wandb", None)  # find_spec sees it
    service.run = None
    service.init = lambda project, config: setattr(service, "run",
                                                   types.SimpleNamespace(summary={}))
    service.log = lambda metrics, commit=True: logged.append(dict(metrics))
    service.define_metric = lambda *args, **kwargs: None
    monkeypatch.setitem(sys.modules, "wandb", service)
    result = run_recbole_ml("SASRec", DATASET, config_dict=_options(
        tmp_path, epochs=1, log_wandb=True, popularity_groups=3))
    summary = service.run.summary
    assert {key: summary[f"eval/{key}"] for key in result["test_result"]} == result["test_result"]
    assert any(entry.get("valid/ndcg@10") == result["best_valid_result"]["ndcg@10"]
               for entry in logged)
    assert any("train/train_loss" in entry for entry in logged)
    assert all(isinstance(value, float) for key, value in summary.items() if key.startswith("eval/"))


def test_run_recbole_ml_refuses_log_wandb_without_wandb_in_one_line(monkeypatch, capsys):
    import importlib.util

    import run_recbole_ml as script

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "wandb" else real_find_spec(name, *a))
    with pytest.raises(SystemExit) as exit_:
        script.main(["--model=SASRec", "--dataset=microlens-sample", "--log_wandb=True"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: log_wandb is True but the wandb package is not installed: pip install wandb "
        "(or set log_wandb: False)"]


def test_objective_function_runs_under_recbole_hypertuning(tmp_path, one_thread):
    """RecBole's own HyperTuning (exhaustive over 2 learning rates) with our objective."""
    import yaml
    from recbole.trainer import HyperTuning

    fixed = tmp_path / "fixed.yaml"
    fixed.write_text(yaml.safe_dump({"model": "SASRec", "dataset": DATASET,
                                     **_options(tmp_path, epochs=1)}))
    tuner = HyperTuning(objective_function, params_dict={"choice": {"learning_rate": [0.001, 0.01]}},
                        fixed_config_file_list=[str(fixed)], algo="exhaustive")
    tuner.run()
    assert len(tuner.params2result) == 2
    for outcome in tuner.params2result.values():
        assert outcome["model"] == "SASRec" and outcome["valid_score_bigger"] is True
        assert outcome["best_valid_score"] == pytest.approx(outcome["best_valid_result"]["ndcg@10"])
        assert set(outcome["test_result"]) == {"hit@10", "ndcg@10", "hit@20", "ndcg@20"}
    assert tuner.best_params["learning_rate"] in (0.001, 0.01)
    assert tuner.best_score == max(r["best_valid_score"] for r in tuner.params2result.values())
