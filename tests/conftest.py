"""Shared test fixtures (small raw MicroLens files, thread settings) and the test tiers.

Every test gets exactly one tier marker, here and nowhere else (pytest.ini registers them):

* ``unit``: in-process and quick (parsers, stores, configs, losses, metrics, small models);
  ``python -m pytest -q -m unit`` is the tier to run while developing;
* ``integration``: real RecBole training and evaluation runs, end to end, CLI round trips;
* ``ray``: real Ray Tune sweeps (a local Ray, or a ``ray start`` head);
* ``ddp``: real torch.distributed (gloo) processes.

``slow`` (heavy encoders, long runs) stays on the tests that carry it and is off by default; a
slow test is never ``unit``. A module not listed below is ``integration``: a new module is kept
out of the quick tier until it is listed there.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# No test reaches the network (weights come from caches the tests seed); subprocesses inherit it.
os.environ["HF_HUB_OFFLINE"] = "1"

TIER_MODULES = {
    "unit": {"test_benchmark_reuse", "test_cli_startup", "test_compat_scipy", "test_config",
             "test_artefact", "test_convert", "test_defaults", "test_docs",
             "test_dataset", "test_encoders", "test_evaluation", "test_loaders", "test_loss",
             "test_media", "test_packaging", "test_packed_transformer", "test_raw",
             "test_report", "test_results_source", "test_sample", "test_text_store",
             "test_tune", "test_weights"},
    "ray": {"test_ray_cluster"},
    "ddp": {"test_distributed"},
}
RAY_FIXTURES = {"ray_cluster", "sample_sweep"}  # test_tune's real sweeps; its other tests are unit


def tier_of(item: pytest.Item) -> str:
    """The one tier of ``item``: by the Ray fixtures it uses, else by its module."""
    if RAY_FIXTURES & set(getattr(item, "fixturenames", ())):
        return "ray"
    module = item.module.__name__.rpartition(".")[2]
    tier = next((tier for tier, modules in TIER_MODULES.items() if module in modules),
                "integration")
    return "integration" if tier == "unit" and item.get_closest_marker("slow") else tier


def pytest_collection_modifyitems(config, items):
    for item in items:
        item.add_marker(tier_of(item))


@pytest.fixture
def write_raw(tmp_path):
    """``write_raw(name, lines, crlf=True, bom=False)`` writes ``tmp_path/raw/name`` as UTF-8
    with the official CRLF line ends and returns its path."""
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir(exist_ok=True)

    def write(name: str, lines: list[str], *, crlf: bool = True, bom: bool = False) -> Path:
        end = "\r\n" if crlf else "\n"
        path = raw_dir / name
        text = "".join(line + end for line in lines).encode("utf-8")
        path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text)
        return path

    return write


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: a second OpenMP thread only adds contention on a 2-core machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
