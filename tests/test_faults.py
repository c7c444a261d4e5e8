"""Nothing lost, nothing mixed up (issue 12): every case of the issue's table, as a user meets it.

Datasets are complete or absent; runs own their outputs; configuration is strict and safe; raw
file faults are reported by file and line; killed commands leave no processes; bad input gives
one line and exit status 2.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from recbole_microlens.cli import main as cli_main
from recbole_microlens.config_check import ConfigError, parse_overrides
from recbole_microlens.data.convert import convert_dataset
from recbole_microlens.data.dataset_folder import dataset_problem, require_complete
from recbole_microlens.data.prepare import ensure_atomic_files
from recbole_microlens.data.raw import RawFormatError, detect_raw_files
from recbole_microlens.errors import DatasetError

REPO = Path(__file__).resolve().parent.parent
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
    assert not list(converted.parent.glob(".ml.partial-*"))


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
    assert not list(converted.parent.glob(".ml.partial-*"))


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
from recbole_microlens.data.convert import convert_dataset
from recbole_microlens.data.raw import detect_raw_files

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
    assert len(list(converted.parent.glob(".ml.partial-*"))) == 1  # each run removes the last's
    convert_dataset(detect_raw_files(tmp_path / "raw"), "ml", tmp_path / "out", keep_last=6)
    assert not list(converted.parent.glob(".ml.partial-*"))
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
