"""benchmarks/gpu_videorec.py runs in its tiny CPU mode: every path, both precisions, both encoders."""
import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("one_thread")

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_videorec.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_videorec", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gpu_videorec", module)
    spec.loader.exec_module(module)
    return module


def test_tiny_mode_measures_every_path_of_both_encoders(tmp_path):
    report = load_script().main(["--tiny", "--out", str(tmp_path / "report.json")])
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
    assert report["id"]["epoch_s"] > 0 and (tmp_path / "report.json").is_file()
