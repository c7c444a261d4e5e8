"""benchmarks/ is an importable package: run from the repository root it is found before
pyarrow's own top-level ``benchmarks``, its scripts import what they share from common.py, and
a script runs both as a module and as a file (with the root on PYTHONPATH)."""
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import write_inter_file

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py") if p.stem != "__init__")


def test_the_repository_package_is_the_one_imported():
    import benchmarks

    assert Path(benchmarks.__file__).resolve() == ROOT / "benchmarks" / "__init__.py"


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_imports_what_it_shares(script):
    module = importlib.import_module(f"benchmarks.{script}")
    assert Path(module.__file__).resolve().parent == ROOT / "benchmarks"


def test_no_script_edits_the_import_path():
    edits = [p.name for p in (ROOT / "benchmarks").glob("*.py") if "sys.path" in p.read_text()]
    assert edits == []


def _run(command: list[str], pythonpath: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_a_script_runs_as_a_module_from_the_root_and_measures_this_checkout():
    done = _run([sys.executable, "-m", "benchmarks.redraw_plots", "--check"], pythonpath=None)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "every table parses" in done.stdout
    probe = ("import benchmarks.common, recbole_microlens; "
             "print(benchmarks.common.__file__); print(recbole_microlens.__file__)")
    done = _run([sys.executable, "-c", probe], pythonpath=None)  # -m and -c: the root goes first
    common, package = done.stdout.split()
    assert Path(common).resolve() == ROOT / "benchmarks" / "common.py"
    assert Path(package).resolve() == ROOT / "recbole_microlens" / "__init__.py"


def test_a_script_runs_as_a_file_with_the_root_on_pythonpath():
    done = _run([sys.executable, "benchmarks/redraw_plots.py", "--check"], pythonpath=str(ROOT))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "every table parses" in done.stdout


def test_a_model_trains_in_its_own_process_and_its_result_is_reused(tmp_path, monkeypatch):
    """common.in_subprocess: the child is ``python -m benchmarks.common`` from the root; a second
    call with the same settings reads the result file and starts no process."""
    from benchmarks import common

    write_inter_file(tmp_path, "tiny", {f"u{u}": [f"i{(u + k) % 9}" for k in range(6)]
                                        for u in range(12)})
    settings = {"dataset": "tiny", "data_path": str(tmp_path), "checkpoint_dir": str(tmp_path / "saved"),
                "epochs": 1, "hidden_size": 8, "inner_size": 16, "train_batch_size": 4,
                "eval_batch_size": 16, "show_progress": False, "seed": 7}
    result_file = tmp_path / "tiny-SASRec.json"
    result = common.in_subprocess("SASRec", settings, result_file, rerun=False)
    assert result["epochs_run"] == 1 and json.loads(result_file.read_text()) == result
    assert len(common.test_metrics(result)) == 4

    def no_process(*args):
        raise AssertionError(f"trained again: {args}")

    monkeypatch.setattr(common, "run_module", no_process)
    assert common.in_subprocess("SASRec", settings, result_file, rerun=False) == result
    with pytest.raises(AssertionError, match="trained again"):
        common.in_subprocess("SASRec", {**settings, "seed": 8}, result_file, rerun=False)
