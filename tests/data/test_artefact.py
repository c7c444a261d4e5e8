"""The artefact protocol every store shares: complete or absent, locked, built beside and moved
into place; and each of the five stores (dataset folder, media, titles, features, trunk caches)
built through it."""
from __future__ import annotations

import fcntl
import json
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from recbole_microlens.data.stores import artefact
from recbole_microlens.data.stores.artefact import (
    BUILT, REUSED, UNFINISHED, artefact_lock, build_file_once, build_once, lock_path, partial_path,
)
from tests.helpers import REPO, checkout_env, wait_for, waits_for_a_lock


def lock_is_held(path: Path) -> bool:
    """Whether some builder holds ``path``'s lock (a new open file cannot take it)."""
    with open(lock_path(path), "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def final_of(partial: Path) -> Path:
    """The artefact a partial folder ``.<name>.partial`` is building."""
    assert partial.name.startswith(".") and partial.name.endswith(".partial"), partial
    return partial.with_name(partial.name[1:-len(".partial")])


def spy_on_build(monkeypatch, module, name: str, folder_arg: int,
                 file: bool = False) -> list[tuple[Path, bool]]:
    """Wrap ``module.name`` (a store's build step, whose argument ``folder_arg`` is the folder it
    writes into, or a file in it): each call records that folder and whether the artefact's
    lock was held."""
    real, seen = getattr(module, name), []

    def spied(*args, **kwargs):
        folder = Path(args[folder_arg]).parent if file else Path(args[folder_arg])
        seen.append((folder, lock_is_held(final_of(folder))))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, spied)
    return seen


def write_files(**files):
    """A build that writes ``files`` and returns their names as the marker's content."""
    def build(partial: Path) -> dict:
        for name, text in files.items():
            (partial / name).write_text(text)
        return {"files": sorted(files)}
    return build


# ================================================================== the protocol itself ===


def test_a_build_publishes_the_folder_with_its_marker_written_last(tmp_path):
    folder = tmp_path / "store"
    assert build_once(folder, write_files(a="1", b="2")) == BUILT
    assert sorted(p.name for p in folder.iterdir()) == ["a", "b", "meta.json"]
    assert json.loads((folder / "meta.json").read_text()) == {"files": ["a", "b"]}
    assert not partial_path(folder).exists()
    assert build_once(folder, write_files(c="3")) == REUSED and not (folder / "c").exists()


def test_an_exception_mid_build_leaves_nothing_and_the_next_call_builds(tmp_path):
    folder = tmp_path / "store"

    def fails(partial: Path):
        (partial / "half").write_text("written before the failure")
        raise RuntimeError("injected")

    with pytest.raises(RuntimeError, match="injected"):
        build_once(folder, fails)
    assert sorted(tmp_path.iterdir()) == [lock_path(folder)]  # no folder, no partial folder
    assert build_once(folder, write_files(a="1")) == BUILT
    assert sorted(p.name for p in folder.iterdir()) == ["a", "meta.json"]


def test_a_failed_rebuild_keeps_the_earlier_complete_folder(tmp_path):
    folder = tmp_path / "store"
    build_once(folder, write_files(a="old"))

    def fails(partial: Path):
        raise RuntimeError("injected")

    with pytest.raises(RuntimeError):
        build_once(folder, fails, reuse=lambda _: False)
    assert (folder / "a").read_text() == "old" and (folder / "meta.json").is_file()
    assert build_once(folder, write_files(a="new"), reuse=lambda _: False) == BUILT
    assert (folder / "a").read_text() == "new" and not partial_path(folder).exists()


def test_a_stale_partial_folder_of_a_killed_build_is_removed(tmp_path):
    folder = tmp_path / "store"
    partial_path(folder).mkdir()
    (partial_path(folder) / "junk").write_text("left by a killed build")
    assert build_once(folder, write_files(a="1")) == BUILT
    assert sorted(p.name for p in folder.iterdir()) == ["a", "meta.json"]
    assert not partial_path(folder).exists()


def test_a_folder_without_its_marker_is_rebuilt(tmp_path):
    folder = tmp_path / "store"
    folder.mkdir()
    (folder / "a").write_text("an interrupted build of an older version")
    assert build_once(folder, write_files(a="1")) == BUILT
    assert (folder / "a").read_text() == "1" and (folder / "meta.json").is_file()


def test_a_resumable_build_continues_from_its_partial_folder(tmp_path):
    folder, seen = tmp_path / "store", []

    def step(partial: Path):
        done = sorted(p.name for p in partial.iterdir())
        seen.append(done)
        (partial / f"row{len(done)}").write_text("x")
        return {"rows": len(done) + 1} if len(done) == 2 else None

    assert build_once(folder, step, resume=True) == UNFINISHED
    assert not folder.exists() and partial_path(folder).is_dir()
    assert build_once(folder, step, resume=True) == UNFINISHED
    assert build_once(folder, step, resume=True) == BUILT
    assert seen == [[], ["row0"], ["row0", "row1"]]
    assert json.loads((folder / "meta.json").read_text()) == {"rows": 3}


def test_the_lock_is_reentrant_in_a_thread_and_released_after(tmp_path):
    folder = tmp_path / "store"
    with artefact_lock(folder):
        with artefact_lock(tmp_path / "." / "store"):  # another spelling of the same folder
            assert lock_is_held(folder)
        assert lock_is_held(folder)
    assert not lock_is_held(folder)


SECOND_BUILDER = """
import json, sys
from pathlib import Path
from recbole_microlens.data.stores.artefact import build_once

def build(partial):
    (partial / "built-by").write_text("second")
    return {"by": "second"}

print(json.dumps({"outcome": build_once(Path(sys.argv[1]), build)}))
"""


def test_a_second_process_waits_on_the_lock_and_does_not_build_again(tmp_path):
    folder, second = tmp_path / "store", None

    def build(partial: Path) -> dict:
        nonlocal second
        second = subprocess.Popen([sys.executable, "-c", SECOND_BUILDER, str(folder)], cwd=REPO,
                                  env=checkout_env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: waits_for_a_lock(second.pid), failed=lambda: second.poll() is not None)
        (partial / "built-by").write_text("first")
        return {"by": "first"}

    assert build_once(folder, build) == BUILT
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert json.loads(out.splitlines()[-1]) == {"outcome": REUSED}
    assert (folder / "built-by").read_text() == "first"


class ObservedLock:
    """An RLock that says when a thread has to wait for it."""

    def __init__(self):
        self.lock, self.waiting = threading.RLock(), threading.Event()

    def __enter__(self):
        if not self.lock.acquire(blocking=False):
            self.waiting.set()
            self.lock.acquire()
        return self

    def __exit__(self, *exc):
        self.lock.release()


def test_a_second_thread_waits_on_the_lock_and_does_not_build_again(tmp_path, monkeypatch):
    folder, outcomes, builds = tmp_path / "store", [], []
    observed = ObservedLock()
    monkeypatch.setitem(artefact._LOCKS, folder.resolve(), artefact._PathLock(threads=observed))

    def build(partial: Path) -> dict:
        builds.append(threading.current_thread().name)
        if len(builds) == 1:
            second = threading.Thread(target=lambda: outcomes.append(build_once(folder, build)))
            second.start()
            wait_for(observed.waiting.is_set, failed=lambda: not second.is_alive())  # blocked
            build.second = second
        return {"by": builds[-1]}

    assert build_once(folder, build) == BUILT
    build.second.join()
    assert outcomes == [REUSED] and len(builds) == 1


# ----------------------------------------------------------------------- file artefacts ---


def test_a_file_artefact_is_renamed_into_place_before_its_marker(tmp_path):
    path, marker = tmp_path / "f.npy", tmp_path / "f.json"

    def build(partial: Path) -> dict:
        np.save(partial / path.name, np.arange(3))
        return {"complete": True}

    assert build_file_once(path, marker, build) == BUILT
    assert np.load(path).tolist() == [0, 1, 2] and json.loads(marker.read_text())["complete"]
    assert not partial_path(path).exists()
    assert build_file_once(path, marker, build) == REUSED


def test_a_failed_file_build_keeps_the_earlier_file_and_marker(tmp_path):
    path, marker = tmp_path / "f.npy", tmp_path / "f.json"
    np.save(path, np.zeros(2))
    marker.write_text("{}")

    def fails(partial: Path):
        np.save(partial / path.name, np.ones(2))
        raise RuntimeError("injected")

    with pytest.raises(RuntimeError):
        build_file_once(path, marker, fails, reuse=lambda _: False)
    assert np.load(path).tolist() == [0, 0] and marker.read_text() == "{}"
    assert not partial_path(path).exists()


# ====================================================== every store goes through it ===


def test_the_title_store_is_built_locked_in_its_partial_folder(tmp_path, monkeypatch):
    from recbole_microlens.data.stores import titles

    titles_csv = tmp_path / "t.titles.csv"
    titles_csv.write_text("item_id,title\n1,a cat\n2,a dog\n")
    seen = spy_on_build(monkeypatch, titles, "_build", 0)
    folder = titles.build_title_store(titles_csv, ["1", "2"], tmp_path / "media", max_length=8)
    assert seen == [(partial_path(folder), True)]
    titles.build_title_store(titles_csv, ["2"], tmp_path / "media", max_length=8)
    assert len(seen) == 1  # reused


def test_the_media_store_is_built_locked_in_its_partial_folder(tmp_path, monkeypatch):
    from recbole_microlens.data.stores import build
    from recbole_microlens.data.stores.media import build_cover_store

    seen = spy_on_build(monkeypatch, build, "_build_rows", 3)
    report = build_cover_store(tmp_path / "covers", ["1", "2"], tmp_path / "media", 8,
                               workers=1, progress=False)  # no covers: grey fallbacks
    assert report.complete and seen == [(partial_path(report.folder), True)]
    assert build_cover_store(tmp_path / "covers", ["1"], tmp_path / "media", 8, workers=1,
                             progress=False).reused


def test_a_dataset_folder_is_converted_locked_in_its_partial_folder(tmp_path, monkeypatch,
                                                                    write_raw):
    from recbole_microlens.data import prepare
    from recbole_microlens.data.raw import convert

    write_raw("ml_pairs.tsv", [f"{user}\t" + " ".join(str(10 + (user * 3 + k) % 17)
                                                     for k in range(8)) for user in range(1, 9)])
    seen = spy_on_build(monkeypatch, convert, "write_inter", 0, file=True)
    checked, real_problem = [], prepare.dataset_problem

    def problem(folder, dataset):
        checked.append(lock_is_held(Path(folder)))  # checked and converted as one step
        return real_problem(folder, dataset)

    monkeypatch.setattr(prepare, "dataset_problem", problem)
    config = {"dataset": "ml", "data_path": str(tmp_path / "out" / "ml"), "warm": None,
              "raw_data_path": str(tmp_path / "raw")}
    prepare.ensure_atomic_files(config)
    folder = tmp_path / "out" / "ml"
    assert seen == [(partial_path(folder), True)]
    prepare.ensure_atomic_files(config)
    assert checked == [True] and len(seen) == 1  # the second call found it complete


class FakeTower:
    """The little a trunk cache reads of a tower: an encoder with blocks, inputs with a store."""

    def __init__(self):
        block = torch.nn.Linear(2, 2)
        self.encoder = SimpleNamespace(name="fake", trainable_block_start=1,
                                       blocks=torch.nn.ModuleList([block]),
                                       run_blocks=lambda x, first, last: block(x))
        self.n_items, self.device = 5, torch.device("cpu")
        self.inputs = FakeInputs()


class FakeInputs:
    store = SimpleNamespace(folder="store")

    def __call__(self, ids, device):
        return torch.stack([ids.float(), -ids.float()], dim=1)


def test_a_trunk_cache_is_built_locked_in_its_partial_folder(tmp_path, monkeypatch):
    from recbole_microlens.model import tower_cache

    seen = spy_on_build(monkeypatch, tower_cache, "_build", 1)
    tower = FakeTower()
    cache = tower_cache.TrunkCache.open_or_build(tower, tmp_path, progress=False)
    assert seen == [(partial_path(cache.folder), True)]
    expected = tower.encoder.blocks[0](tower.inputs(torch.tensor([3]), None)).detach()
    assert torch.allclose(cache.lookup(torch.tensor([3]), "cpu"), expected, atol=1e-2)
    tower_cache.TrunkCache.open_or_build(tower, tmp_path, progress=False)
    assert len(seen) == 1  # reused
