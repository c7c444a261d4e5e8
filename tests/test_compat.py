"""One test per RecBole 1.2.1 compatibility fix."""
import logging
import types
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from recbole.data.dataset import Dataset
from recbole.utils import FeatureType

from recbole_microlens import compat


def test_numpy2_aliases_restored_on_a_numpy_without_them():
    fake_numpy = types.SimpleNamespace(float64=np.float64, complex128=np.complex128,
                                       str_=np.str_, bytes_=np.bytes_)
    added = compat.add_numpy2_aliases(fake_numpy)
    assert set(added) == {"float_", "complex_", "unicode_", "string_"}
    assert fake_numpy.float_ is np.float64
    assert compat.add_numpy2_aliases(fake_numpy) == []  # idempotent


def _dataset_with_nans():
    fake = types.SimpleNamespace(logger=logging.getLogger("test"))
    fake.feat_name_list = ["item_feat"]
    fake.item_feat = pd.DataFrame({"item_id": [1.0, np.nan, 3.0], "likes": [1.0, np.nan, 5.0]})
    fake.field2type = {"item_id": FeatureType.TOKEN, "likes": FeatureType.FLOAT}
    return fake


def test_fill_nan_is_copy_on_write_safe():
    with pd.option_context("mode.copy_on_write", True):  # pandas 3 semantics
        stock = _dataset_with_nans()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Dataset._fill_nan(stock)  # RecBole's chained inplace fillna
        assert stock.item_feat["likes"].isna().any(), "stock RecBole should leave NaN under CoW"
        ours = _dataset_with_nans()
        compat.fill_nan_without_chained_inplace(ours)
    assert ours.item_feat["item_id"].tolist() == [1.0, 0.0, 3.0]
    assert ours.item_feat["likes"].tolist() == [1.0, 3.0, 5.0]


def test_recbole_checkpoints_need_trusted_load_ours_do_not(tmp_path):
    recbole_style = tmp_path / "recbole.pth"
    torch.save({"config": types.SimpleNamespace(model="SASRec"), "state_dict": {}}, recbole_style)
    with pytest.raises(Exception, match="Weights only load failed"):
        compat.torch_load(recbole_style)
    assert compat.torch_load(recbole_style, trusted=True)["config"].model == "SASRec"
    ours = tmp_path / "ours.pth"
    torch.save({"epoch": 3, "state_dict": {"w": torch.ones(2)}}, ours)
    assert compat.torch_load(ours)["epoch"] == 3


def test_ray_newer_than_recbole_allows_is_refused(monkeypatch):
    assert compat.check_ray_version() == "2.6.3"
    monkeypatch.setattr(compat.metadata, "version", lambda name: "2.9.0")
    with pytest.raises(RuntimeError, match="ray<=2.6.3"):
        compat.check_ray_version()


def test_stock_recbole_checkpoint_reload_can_be_allowed(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "0")  # restored after the test
    path = tmp_path / "recbole.pth"
    torch.save({"config": types.SimpleNamespace(model="SASRec")}, path)
    with pytest.raises(Exception, match="Weights only load failed"):
        torch.load(path)  # what RecBole's Trainer.evaluate does
    compat.allow_trusted_recbole_checkpoints()
    assert torch.load(path)["config"].model == "SASRec"


def test_recbole_import_no_longer_leaves_autograd_anomaly_detection_on():
    """RecBole's sine.py turns anomaly detection on at import (every backward output is then
    checked for NaN); after compat.apply() it is off, in a fresh process as in this one."""
    import subprocess
    import sys

    probe = ("import torch, recbole.model.sequential_recommender as s; "
             "before = torch.is_anomaly_enabled(); "
             "from recbole_microlens import compat; compat.apply(); "
             "import recbole.model.sequential_recommender.sine; "
             "print(before, torch.is_anomaly_enabled())")
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True).stdout.split()
    assert output == ["True", "False"]
    torch.autograd.set_detect_anomaly(True)
    assert compat.disable_import_time_anomaly_detection() is True
    assert not torch.is_anomaly_enabled()


def test_two_runs_creating_log_and_checkpoint_folders_together_do_not_crash(tmp_path,
                                                                             monkeypatch):
    """RecBole's ensure_dir checks, then creates: a run whose check came before another run's
    makedirs crashed with FileExistsError (two concurrent runs, issue 22). The race, replayed:
    the check says absent, the folder is there."""
    import os
    import recbole.trainer.trainer
    import recbole.utils.logger

    compat.apply()
    (tmp_path / "log" / "SASRec").mkdir(parents=True)
    monkeypatch.setattr(os.path, "exists", lambda path: False)  # the other run created it after
    for module in (recbole.utils.logger, recbole.trainer.trainer):
        module.ensure_dir(str(tmp_path / "log" / "SASRec"))
    assert compat.race_free_ensure_dir() == []  # every module patched, once


def test_recbole_checkpoints_cannot_be_allow_listed(tmp_path):
    """Why the switch below exists: RecBole saves with pickle protocol 4, whose framing the
    weights-only unpickler rejects whatever classes are allowed."""
    path = tmp_path / "recbole.pth"
    torch.save({"config": {"model": "SASRec"}}, path, pickle_protocol=4)  # plain data even
    with pytest.raises(Exception, match="Unsupported operand 149"):
        torch.load(path, weights_only=True)


def test_stock_run_recbole_completes_its_test_step_on_our_atomic_files(tmp_path, monkeypatch):
    """Stock RecBole's run_recbole on the sample's atomic files: its test step reloads its own
    pickled checkpoint, which only the scoped switch admits; other files stay weights-only."""
    from recbole.quick_start import run_recbole

    from recbole_microlens.data.prepare import ensure_atomic_files

    monkeypatch.delenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", raising=False)
    monkeypatch.chdir(tmp_path)  # RecBole's log/ and log_tensorboard/ land here
    ensure_atomic_files({"dataset": "microlens-sample", "warm": None, "raw_data_path": None,
                         "data_path": str(tmp_path / "atomic_files" / "microlens-sample")})
    saved = tmp_path / "saved"
    options = {"data_path": str(tmp_path / "atomic_files"), "checkpoint_dir": str(saved),
               "epochs": 1, "show_progress": False, "hidden_size": 16, "inner_size": 32,
               "train_neg_sample_args": None, "MAX_ITEM_LIST_LENGTH": 10,
               "load_col": {"inter": ["user_id", "item_id", "timestamp"]}}
    elsewhere = tmp_path / "elsewhere.pth"
    torch.save({"config": types.SimpleNamespace(model="x")}, elsewhere)
    with compat.trusted_recbole_checkpoints(saved):
        result = run_recbole(model="SASRec", dataset="microlens-sample", config_dict=options)
        with pytest.raises(Exception, match="Weights only load failed"):
            torch.load(elsewhere)  # outside the trusted folder: still safe
    assert set(result["test_result"]) == {"recall@10", "mrr@10", "ndcg@10", "hit@10",
                                          "precision@10"}
    checkpoint = next(saved.glob("SASRec-*.pth"))
    with pytest.raises(Exception, match="Weights only load failed"):
        torch.load(checkpoint)  # the switch is off again: what failed RecBole's test step


STOCK_RUN = """
import json, sys
from recbole.quick_start import run_recbole
result = run_recbole(model="SASRec", dataset="microlens-sample", config_dict=json.loads(sys.argv[1]))
print("TEST_RESULT", json.dumps({key: float(value) for key, value in result["test_result"].items()}))
"""


def test_stock_run_recbole_passes_its_test_step_with_the_one_line_opt_in(tmp_path):
    """docs/serving.md's fix for a stock RecBole user: torch's own TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1,
    nothing else (the stock process never imports recbole_microlens; without the variable its
    test step fails, see the test above). Its cost is bounded as that page says: our reader,
    which passes weights_only=True, still refuses a pickle under it."""
    import json
    import os
    import subprocess
    import sys

    from recbole_microlens.io import load_torch_file
    from recbole_microlens.data.prepare import ensure_atomic_files
    from recbole_microlens.errors import CheckpointError

    ensure_atomic_files({"dataset": "microlens-sample", "warm": None, "raw_data_path": None,
                         "data_path": str(tmp_path / "atomic_files" / "microlens-sample")})
    options = {"data_path": str(tmp_path / "atomic_files"), "checkpoint_dir": str(tmp_path / "saved"),
               "epochs": 1, "show_progress": False, "hidden_size": 16, "inner_size": 32,
               "train_neg_sample_args": None, "load_col": {"inter": ["user_id", "item_id", "timestamp"]}}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
    command = [sys.executable, "-c", STOCK_RUN, json.dumps(options)]
    opted_in = subprocess.run(command, cwd=tmp_path, env={**env, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"},
                              capture_output=True, text=True, timeout=600)
    assert opted_in.returncode == 0, opted_in.stderr[-2000:]
    line = next(line for line in opted_in.stdout.splitlines() if line.startswith("TEST_RESULT"))
    assert set(json.loads(line.split(" ", 1)[1])) == {"recall@10", "mrr@10", "ndcg@10", "hit@10",
                                                       "precision@10"}
    stock_checkpoint = max((tmp_path / "saved").glob("SASRec-*.pth"), key=os.path.getmtime)
    os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        with pytest.raises(CheckpointError, match=f"{stock_checkpoint.name} is not a readable"):
            load_torch_file(stock_checkpoint, "ours")  # the opt-in does not reach our reader
    finally:
        del os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"]
