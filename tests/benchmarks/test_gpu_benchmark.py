"""benchmarks/gpu_videorec.py runs in its tiny CPU mode: every path, both precisions, both encoders.

The script runs in its own interpreter: its bf16 rows run native CPU kernels, and a crash there
must fail this test, not the suite (issue 22: oneDNN's bf16 convolution gradient on AVX-512)."""
import json
import subprocess
import sys
from pathlib import Path

from tests.helpers import checkout_env

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_mode_measures_every_path_of_both_encoders(tmp_path):
    env = checkout_env(OMP_NUM_THREADS="1")  # the checkout's code
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu_videorec", "--tiny",
                           "--out", str(tmp_path / "report.json")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    rows = report["rows"]
    assert [r for r in rows if "failed" in r] == []
    keys = {(r["encoder"], r["path"], r["bf16"]) for r in rows}
    assert keys == {(e, p, b) for e in ("x3d-s", "slowfast-r50")
                    for p in ("naive", "unique", "unique + trunk cache") for b in (False, True)}
    for row in rows:
        assert row["epoch_s"] > 0 and row["peak_mb"] > 0
    naive = next(r for r in rows if r["path"] == "naive")["passes_per_epoch"]
    unique = next(r for r in rows if r["path"] == "unique")["passes_per_epoch"]
    assert naive > unique > 0  # de-duplication: fewer encoder passes, counted from the batches
    cached = [r for r in rows if r["path"] == "unique + trunk cache"]
    assert all(r["cache_build_s"] >= 0 and r["cache_bytes_per_item"] > 0 for r in cached)
    assert report["id"]["epoch_s"] > 0


def test_a_suite_stopped_by_its_budget_still_says_how_far_it_got():
    from benchmarks.gpu_videorec import suite_progress

    stopped = "tests/a.py ..F.s                [  3%]\ntests/b.py ....E....         [  9%]\n.."
    assert suite_progress(stopped, finished=False)["summary"] == (
        "stopped by the budget after 11 passed, 1 failed, 1 errors, 1 skipped")
    finished = ("..F                 [100%]\nFAILED tests/a.py::test_x - assert 1 == 2\n"
                "1 failed, 2 passed in 3.01s\n")
    report = suite_progress(finished, finished=True)
    assert report["summary"] == "1 failed, 2 passed in 3.01s"
    assert report["failures"] == ["FAILED tests/a.py::test_x - assert 1 == 2"]


def test_the_tune_tests_are_left_out_by_name_where_ray_cannot_be_installed(tmp_path, monkeypatch):
    """Ray 2.6.3 has no wheels for the GPU machines' Python 3.12."""
    import importlib.util

    from benchmarks import gpu_videorec

    calls = []

    def fake_pytest(command, stdout, **kwargs):
        calls.append(command)
        stdout.write("..                 [100%]\n2 passed in 0.01s\n")
        return subprocess.CompletedProcess(command, 0)

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ray" else find_spec(name, *a))
    monkeypatch.setattr(gpu_videorec.subprocess, "run", fake_pytest)
    report = gpu_videorec.run_tests(60, tmp_path / "tests.log")
    assert "--ignore=tests/tune" in calls[0]
    assert report["ignored"] == ["tests/tune"] and report["summary"] == "2 passed in 0.01s"
