"""Nothing lost, nothing mixed up (issue 12): every case of the issue's table, as a user meets it.

Datasets are complete or absent; runs own their outputs; configuration is strict and safe; raw
file faults are reported by file and line; killed commands leave no processes; bad input gives
one line and exit status 2.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from recbole_microlens.cli.commands import main as cli_main
from recbole_microlens.config.check import ConfigError, parse_overrides
from recbole_microlens.data.raw.convert import convert_dataset
from recbole_microlens.data.stores.atomic import dataset_problem, require_complete
from recbole_microlens.data.prepare import ensure_atomic_files
from recbole_microlens.data.raw.readers import RawFormatError, detect_raw_files
from recbole_microlens.errors import DatasetError
from tests.helpers import checkout_env, wait_for

REPO = Path(__file__).resolve().parents[2]
PAIRS = [f"{user}\t" + " ".join(str(10 + (user * 3 + k) % 17) for k in range(8)) for user in range(1, 9)]
TITLES = ["item,title"] + [f"{item},title of {item}" for item in range(10, 27)]
USERS = ["user,gender"] + [f"{user},{'MF'[user % 2]}" for user in range(1, 9)]
OUTPUT_FILES = ["ml.inter", "ml.item", "ml.titles.csv", "ml.user", "ml.meta.json"]


def folder_bytes(folder: Path) -> dict:
    return {str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture
def converted(write_raw, tmp_path):
    """A complete dataset ``out/ml`` (with every optional output) plus a media/ folder in it."""
    write_raw("ml_pairs.tsv", PAIRS)
    write_raw("ml_titles.csv", TITLES)
    write_raw("ml_users.csv", USERS)
    convert_dataset(detect_raw_files(tmp_path / "raw"), "ml", tmp_path / "out")
    (tmp_path / "out/ml/media").mkdir()
    (tmp_path / "out/ml/media/store.bin").write_bytes(b"frames")
    return tmp_path / "out/ml"


# ------------------------------------------------------------------ 1. complete or absent


def test_the_converter_writes_every_output_with_its_checksum(converted):
    meta = json.loads((converted / "ml.meta.json").read_text())
    assert sorted(meta["checksums"]) == sorted(OUTPUT_FILES[:-1]) == meta["outputs"]
    assert dataset_problem(converted, "ml") is None
    assert not list(converted.parent.glob(".ml.partial*"))


@pytest.mark.parametrize("fail_after", range(1, len(OUTPUT_FILES) + 1))
def test_a_failure_after_any_file_leaves_the_earlier_dataset_untouched(converted, tmp_path,
                                                                       monkeypatch, fail_after):
    before = folder_bytes(converted)
    real_replace, written = os.replace, []

    def replace_then_fail(source, destination):
        real_replace(source, destination)
        written.append(Path(destination).name)
        if len(written) == fail_after:
            raise RuntimeError(f"injected failure after {written[-1]}")

    monkeypatch.setattr(os, "replace", replace_then_fail)
    with pytest.raises(RuntimeError, match="injected"):
        convert_dataset(detect_raw_files(tmp_path / "raw"), "ml", tmp_path / "out", keep_last=6)
    monkeypatch.undo()
    assert written[-1] == OUTPUT_FILES[fail_after - 1]
    assert folder_bytes(converted) == before
    assert not list(converted.parent.glob(".ml.partial*"))


def test_a_successful_reconversion_replaces_outputs_and_keeps_other_entries(converted, tmp_path):
    old_inter = (converted / "ml.inter").read_bytes()
    (tmp_path / "raw/ml_users.csv").unlink()
    convert_dataset(detect_raw_files(tmp_path / "raw"), "ml", tmp_path / "out", keep_last=6)
    assert (converted / "ml.inter").read_bytes() != old_inter
    assert not (converted / "ml.user").exists()  # the input is gone, so is its output
    assert (converted / "media/store.bin").read_bytes() == b"frames"
    assert dataset_problem(converted, "ml") is None


def test_a_bad_users_file_leaves_the_earlier_dataset_untouched(converted, tmp_path):
    before = folder_bytes(converted)
    (tmp_path / "raw/ml_users.csv").write_text("user,gender\nabc,M\n")
    with pytest.raises(RawFormatError, match=r"ml_users.csv:2: user 'abc' is not an integer"):
        convert_dataset(detect_raw_files(tmp_path / "raw"), "ml", tmp_path / "out", keep_last=6)
    assert folder_bytes(converted) == before


KILL_SCRIPT = """
import os, signal, sys
from pathlib import Path
from recbole_microlens.data.raw.convert import convert_dataset
from recbole_microlens.data.raw.readers import detect_raw_files

real_replace, written = os.replace, []
def replace_then_die(source, destination):
    real_replace(source, destination)
    written.append(destination)
    if len(written) == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)
os.replace = replace_then_die
convert_dataset(detect_raw_files(sys.argv[1]), "ml", sys.argv[2], keep_last=6)
"""


def test_a_kill_after_any_file_leaves_the_earlier_dataset_and_the_next_run_cleans_up(
        converted, tmp_path):
    before = folder_bytes(converted)
    for kill_after in range(1, len(OUTPUT_FILES) + 1):
        done = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(tmp_path / "raw"),
                               str(tmp_path / "out"), str(kill_after)], cwd=REPO)
        assert done.returncode == -signal.SIGKILL
        assert folder_bytes(converted) == before, f"killed after file {kill_after}"
    assert len(list(converted.parent.glob(".ml.partial*"))) == 1  # each run removes the last's
    convert_dataset(detect_raw_files(tmp_path / "raw"), "ml", tmp_path / "out", keep_last=6)
    assert not list(converted.parent.glob(".ml.partial*"))
    assert dataset_problem(converted, "ml") is None


@pytest.mark.parametrize("damage", ["no meta", "truncated inter", "stray user file"])
def test_training_refuses_an_incomplete_dataset_and_says_how_to_rebuild(converted, damage):
    if damage == "no meta":
        (converted / "ml.meta.json").unlink()
    elif damage == "truncated inter":
        data = (converted / "ml.inter").read_bytes()
        (converted / "ml.inter").write_bytes(data[: len(data) // 2])
    else:
        meta = json.loads((converted / "ml.meta.json").read_text())
        del meta["checksums"]["ml.user"]
        (converted / "ml.meta.json").write_text(json.dumps(meta))
    config = {"dataset": "ml", "data_path": str(converted), "raw_data_path": None, "warm": None}
    with pytest.raises(DatasetError, match=r"incomplete: .*recbole-microlens convert --raw-dir "):
        ensure_atomic_files(config)


def test_an_incomplete_dataset_is_converted_again_when_its_raw_folder_is_known(converted,
                                                                               tmp_path):
    (converted / "ml.meta.json").unlink()
    config = {"dataset": "ml", "data_path": str(converted), "raw_data_path": str(tmp_path / "raw"),
              "warm": None}
    ensure_atomic_files(config)
    require_complete(converted, "ml")


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", ".hidden", ""])
def test_dataset_names_cannot_leave_out(write_raw, tmp_path, name, capsys):
    write_raw("ml_pairs.tsv", PAIRS)
    out = tmp_path / "deep/er/out"
    code = cli_main(["convert", "--raw-dir", str(tmp_path / "raw"), "--dataset", name,
                     "--out", str(out)])
    assert code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "not a plain folder name" in error
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["ml_pairs.tsv"]


# ------------------------------------------------------------------ 4. raw files


def test_an_unterminated_quote_is_a_file_line_error(write_raw, tmp_path):
    write_raw("ml_pairs.tsv", PAIRS)
    titles = TITLES[:3] + ['12,"a title that never ends'] + TITLES[4:]
    write_raw("ml_titles.csv", titles)
    with pytest.raises(RawFormatError, match=r"ml_titles.csv:4: unterminated quote"):
        convert_dataset(detect_raw_files(tmp_path / "raw"), "ml", tmp_path / "out")
    assert not (tmp_path / "out/ml").exists()


def test_an_unterminated_quote_is_a_counted_skip_with_skip_bad(write_raw, tmp_path):
    write_raw("ml_pairs.tsv", PAIRS)
    write_raw("ml_titles.csv", TITLES[:3] + ['12,"a title that never ends'] + TITLES[4:]
              + ['40,"a real title', 'on two lines"'])
    meta = convert_dataset(detect_raw_files(tmp_path / "raw"), "ml", tmp_path / "out",
                           skip_bad=True)
    assert meta["row_counts"]["titles"]["malformed_line"] == 1
    titles = (tmp_path / "out/ml/ml.titles.csv").read_text().splitlines()
    assert "13,title of 13" in titles  # the line after the bad one is read, not swallowed
    assert "12," in titles  # the skipped title is empty, not the following records


def test_timestamps_in_seconds_among_milliseconds_are_scaled_and_counted(write_raw, tmp_path):
    in_ms = [f"{user},{item},{1_600_000_000_000 + 1000 * (user * 10 + k)}"
             for user in range(1, 4) for k, item in enumerate(range(10, 16))]
    # user 9 watched 20, 21, 22 (rows in ms), then 23, 24, 25 (rows in seconds): unscaled, the
    # later items would sort first
    user9 = [f"9,{20 + k},{1_700_000_000_000 + 1000 * k}" for k in range(3)]
    user9 += [f"9,{23 + k},{1_700_000_010 + k}" for k in range(3)]
    write_raw("ml_pairs.csv", ["user,item,timestamp"] + user9 + in_ms)
    meta = convert_dataset(detect_raw_files(tmp_path / "raw"), "ml", tmp_path / "out")
    assert meta["row_counts"]["pairs_csv"]["timestamp_in_seconds_scaled_to_ms"] == 3
    assert meta["timestamp"] == ("Unix epoch milliseconds (3 rows found in seconds, scaled to "
                                 "milliseconds)")
    rows = [line.split("\t") for line in (tmp_path / "out/ml/ml.inter").read_text().splitlines()[1:]]
    assert [(item, float(stamp)) for user, item, stamp in rows if user == "9"] == [
        ("20", 1_700_000_000_000.0), ("21", 1_700_000_001_000.0), ("22", 1_700_000_002_000.0),
        ("23", 1_700_000_010_000.0), ("24", 1_700_000_011_000.0), ("25", 1_700_000_012_000.0)]


# ------------------------------------------------------------------ 3. strict configuration


def test_unknown_keys_name_the_closest_known_key(tmp_path):
    from recbole_microlens.config.configurator import MLConfig

    with pytest.raises(ConfigError, match=r"'hiden_size'.*did you mean 'hidden_size'"):
        MLConfig("SASRec", "ml", None, {"hiden_size": 16})
    config_file = tmp_path / "my.yaml"
    config_file.write_text("learning_rat: 0.01\n")
    with pytest.raises(ConfigError, match=rf"{config_file}; did you mean 'learning_rate'"):
        MLConfig("SASRec", "ml", [str(config_file)], None)


def test_keys_of_a_user_defined_model_are_declared_explicitly():
    from recbole_microlens.config.configurator import MLConfig

    config = MLConfig("SASRec", "ml", None, {"my_gate": 0.5, "extra_config_keys": ["my_gate"]})
    assert config["my_gate"] == 0.5


def test_command_line_values_are_literals_and_paths_stay_strings():
    assert parse_overrides(["--epochs", "1", "--hidden_size=16"]) == {"epochs": 1, "hidden_size": 16}
    assert parse_overrides(["--result_file=id.json", "--data_path=1e3",
                            "--checkpoint_dir", "open", "--gpu_id=0,1"]) == {
        "result_file": "id.json", "data_path": "1e3", "checkpoint_dir": "open", "gpu_id": "0,1"}
    assert parse_overrides(["--encoder_overrides={'size': 64}", "--topk=[10, 20]",
                            "--seed=__import__('os').getpid()"]) == {
        "encoder_overrides": {"size": 64}, "topk": [10, 20],
        "seed": "__import__('os').getpid()"}  # a string, never evaluated
    with pytest.raises(ConfigError, match="--epochs needs a value"):
        parse_overrides(["--epochs"])
    with pytest.raises(ConfigError, match="unexpected argument '1'"):
        parse_overrides(["1"])


@pytest.mark.parametrize("override, message", [
    ({"epochs": 0}, "epochs must be an integer >= 1, got 0"),
    ({"hidden_size": 0}, "hidden_size must be an integer >= 1, got 0"),
    ({"train_batch_size": 2.5}, "train_batch_size must be an integer >= 1, got 2.5"),
    ({"learning_rate": "abc"}, "learning_rate must be a positive number, got 'abc'"),
    ({"learning_rate": float("nan")}, "learning_rate must be a positive number"),
    ({"encoder_learning_rate": -1.0}, "encoder_learning_rate must be a positive number"),
])
def test_values_out_of_range_are_errors_naming_the_key(override, message):
    from recbole_microlens.config.configurator import MLConfig

    with pytest.raises(ConfigError, match=message):
        MLConfig("SASRec", "ml", None, override)


def test_a_misspelt_key_in_a_tune_search_space_is_an_error_before_ray_starts(tmp_path):
    from tests.helpers import write_inter_file
    from recbole_microlens.tune import run_tune

    write_inter_file(tmp_path, "tiny", {f"u{u}": [f"i{(u + k) % 9}" for k in range(6)]
                                        for u in range(5)})
    space = {"search_space": {"learning_rat": [1e-3, 1e-4]}}
    with pytest.raises(ConfigError, match=r"'learning_rat' in the tune search space.*"
                                          r"did you mean 'learning_rate'"):
        run_tune("SASRec", "tiny", space, config_dict={"data_path": str(tmp_path)},
                 tune_dir=tmp_path / "tune")
    assert not (tmp_path / "tune").exists()
    # a key the model never reads (GRU4Rec has no n_heads) would rank identical trials
    with pytest.raises(ConfigError, match=r"'n_heads' in the tune search space \(keys GRU4Rec"):
        run_tune("GRU4Rec", "tiny", {"search_space": {"n_heads": [1, 2]}},
                 config_dict={"data_path": str(tmp_path)}, tune_dir=tmp_path / "tune")


def run_main(argv, monkeypatch, capsys):
    """``run_recbole_ml.py`` as a user runs it: exit status and stderr."""
    import run_recbole_ml

    monkeypatch.setattr(sys, "argv", ["run_recbole_ml.py", *argv])
    with pytest.raises(SystemExit) as exit_:
        run_recbole_ml.main()
        raise SystemExit(0)
    return exit_.value.code, capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--hiden_size=16"], "unknown config key 'hiden_size' in config_dict (or --key=value); "
                          "did you mean 'hidden_size'?"),
    (["--epochs=0"], "config epochs must be an integer >= 1, got 0"),
    (["--hidden_size=0"], "config hidden_size must be an integer >= 1, got 0"),
    (["--learning_rate=abc"], "config learning_rate must be a positive number, got 'abc'"),
    (["--epochs"], "--epochs needs a value"),
    (["--dataset=../../x"], "dataset name '../../x' is not a plain folder name"),
    (["--dataset=nothing-here", "--data_path=/nonexistent"], "no atomic files for dataset"),
])
def test_bad_input_to_run_recbole_ml_is_one_line_and_exit_2(argv, message, monkeypatch, capsys,
                                                           tmp_path):
    monkeypatch.chdir(tmp_path)
    code, err = run_main(argv, monkeypatch, capsys)
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], err  # (a library's import warning aside)
    assert "Traceback" not in err


def test_debug_shows_the_traceback(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError):
        run_main(["--epochs=0", "--debug"], monkeypatch, capsys)


def test_space_separated_values_and_builtin_named_paths_reach_the_run(monkeypatch, capsys,
                                                                      tmp_path, one_thread):
    """``--epochs 1`` trains one epoch (not the default 100); ``--result_file=id.json`` (the name
    of a Python builtin) is a file name, not code."""
    from tests.helpers import write_inter_file

    write_inter_file(tmp_path, "tiny", {f"u{u}": [f"i{(u + k) % 9}" for k in range(6)]
                                        for u in range(6)})
    monkeypatch.chdir(tmp_path)
    code, err = run_main(["--model=SASRec", "--dataset=tiny", f"--data_path={tmp_path}",
                          "--epochs", "1", "--hidden_size", "8", "--inner_size=16",
                          "--result_file=id.json", "--show_progress=false", "--train_batch_size=4"],
                         monkeypatch, capsys)
    assert code == 0, err
    result = json.loads((tmp_path / "id.json").read_text())
    assert result["epochs_run"] == 1 and result["config"]["hidden_size"] == 8


# ------------------------------------------------------------------ 6. checkpoints


class Payload:
    def __reduce__(self):
        return (os.getpid, ())


@pytest.mark.parametrize("content, problem", [
    (b"", "is empty"),
    (bytes(range(256)) * 4, "is not a readable torch file"),
    (b"\x80\x02}q\x00(X\x01", "is not a readable torch file"),  # a truncated pickle
    ("pickle", "refused to read"),
    ("no state_dict", "has no ['state_dict']"),
], ids=["empty", "random", "truncated", "code", "foreign"])
def test_checkpoint_errors_name_the_file_and_the_format_expected(tmp_path, content, problem):
    import torch

    from recbole_microlens.io import load_trainer_checkpoint
    from recbole_microlens.errors import CheckpointError

    path = tmp_path / "SASRec-run.pth"
    if content == "pickle":
        torch.save({"state_dict": Payload()}, path)
    elif content == "no state_dict":
        torch.save({"weights": torch.zeros(2)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError) as error:
        load_trainer_checkpoint(path)
    message = str(error.value)
    assert str(path) in message and problem in message
    assert "expected a recbole-microlens checkpoint (a dict with 'state_dict'" in message


# ------------------------------------------------------------------ 2. every run owns its outputs

TWO_RUNS_SCRIPT = """
import json, sys, time
from pathlib import Path

import recbole.trainer.trainer, recbole.utils, recbole.utils.logger, recbole.utils.utils
import torch

torch.set_num_threads(1)
SAME_SECOND = "Jan-01-2026_00-00-00"  # both runs start "in the same second"
for module in (recbole.utils, recbole.utils.utils, recbole.utils.logger, recbole.trainer.trainer):
    module.get_local_time = lambda: SAME_SECOND
import recbole_microlens.config.run_id
recbole_microlens.config.run_id.get_local_time = lambda: SAME_SECOND

from recbole_microlens.quick_start import run_recbole_ml
from recbole_microlens.config.configurator import MLConfig
from tests.helpers import built_run
from recbole_microlens.model import get_model
from recbole_microlens.trainer.trainer import MLTrainer

root, seed, go = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
options = {"data_path": str(root), "checkpoint_dir": str(root / "saved"), "seed": seed,
           "epochs": 2, "hidden_size": 8, "inner_size": 16, "train_batch_size": 4,
           "learning_rate": 0.01, "show_progress": False}
(root / f"ready-{seed}").touch()
while not go.exists():
    time.sleep(0.01)
result = run_recbole_ml("SASRec", "tiny", None, dict(options))
(root / f"done-{seed}").touch()
while len(list(root.glob("done-*"))) < 2:  # re-read the checkpoint after both runs wrote theirs
    time.sleep(0.05)
checkpoint = root / "saved" / f"SASRec-{result['config']['run_id']}.pth"
config = MLConfig("SASRec", "tiny", None, dict(options))
train, valid, test = built_run(config, model=False).splits
trainer = MLTrainer(config, get_model("SASRec")(config, train._dataset))
again = trainer.evaluate(test, load_best_model=True, model_file=str(checkpoint))
json.dump({"test": result["test"], "again": again, "checkpoint": str(checkpoint)},
          open(root / f"result-{seed}.json", "w"))
"""


def test_two_concurrent_runs_of_one_model_each_test_their_own_weights(tmp_path):
    from tests.helpers import write_inter_file

    write_inter_file(tmp_path, "tiny", {f"u{u}": [f"i{(u * 5 + k * 3) % 23}" for k in range(8)]
                                        for u in range(40)})
    go = tmp_path / "go"
    env = checkout_env(OMP_NUM_THREADS="1")
    runs = [subprocess.Popen([sys.executable, "-c", TWO_RUNS_SCRIPT, str(tmp_path), str(seed),
                              str(go)], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
            for seed in (1, 2)]

    def a_run_exited():
        """a run exited before it was ready"""
        return any(run.poll() is not None for run in runs)

    wait_for(lambda: len(list(tmp_path.glob("ready-*"))) == 2, failed=a_run_exited)
    go.touch()
    for run in runs:
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err[-3000:]
    results = [json.loads((tmp_path / f"result-{seed}.json").read_text()) for seed in (1, 2)]
    assert len(list((tmp_path / "saved").glob("SASRec-*.pth"))) == 2
    assert results[0]["checkpoint"] != results[1]["checkpoint"]
    for result in results:
        assert result["test"] == result["again"]  # what it reported is what its own file scores
    assert results[0]["test"] != results[1]["test"]  # two seeds: two different models
    logs = list((tmp_path / "log" / "SASRec").glob("*.log"))
    assert len(logs) == 2


# ------------------------------------------------------------------ 5. processes


def cpu_ticks(pid: int) -> int:
    """User + system CPU ticks ``pid`` has used (0 once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


@pytest.fixture(scope="module")
def media_dataset(tmp_path_factory):
    """A converted sample with enough videos that decoding them takes a few seconds."""
    from recbole_microlens.data.sample.generate import generate_sample_raw

    root = tmp_path_factory.mktemp("media")
    generate_sample_raw(root / "raw", n_users=30, n_items=60, seed=3)
    convert_dataset(detect_raw_files(root / "raw"), "ms", root / "out", min_user_inter=3)
    return root


def test_a_missing_raw_folder_is_an_error(media_dataset, capsys):
    code = cli_main(["prepare-media", "--dataset", "ms", "--data-path",
                     str(media_dataset / "out"), "--raw-dir", str(media_dataset / "missing")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert f"raw folder {media_dataset / 'missing'} does not exist" in err


@pytest.mark.parametrize("command", [
    ["prepare-media", "--size", "32", "--workers", "2"],
    ["extract-features", "--encoder", "x3d-xs", "--encoder-checkpoint", "random", "--size", "32"],
])
def test_killing_a_media_command_leaves_no_decoding_workers(media_dataset, tmp_path, command):
    import shutil

    from recbole_microlens.processes import descendants, running

    shutil.copytree(media_dataset / "out", tmp_path / "out")  # no store built by another test
    command = [sys.executable, "-m", "recbole_microlens", *command, "--dataset", "ms",
               "--data-path", str(tmp_path / "out"), "--raw-dir", str(media_dataset / "raw")]
    env = checkout_env(OMP_NUM_THREADS="1")
    parent = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    workers: set[int] = set()

    def workers_at_work() -> bool:  # two workers started and running (they have used CPU)
        workers.update(descendants(parent.pid))
        return sum(cpu_ticks(pid) > 0 for pid in workers) >= 2

    def parent_exited():
        """the command exited before two workers ran"""
        return parent.poll() is not None

    wait_for(workers_at_work, failed=parent_exited)
    workers.update(descendants(parent.pid))
    parent.kill()
    parent.wait()
    wait_for(lambda: not any(map(running, workers)), guard=300,
             describe=lambda: f"workers left running: {[p for p in workers if running(p)]}")


NO_GUARD_SCRIPT = """
import sys
from recbole_microlens.data.stores.media import build_frame_store, FrameSpec
build_frame_store(sys.argv[1] + "/raw/videos", [str(i) for i in range(1, 9)], sys.argv[2],
                  FrameSpec(num_frames=2, interval=1, size=16), workers=2, progress=False)
print("built")
"""


def test_a_script_without_a_main_guard_gets_a_clear_error(media_dataset, tmp_path):
    script = tmp_path / "no_guard.py"
    script.write_text(NO_GUARD_SCRIPT)
    env = checkout_env(OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, str(script), str(media_dataset), str(tmp_path / "store")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert 'put the code that runs it under `if __name__ == "__main__":`' in done.stderr


def test_killing_a_tune_sweep_leaves_no_ray_processes(tmp_path):
    from tests.helpers import write_inter_file
    from recbole_microlens.processes import descendants, running

    write_inter_file(tmp_path, "tiny", {f"u{u}": [f"i{(u + k) % 9}" for k in range(6)]
                                        for u in range(6)})
    (tmp_path / "setup.yaml").write_text(f"data_path: {tmp_path}\nepochs: 50\nhidden_size: 8\n"
                                         "inner_size: 16\nshow_progress: false\n")
    command = [sys.executable, "-m", "recbole_microlens", "tune", "--model", "SASRec",
               "--dataset", "tiny", "--config-files", str(tmp_path / "setup.yaml"),
               "--tune_config", "sample", "--max_concurrent", "1", "--tune_dir",
               str(tmp_path / "tune")]
    env = checkout_env(OMP_NUM_THREADS="1")
    driver = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    started: set[int] = set()

    def raylet_started() -> bool:
        started.update(descendants(driver.pid))
        names = {Path(f"/proc/{pid}/comm").read_text().strip() for pid in started if running(pid)}
        return "raylet" in names and driver.poll() is None

    def trial_reported() -> bool:  # a trial is training: its first epoch is in result.json
        started.update(descendants(driver.pid))
        return any(path.stat().st_size for path in (tmp_path / "tune").rglob("result.json"))

    def driver_exited():
        """the sweep exited before a trial trained"""
        return driver.poll() is not None

    try:
        wait_for(raylet_started, failed=driver_exited)
        wait_for(trial_reported, failed=driver_exited)
        started.update(descendants(driver.pid))
    finally:
        driver.kill()
        driver.wait()
    wait_for(lambda: not any(map(running, started)), guard=300, describe=lambda: "left running: "
             f"{[Path(f'/proc/{p}/cmdline').read_text()[:80] for p in started if running(p)]}")


# ------------------------------------------------------------------ 6. one-line errors


@pytest.mark.parametrize("argv, message", [
    (["convert", "--raw-dir", "{tmp}/missing", "--dataset", "x", "--out", "{tmp}/o"],
     "raw directory {tmp}/missing does not exist"),
    (["prepare-media", "--dataset", "nope", "--data-path", "{tmp}"], "no atomic files in"),
    (["extract-features", "--dataset", "nope", "--data-path", "{tmp}", "--encoder", "nosuch"],
     "encoder 'nosuch' is unknown"),
    (["extract-features", "--dataset", "nope", "--data-path", "{tmp}", "--encoder", "bert-tiny",
      "--encoder-checkpoint", "random"], "no atomic files for dataset 'nope'"),
    (["extract-features", "--dataset", "nope", "--data-path", "{tmp}"],  # VideoMAE, offline
     "hub id MCG-NJU/videomae-base-finetuned-kinetics"),
    (["tune", "--model", "SASRec", "--dataset", "nope", "--tune_config", "nosuch"],
     "no tune config 'nosuch'"),
    (["sweep", "--model", "SASRecV", "--dataset", "nope", "--encoders", "x", "--out", "{tmp}/s"],
     "unknown encoders ['x']"),
    (["sweep", "--model", "SASRecV", "--dataset", "nope", "--encoders", "x", "--out", "{tmp}/s",
      "--epochs"], "--epochs needs a value"),
    (["report", "{tmp}/missing.json"], "missing.json"),
])
def test_every_command_reports_bad_input_in_one_line_with_exit_2(argv, message, tmp_path,
                                                                 capsys):
    argv = [arg.format(tmp=tmp_path) for arg in argv]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and message.format(tmp=tmp_path) in lines[0]
    assert "Traceback" not in err


# ------------------------------------------------------------------ 7. round 3 (issue 22)
# Served outputs are finite (a NaN item vector: recommend and export-embeddings). The issue's
# eight minor cases, one test (or more) each:
#   1. a killed conversion's temp file ........ test_a_temp_file_left_by_a_killed_conversion_...
#   2. recommend --batch-size 0 / a user twice / --device cuda without GPU / --out a folder
#      ...................................... test_recommend_refuses_bad_options_in_one_line,
#                                              test_recommend_serves_a_user_listed_twice_once
#   3. unreadable new items marked in the TSV .. test_cold_start.py (needs its trained encoder)
#   4. --no-verify on a changed dataset ........ test_recommend_with_no_verify_on_a_changed_...
#   5. ENOSPC / ulimit -f: checkpoint, convert . test_a_disk_that_fills_..., test_a_file_size_...
#   6. a moved dataset, --data-path ........... test_a_moved_dataset_is_named_and_found_...
#   7. 100 % fallback prints n/a .............. test_fallback_media.py (needs media-less data)
#   8. --dataset=../../x names the rule ....... test_a_bad_dataset_name_is_refused_by_the_rule_...
# A sweep whose space fails the range checks, or in which no trial completes: test_tune.py.

SERVED_OPTIONS = {"epochs": 1, "hidden_size": 8, "inner_size": 16, "train_batch_size": 8,
                  "show_progress": False}


def train_tiny(root: Path) -> dict:
    """SASRec trained one epoch on a hand-made dataset in ``root/data``: its checkpoint, what
    the run printed and what it logged."""
    import contextlib
    import io
    import logging

    from tests.helpers import write_inter_file
    from recbole_microlens.quick_start import run_recbole_ml

    write_inter_file(root / "data", "tiny", {f"u{u}": [f"i{(u * 5 + k * 3) % 23}" for k in range(8)]
                                             for u in range(30)})
    logged, handler = [], logging.Handler(logging.INFO)
    handler.emit = lambda record: logged.append(record.getMessage())
    root_logger, level = logging.getLogger(), logging.getLogger().level
    root_logger.addHandler(handler)
    root_logger.setLevel(logging.INFO)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            run_recbole_ml("SASRec", "tiny", None, {**SERVED_OPTIONS,
                                                    "data_path": str(root / "data"),
                                                    "checkpoint_dir": str(root / "saved")})
    finally:
        root_logger.removeHandler(handler)
        root_logger.setLevel(level)
    checkpoint = next((root / "saved").glob("SASRec-*.pth"))
    return {"root": root, "checkpoint": checkpoint, "printed": printed.getvalue(),
            "logged": "\n".join(logged)}


@pytest.fixture(scope="module")
def served(tmp_path_factory, one_thread):
    return train_tiny(tmp_path_factory.mktemp("served"))


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def item_tokens(checkpoint) -> list[str]:
    from recbole_microlens.quick_start import load_data_and_model

    _, _, dataset, *_ = load_data_and_model(checkpoint, quiet=True)
    return [str(token) for token in dataset.field2id_token[dataset.iid_field]]


def test_the_summary_table_is_printed_once_and_not_logged(served):
    assert served["printed"].count("| split") == 1
    assert "| split" not in served["logged"] and "test result" in served["logged"]


@pytest.mark.parametrize("command", ["recommend", "export-embeddings"])
def test_serving_a_checkpoint_with_a_nan_item_vector_is_an_error_naming_the_item(
        served, tmp_path, capsys, command):
    import torch

    state = torch.load(served["checkpoint"], weights_only=True)
    table = next(key for key in state["state_dict"] if key.endswith("embedding.weight")
                 and "item" in key)
    state["state_dict"][table][5] = float("nan")
    broken = tmp_path / "SASRec-nan.pth"
    torch.save(state, broken)
    out = tmp_path / "out.file"
    extra = ["--users", "u1", "u2"] if command == "recommend" else []
    assert cli_main([command, "--checkpoint", str(broken), *extra, "--out", str(out)]) == 2
    error = one_error_line(capsys)
    assert f"item {item_tokens(served['checkpoint'])[5]!r}" in error and "nan" in error
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))


def test_recommend_serves_a_user_listed_twice_once(served, tmp_path):
    out = tmp_path / "recs.tsv"
    assert cli_main(["recommend", "--checkpoint", str(served["checkpoint"]), "--users", "u3",
                     "u1", "u3", "--topk", "2", "--out", str(out)]) == 0
    users = [line.split("\t")[0] for line in out.read_text().splitlines()[1:]]
    assert users == ["u3", "u3", "u1", "u1"]


def _no_gpu_device() -> str:
    import torch

    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return "cuda" if visible == 0 else f"cuda:{visible}"


@pytest.mark.parametrize("option, message", [
    (["--batch-size", "0"], "batch size must be at least 1, got 0"),
    (["--device", "NO_GPU"], "CUDA devices are visible here"),
    (["--out", "FOLDER"], "is a folder; name a file in it"),
])
def test_recommend_refuses_bad_options_in_one_line(served, tmp_path, capsys, option, message):
    option = [_no_gpu_device() if arg == "NO_GPU" else str(tmp_path) if arg == "FOLDER" else arg
              for arg in option]
    assert cli_main(["recommend", "--checkpoint", str(served["checkpoint"]), "--users", "u1",
                     *option]) == 2
    assert message in one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []  # nothing written into a folder named as --out


def _moved_copy(served, tmp_path, change_items: bool = False) -> Path:
    """The served dataset copied to ``tmp_path/moved`` (with one more item when asked)."""
    import shutil

    from recbole_microlens.data.stores.atomic import seal

    moved = tmp_path / "moved"
    shutil.copytree(served["root"] / "data", moved)
    if change_items:
        inter = moved / "tiny" / "tiny.inter"
        inter.write_text(inter.read_text() + "u1\tbrand-new\t99\n")
        seal(moved / "tiny", "tiny", {"dataset": "tiny", "converter": "tests/cli/test_faults.py"})
    return moved


def test_recommend_with_no_verify_on_a_changed_dataset_is_a_one_line_error(served, tmp_path,
                                                                          capsys):
    moved = _moved_copy(served, tmp_path, change_items=True)
    command = ["recommend", "--checkpoint", str(served["checkpoint"]), "--users", "u1",
               "--data-path", str(moved)]
    assert cli_main(command) == 2
    assert "is not the file this model was trained on" in one_error_line(capsys)
    assert cli_main(command + ["--no-verify"]) == 2
    error = one_error_line(capsys)
    assert "does not fit the dataset in" in error and "size mismatch" in error


def test_a_moved_dataset_is_named_and_found_with_data_path(tmp_path, capsys, one_thread):
    import shutil

    from recbole_microlens.quick_start import load_data_and_model

    run = train_tiny(tmp_path / "run")
    shutil.move(tmp_path / "run" / "data", tmp_path / "elsewhere")
    assert cli_main(["recommend", "--checkpoint", str(run["checkpoint"]), "--users", "u1"]) == 2
    error = one_error_line(capsys)
    assert f"is not at {tmp_path / 'run' / 'data' / 'tiny'}" in error and "--data-path" in error
    assert "sha256" not in error
    out = tmp_path / "recs.tsv"
    assert cli_main(["recommend", "--checkpoint", str(run["checkpoint"]), "--users", "u1",
                     "--data-path", str(tmp_path / "elsewhere"), "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 11
    _, _, dataset, *_ = load_data_and_model(run["checkpoint"], data_path=tmp_path / "elsewhere",
                                            quiet=True)
    assert dataset.user_num == 31


def test_a_temp_file_left_by_a_killed_conversion_stays_out_of_the_dataset(converted, tmp_path):
    """A conversion killed while writing left ``.ml.inter.<random>.tmp`` in its build folder;
    the next conversion gives that folder's other entries back, never the temp file."""
    stale = converted.parent / ".ml.partial"
    (stale / "media-extra").mkdir(parents=True)
    (stale / ".ml.inter.k3j2_9zq.tmp").write_text("half a file")
    convert_dataset(detect_raw_files(tmp_path / "raw"), "ml", tmp_path / "out", keep_last=6)
    assert not stale.exists()
    assert (converted / "media-extra").is_dir()  # what the killed run was keeping is kept
    assert not [path.name for path in converted.iterdir() if path.name.endswith(".tmp")]


def test_a_disk_that_fills_while_writing_names_the_file(tmp_path, monkeypatch):
    import errno

    from recbole_microlens.errors import OutputError
    from recbole_microlens.io import atomic_open

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputError) as error:
        with atomic_open(tmp_path / "out.json", "w") as handle:
            handle.write("{}")
    assert str(error.value) == (f"cannot write {tmp_path / 'out.json'}: [Errno 28] No space left "
                                "on device")
    assert list(tmp_path.iterdir()) == []


def _limited(max_bytes: int):
    import resource

    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))


def test_a_file_size_limit_hit_by_the_checkpoint_is_one_line_naming_it(tmp_path):
    """``ulimit -f``: torch.save reports the failed write as a RuntimeError of its zip writer."""
    from tests.helpers import write_inter_file

    write_inter_file(tmp_path, "tiny", {f"u{u}": [f"i{(u + k) % 9}" for k in range(6)]
                                        for u in range(6)})
    env = checkout_env(OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, str(REPO / "run_recbole_ml.py"), "--model=SASRec",
                           "--dataset=tiny", f"--data_path={tmp_path}", "--epochs=1",
                           "--hidden_size=64", "--inner_size=256", "--show_progress=false",
                           "--state=WARNING", f"--checkpoint_dir={tmp_path / 'saved'}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True,
                          preexec_fn=_limited(200_000), timeout=600)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    # the first file a run writes is its training state (saved/resume/), then the checkpoint
    assert re.match(rf"error: cannot write {re.escape(str(tmp_path / 'saved'))}/(resume/)?"
                    r"SASRec-\S+\.pth: \[Errno 27\] File too large$", last), last
    assert not [p for p in (tmp_path / "saved").rglob("*") if p.is_file()]  # nor a temp file


def test_a_file_size_limit_hit_by_convert_names_the_file(write_raw, tmp_path):
    write_raw("ml_pairs.tsv", [f"{user}\t" + " ".join(str(10 + (user * 3 + k) % 17)
                                                      for k in range(8))
                               for user in range(1, 200)])
    env = checkout_env()
    done = subprocess.run([sys.executable, "-m", "recbole_microlens", "convert", "--raw-dir",
                           str(tmp_path / "raw"), "--dataset", "ml", "--out",
                           str(tmp_path / "out")],
                          cwd=tmp_path, env=env, capture_output=True, text=True,
                          preexec_fn=_limited(1000), timeout=600)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot write ") and last.endswith(
        "/ml.inter: [Errno 27] File too large"), last
    assert not (tmp_path / "out" / "ml").exists()


def test_a_bad_dataset_name_is_refused_by_the_rule_not_a_joined_path(monkeypatch, capsys,
                                                                       tmp_path):
    monkeypatch.chdir(tmp_path)
    code, err = run_main(["--dataset=../../x"], monkeypatch, capsys)
    assert code == 2
    assert "a dataset is one folder directly in the data root" in err and "../../x/" not in err
    assert "outside" not in err and "atomic_files" not in err


def test_recommend_is_quiet_unless_verbose(served, tmp_path):
    """The rebuilt run's ~140 lines of configuration go to stderr with --verbose only."""
    env = checkout_env(OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "recbole_microlens", "recommend", "--checkpoint",
               str(served["checkpoint"]), "--users", "u1", "--out", str(tmp_path / "recs.tsv")]
    quiet = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=600)
    assert quiet.returncode == 0, quiet.stderr
    messages = [line for line in quiet.stderr.splitlines() if "Warning" not in line
                and not line.startswith("  ")]  # library deprecation warnings aside
    assert len(messages) == 1 and messages[0].startswith("wrote 10 rows to "), quiet.stderr
    assert not (tmp_path / "log").exists()  # nor a RecBole log file
    verbose = subprocess.run(command + ["--verbose"], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=600)
    assert verbose.returncode == 0, verbose.stderr
    assert "Hyper Parameters" in verbose.stderr and len(verbose.stderr.splitlines()) > 50


# ------------------------------------------------------------------ 8. one error boundary

BAD_INPUT = {  # one user error per subcommand (every subcommand with input to check)
    "convert": ["convert", "--raw-dir", "{tmp}/missing", "--dataset", "x", "--out", "{tmp}/o"],
    "prepare-media": ["prepare-media", "--dataset", "nope", "--data-path", "{tmp}"],
    "extract-features": ["extract-features", "--dataset", "nope", "--data-path", "{tmp}",
                         "--encoder", "nosuch"],
    "tune": ["tune", "--model", "SASRec", "--dataset", "nope", "--tune_config", "nosuch"],
    "sweep": ["sweep", "--model", "SASRecV", "--dataset", "nope", "--encoders", "x", "--out",
              "{tmp}/s"],
    "report": ["report", "{tmp}/missing.json"],
    "evaluate": ["evaluate", "--checkpoint", "{tmp}/missing.pth"],
    "recommend": ["recommend", "--checkpoint", "{tmp}/missing.pth", "--users", "u1"],
    "export-embeddings": ["export-embeddings", "--checkpoint", "{tmp}/missing.pth"],
    "fetch-weights": ["fetch-weights", "--from", "{tmp}/missing", "x3d-xs"],
}


@pytest.mark.parametrize("command", sorted(BAD_INPUT))
def test_debug_shows_the_traceback_of_a_user_error_on_every_subcommand(command, tmp_path,
                                                                       capsys):
    from recbole_microlens.errors import UserError

    argv = [arg.format(tmp=tmp_path) for arg in BAD_INPUT[command]]
    assert cli_main(argv) == 2
    one_error_line(capsys)
    with pytest.raises(UserError):  # the interpreter prints its traceback
        cli_main(argv + ["--debug"])


def test_every_subcommand_has_a_bad_input_case():
    from recbole_microlens.cli.commands import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    # encoders: argparse checks its one option
    assert set(commands) - {"encoders"} <= set(BAD_INPUT)


@pytest.mark.parametrize("error", [ValueError("a bug"), KeyError("a bug"),
                                   FileNotFoundError("a bug"), RuntimeError("a bug")])
def test_a_bug_keeps_its_traceback(error, write_raw, tmp_path, monkeypatch):
    """Only user errors are one-liners: a ValueError from a bug is not bad input."""
    from recbole_microlens.cli import commands as cli

    write_raw("ml_pairs.tsv", PAIRS)
    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr(cli, "convert_dataset", broken)
    with pytest.raises(type(error), match="a bug"):
        cli_main(["convert", "--raw-dir", str(tmp_path / "raw"), "--dataset", "x", "--out",
                  str(tmp_path / "out")])


def test_interrupts_and_exits_pass_the_boundary_untouched():
    from recbole_microlens.errors import exit_cleanly

    with pytest.raises(KeyboardInterrupt):
        with exit_cleanly():
            raise KeyboardInterrupt
    with pytest.raises(SystemExit) as exit_:
        with exit_cleanly():
            raise SystemExit(130)
    assert exit_.value.code == 130


def test_a_bug_in_run_recbole_ml_keeps_its_traceback(monkeypatch, capsys, tmp_path):
    from recbole_microlens.cli import train

    def broken(*args, **kwargs):
        raise ValueError("a bug")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(train, "run", broken)
    with pytest.raises(ValueError, match="a bug"):
        run_main(["--model=SASRec"], monkeypatch, capsys)


# ------------------------------------------------------------------ 9. the trunk cache's lock

TRUNK_CACHE_SCRIPT = """
import json, sys, time
from pathlib import Path
from recbole_microlens.model import tower_cache as efficiency
from tests.model.test_videorec import TINY_TEXT, build

root, name, release = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])


def announced(real_build):
    def build_and_wait(*args, **kwargs):  # say so, and hold the build open until released
        (root / f"{name}-building").touch()
        while not release.exists():
            time.sleep(0.01)
        return real_build(*args, **kwargs)
    return build_and_wait


efficiency._build = announced(efficiency._build)
efficiency._build_tokens = announced(efficiency._build_tokens)
if __name__ == "__main__":
    _, model, *_ = build(root, finetune="top", **TINY_TEXT)
    cache = efficiency.open_trunk_cache(model.item_tower, root / "cache", progress=False)
    print(json.dumps({"folder": str(cache.folder)}))
"""


def test_two_runs_sharing_a_trunk_cache_build_it_once(tmp_path):
    """While one run builds the cache, a second one waits on its lock, then reuses it."""
    from recbole_microlens.data.sample.generate import generate_sample_raw
    from tests.helpers import waits_for_a_lock
    from tests.model.test_videorec import TINY_TEXT, build

    generate_sample_raw(tmp_path / "raw", n_users=40, n_items=40, seed=3)
    build(tmp_path, finetune="top", **TINY_TEXT)  # atomic files and title store, built once
    script, release = tmp_path / "trunk_cache.py", tmp_path / "release"
    script.write_text(TRUNK_CACHE_SCRIPT)
    env = checkout_env(OMP_NUM_THREADS="1")

    def start(name):
        return subprocess.Popen([sys.executable, str(script), str(tmp_path), name, str(release)],
                                cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    first = start("first")
    wait_for((tmp_path / "first-building").exists, failed=lambda: first.poll() is not None)
    second = start("second")
    try:
        wait_for(lambda: (tmp_path / "second-building").exists() or waits_for_a_lock(second.pid),
                 failed=lambda: second.poll() is not None)
        assert not (tmp_path / "second-building").exists(), "two runs build one cache"
    finally:
        release.touch()
    outputs = [run.communicate(timeout=600) for run in (first, second)]
    for run, (_, err) in zip((first, second), outputs):
        assert run.returncode == 0, err[-3000:]
    folders = {json.loads(out.splitlines()[-1])["folder"] for out, _ in outputs}
    assert len(folders) == 1 and not (tmp_path / "second-building").exists()
    assert not [path for path in (tmp_path / "cache").iterdir() if path.name.endswith(".tmp")]
