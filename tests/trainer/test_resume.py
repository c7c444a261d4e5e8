"""Resumable training: a run stopped by a signal continues to exactly the uninterrupted numbers."""
from __future__ import annotations

import json
import random
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from recbole_microlens.trainer.checkpoint import plain
from recbole_microlens.trainer.resume import random_states, restore_random_states, state_file_for

from tests.helpers import checkout_env

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "run_recbole_ml.py"
EPOCHS = 6
ARGS = ["--model=SASRec", "--dataset=microlens-sample", f"--epochs={EPOCHS}", "--stopping_step=10",
        "--show_progress=False", "--hidden_size=16", "--inner_size=32"]


def _env():
    return checkout_env(OMP_NUM_THREADS="1")


def _train(workdir: Path, run_id: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *ARGS, f"--run_id={run_id}",
                           f"--result_file={run_id}.json", *extra],
                          cwd=workdir, env=_env(), capture_output=True, text=True, timeout=600)


def _state(workdir: Path, run_id: str) -> Path:
    return workdir / "saved" / "resume" / f"SASRec-{run_id}.pth"


def _sigint_as_from_a_terminal():
    """A shell without job control starts background jobs with SIGINT ignored, and a child
    inherits that (Python then installs no Ctrl-C handler): the run under test gets SIGINT's
    default back, as a run started from a terminal has it, wherever the suite itself runs."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _stop_when(workdir: Path, run_id: str, next_epoch: int, signum: int):
    """Start a run and send ``signum`` once its state says ``next_epoch`` epochs are done
    (an event, not a sleep); returns the finished process and its stderr."""
    process = subprocess.Popen([sys.executable, str(SCRIPT), *ARGS, f"--run_id={run_id}",
                                f"--result_file={run_id}.json"], cwd=workdir, env=_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               preexec_fn=_sigint_as_from_a_terminal)
    state, deadline = _state(workdir, run_id), time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if torch.load(state, weights_only=True)["next_epoch"] >= next_epoch:
                break
        except FileNotFoundError:  # not written yet (it is replaced atomically, never partial)
            pass
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=600)
    return process, stderr


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The sample converted once, and the uninterrupted run every resumed run is held to."""
    root = tmp_path_factory.mktemp("resume")
    done = _train(root, "whole")
    assert done.returncode == 0, done.stderr[-2000:]
    return root


def _result(workdir: Path, run_id: str) -> dict:
    return json.loads((workdir / f"{run_id}.json").read_text())


def test_sigint_after_the_second_epoch_then_resume_gives_the_uninterrupted_numbers(workdir):
    process, stderr = _stop_when(workdir, "stopped", next_epoch=2, signum=signal.SIGINT)
    assert process.returncode == 130
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("interrupted by SIGINT during epoch")
    command = shlex.split(last.split("resume with: ", 1)[1])
    assert command[0] == "python" and command[-1] == "--resume=saved/resume/SASRec-stopped.pth"
    assert torch.load(_state(workdir, "stopped"), weights_only=True)["next_epoch"] >= 2

    resumed = subprocess.run([sys.executable, *command[1:]], cwd=workdir, env=_env(),
                             capture_output=True, text=True, timeout=600)  # the printed command
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    whole, again = _result(workdir, "whole"), _result(workdir, "stopped")
    assert again["epochs_run"] == whole["epochs_run"] == EPOCHS
    for split in ("valid", "test"):
        assert again[split].keys() == whole[split].keys()
        for metric, value in whole[split].items():
            assert again[split][metric] == pytest.approx(value, abs=1e-6), (split, metric)
    assert again["valid_history"] == whole["valid_history"]
    assert len(again["seconds"]["per_epoch"]) == EPOCHS
    assert not _state(workdir, "stopped").exists()  # a completed run leaves nothing to resume


def test_sigterm_stops_cleanly_with_status_143_and_the_resume_command(workdir):
    process, stderr = _stop_when(workdir, "terminated", next_epoch=1, signum=signal.SIGTERM)
    assert process.returncode == 143
    assert "Traceback" not in stderr
    assert "interrupted by SIGTERM" in stderr
    assert "--resume=saved/resume/SASRec-terminated.pth" in stderr


def test_resume_under_other_settings_is_refused_naming_the_key(workdir):
    _stop_when(workdir, "other", next_epoch=1, signum=signal.SIGINT)
    refused = _train(workdir, "other", f"--resume={_state(workdir, 'other')}",
                     "--learning_rate=0.01")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "learning_rate" in refused.stderr and "Traceback" not in refused.stderr


def test_resume_given_the_model_checkpoint_names_the_state_file(workdir):
    checkpoint = workdir / "saved" / "SASRec-whole.pth"
    refused = _train(workdir, "whole", f"--resume={checkpoint}")
    assert refused.returncode == 2
    assert str(state_file_for(checkpoint)) in refused.stderr


def test_random_streams_restore_exactly_and_load_weights_only(tmp_path):
    generator = torch.Generator().manual_seed(7)
    saved = random_states(generator)
    path = tmp_path / "states.pth"
    torch.save(saved, path)
    first = (torch.rand(3), np.random.rand(3), random.random(), torch.randperm(9, generator=generator))
    restore_random_states(torch.load(path, weights_only=True), generator)
    again = (torch.rand(3), np.random.rand(3), random.random(), torch.randperm(9, generator=generator))
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert first[2] == again[2] and torch.equal(first[3], again[3])


def test_plain_turns_numpy_numbers_into_python_numbers(tmp_path):
    data = plain({"loss": np.float32(0.5), "score": np.float64(0.25), "step": np.int64(3),
                  "flag": True, "nested": [np.float64(1.5)]})
    assert type(data["loss"]) is float and type(data["score"]) is float
    assert type(data["step"]) is int and data["flag"] is True
    torch.save(data, tmp_path / "plain.pth")
    assert torch.load(tmp_path / "plain.pth", weights_only=True) == data


def test_the_best_valid_result_keeps_its_breakdowns_through_a_state_file(tmp_path):
    """A content run's best valid result carries fallback counts beside the metrics (flat
    RecBole keys outside, breakdowns on the EvalResult): a resumed run must report them too."""
    from types import SimpleNamespace

    from recbole_microlens.evaluator.ranking import EvalResult
    from recbole_microlens.trainer.resume import restore_training_state, training_state

    model = torch.nn.Linear(2, 2)
    best = EvalResult({"ndcg@10": 0.25}, {"fallback_targets": 3,
                                          "real_content": {"ndcg@10": 0.5}})
    trainer = SimpleNamespace(
        model=model, optimizer=torch.optim.AdamW(model.parameters()), config={"run_id": "r"},
        saved_model_file="saved/M-r.pth", cur_step=1, best_valid_score=0.25,
        best_valid_result=best, epoch_seconds=[1.0], valid_seconds=[0.5],
        valid_history=[dict(best)], epoch_items_encoded=[], train_loss_dict={0: 2.0},
        run_record_once=lambda: {"model": "M", "dataset": "d", "config": {}})
    torch.save(training_state(trainer, 1, False, None), tmp_path / "state.pth")
    trainer.best_valid_result = None
    restore_training_state(trainer, torch.load(tmp_path / "state.pth", weights_only=True), None)
    assert dict(trainer.best_valid_result) == {"ndcg@10": 0.25}
    assert trainer.best_valid_result.breakdowns == best.breakdowns
    assert trainer.start_epoch == 1 and trainer.train_loss_dict == {0: 2.0}


def test_a_run_saved_before_a_key_existed_resumes_and_a_removed_key_is_refused(tmp_path):
    from recbole_microlens.errors import CheckpointError
    from recbole_microlens.trainer.resume import check_same_run
    from recbole_microlens.evaluator.results import jsonable_config
    from tests.helpers import make_config, write_inter_file

    write_inter_file(tmp_path, "tiny", {"u1": ["a", "b", "c"], "u2": ["b", "c", "d"]})
    config = make_config(tmp_path, "tiny")
    saved = plain(jsonable_config(config))
    state = {"model": "SASRec", "dataset": "tiny", "config": dict(saved)}
    del state["config"]["allow_missing_content"]  # written by a version without that key
    check_same_run(state, config, "state.pth")
    state["config"]["a_key_this_version_removed"] = 1
    with pytest.raises(CheckpointError, match="a_key_this_version_removed"):
        check_same_run(state, config, "state.pth")


def test_a_state_saved_when_title_max_length_was_unset_resumes_under_its_yaml_default(tmp_path):
    """title_max_length: ~ cut titles to 64 tokens; the yaml now says 64: the same run."""
    from recbole_microlens.errors import CheckpointError
    from recbole_microlens.trainer.resume import check_same_run
    from recbole_microlens.evaluator.results import jsonable_config
    from tests.helpers import make_config, write_inter_file

    write_inter_file(tmp_path, "tiny", {"u1": ["a", "b", "c"], "u2": ["b", "c", "d"]})
    config = make_config(tmp_path, "tiny")
    assert config["title_max_length"] == 64
    state = {"model": "SASRec", "dataset": "tiny", "config": plain(jsonable_config(config))}
    state["config"]["title_max_length"] = None
    check_same_run(state, config, "state.pth")
    state["config"]["title_max_length"] = 32
    with pytest.raises(CheckpointError, match="title_max_length: 32 -> 64"):
        check_same_run(state, config, "state.pth")
