"""The converter end to end: protocol rows, popularity bins, feature files, meta, CLI, RecBole."""
from __future__ import annotations

import csv
import json
import logging
import warnings

import numpy as np
import pandas as pd
import pytest

from recbole_microlens.cli.commands import main
from recbole_microlens.data.raw.convert import convert_dataset, popularity_bins
from recbole_microlens.data.raw.readers import RawFormatError, detect_raw_files
from recbole_microlens.io import sha256_file

# user 1 has 4 interactions (dropped), user 2 has 5 (all kept), user 3 has 15 (last 13 kept).
PROTOCOL_PAIRS = ["3\t" + " ".join(map(str, range(20, 35))), "1\t1 2 3 4", "2\t10 11 12 13 14"]
CONVERTED_ITEMS = {str(i) for i in [*range(10, 15), *range(22, 35)]}


def read_table(path, delimiter="\t"):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter=delimiter))


def convert(raw_dir, out_dir, **options):
    return convert_dataset(detect_raw_files(raw_dir), "ml", out_dir, **options)


def test_protocol_keeps_exact_rows(write_raw, tmp_path):
    write_raw("ml_pairs.tsv", PROTOCOL_PAIRS)
    meta = convert(tmp_path / "raw", tmp_path / "out")
    rows = read_table(tmp_path / "out/ml/ml.inter")
    assert list(rows[0]) == ["user_id:token", "item_id:token", "timestamp:float"]
    expected = [("2", str(i), str(t)) for t, i in enumerate(range(10, 15))]
    expected += [("3", str(i), str(t)) for t, i in enumerate(range(20, 35)) if i >= 22]
    assert [tuple(row.values()) for row in rows] == expected
    raw, kept = meta["statistics"]["raw"], meta["statistics"]["protocol"]
    assert (raw["users"], raw["items"], raw["interactions"]) == (3, 24, 24)
    assert (kept["users"], kept["items"], kept["interactions"]) == (2, 18, 18)
    assert kept["training_interactions"] == 3 + 11
    assert kept["sequence_length"] == {"min": 5, "median": 9.0, "mean": 9.0, "max": 13}
    assert meta["protocol"]["min_user_inter"] == 5 and meta["protocol"]["keep_last"] == 13


def test_popularity_bins_count_training_only(write_raw, tmp_path):
    # Training parts 1 2 | 1 2 | 1 5 | 8 1: counts 1:4, 2:2, 5:1, 8:1; 3 4 6 7 9 only held out.
    write_raw("ml_pairs.tsv", ["1\t1 2 3 9", "2\t1 2 4 9", "3\t1 5 6 7", "4\t8 1 3 4"])
    meta = convert(tmp_path / "raw", tmp_path / "out", min_user_inter=3, num_pop_bins=3)
    rows = read_table(tmp_path / "out/ml/ml.item")
    bins = {row["item_id:token"]: int(row["pop_bin:token"]) for row in rows}
    assert bins == {"1": 0, "2": 0, "5": 1, "8": 2, "3": 3, "4": 3, "6": 3, "7": 3, "9": 3}
    assert meta["pop_bins"] == {"num_bins": 3, "unseen_in_training_bin": 3,
                                "items_per_bin": [2, 1, 1, 5]}
    assert meta["statistics"]["protocol"]["training_items"] == 4


def test_popularity_bins_are_equal_count_with_ties_by_id():
    train = np.array([5] * 3 + [2] * 3 + [7] * 2 + [1, 3, 4, 6, 8, 9, 10])
    items = np.arange(1, 12)
    bins = popularity_bins(train, items, num_bins=5)
    # ranked 2, 5 (3 each, by id), 7, then 1 3 4 6 8 9 10 by id: 2 per bin; 11 is unseen.
    assert bins.tolist() == [1, 0, 2, 2, 0, 3, 1, 3, 4, 4, 5]


def test_item_file_holds_only_converted_items_with_all_features(write_raw, tmp_path):
    write_raw("ml_pairs.tsv", PROTOCOL_PAIRS)
    write_raw("ml_titles.csv", ["item,title", '10,"Hot Pot, spicy! #Food"', "11,",
                                "1,dropped user's item", "99,not in pairs"]
              + [f"{i},t{i}" for i in range(20, 34)])
    write_raw("tags_to_summary.csv", ["video_id, tag", "10, Food & Drink", "12, Pets"])
    write_raw("ml_likes_and_views.txt", ["10\t5\t100", "11\t0\t7"])
    write_raw("ml_comment_en.txt", ["1\t10\tyum", "2\t10\tok", "3\t12\thi"])
    meta = convert(tmp_path / "raw", tmp_path / "out")
    rows = {row["item_id:token"]: row for row in read_table(tmp_path / "out/ml/ml.item")}
    assert set(rows) == CONVERTED_ITEMS
    assert list(rows["10"]) == ["item_id:token", "title:token_seq", "tags:token_seq",
                                "pop_bin:token", "likes:float", "views:float", "comments:float"]
    assert rows["10"]["title:token_seq"] == "hot pot spicy food"
    assert rows["10"]["tags:token_seq"] == "food_drink" and rows["12"]["tags:token_seq"] == "pets"
    assert [rows["10"][f"{name}:float"] for name in ("likes", "views", "comments")] == ["5", "100",
                                                                                       "2"]
    assert [rows["13"]["likes:float"], rows["13"]["comments:float"]] == ["", "0"]
    assert rows["11"]["title:token_seq"] == ""
    titles = read_table(tmp_path / "out/ml/ml.titles.csv", delimiter=",")
    assert titles[0] == {"item_id": "10", "title": "Hot Pot, spicy! #Food"} and len(titles) == 18
    # raw items without a title: 2, 3, 4, 12, 13, 14, 34; of those converted: 12, 13, 14, 34.
    assert meta["metadata_coverage"]["title"] == {"raw_items_without": 7, "items_without": 4}
    assert meta["metadata_coverage"]["likes"] == {"raw_items_without": 22, "items_without": 16}
    assert meta["row_counts"]["titles"] == {"crlf_line_end": 19, "empty_title": 1}
    assert meta["item_features"] == {"title": "titles", "tags": "tags", "likes": "likes_views",
                                      "views": "likes_views", "comments": "comments"}


def test_user_file_only_with_a_users_file(write_raw, tmp_path):
    write_raw("ml_pairs.tsv", PROTOCOL_PAIRS)
    meta = convert(tmp_path / "raw", tmp_path / "out")
    assert not (tmp_path / "out/ml/ml.user").exists() and "users" not in meta["row_counts"]
    users_file = write_raw("ml_users.csv", ["user,gender", "3,F", "1,M", "50,M", "2,"])
    meta = convert(tmp_path / "raw", tmp_path / "out")
    assert read_table(tmp_path / "out/ml/ml.user") == [
        {"user_id:token": "2", "gender:token": ""}, {"user_id:token": "3", "gender:token": "F"}]
    assert meta["row_counts"]["users"] == {"crlf_line_end": 5, "empty_gender": 1,
                                           "users_without_attributes": 1,
                                           "rows_for_users_not_in_inter": 2}
    users_file.unlink()
    convert(tmp_path / "raw", tmp_path / "out")
    assert not (tmp_path / "out/ml/ml.user").exists()  # a stale .user never outlives its input


def test_meta_records_inputs_and_every_count(write_raw, tmp_path):
    pairs = write_raw("ml_pairs.tsv", PROTOCOL_PAIRS + ["4\t1 1 2 x", "5\t7 8 7 9 10 8 11"])
    with pytest.raises(RawFormatError, match=r"ml_pairs.tsv:4: item 'x' is not an integer"):
        convert(tmp_path / "raw", tmp_path / "out")
    meta = convert(tmp_path / "raw", tmp_path / "out", skip_bad=True)
    assert meta["row_counts"]["pairs_tsv"] == {"crlf_line_end": 5, "malformed_line": 1,
                                               "duplicate_item_in_user": 2}
    assert meta["inputs"]["pairs_tsv"] == {"name": "ml_pairs.tsv", "path": str(pairs),
                                           "sha256": sha256_file(pairs)}
    assert meta["options"] == {"min_user_inter": 5, "keep_last": 13, "num_pop_bins": 10,
                               "skip_bad": True}
    assert meta["statistics"]["raw"]["interactions"] == 24 + 5
    assert meta["interactions_from"] == "pairs_tsv" and meta["pairs_cross_check"] is None
    on_disk = json.loads((tmp_path / "out/ml/ml.meta.json").read_text())
    assert on_disk == json.loads(json.dumps(meta))
    assert not list((tmp_path / "out/ml").glob(".*"))  # no temp files left behind


def test_failed_write_keeps_the_previous_file_whole(write_raw, tmp_path, monkeypatch):
    write_raw("ml_pairs.tsv", PROTOCOL_PAIRS)
    write_raw("ml_titles.csv", ["item,title", "10,first"])
    convert(tmp_path / "raw", tmp_path / "out")
    before = (tmp_path / "out/ml/ml.item").read_bytes()

    def write_half_then_fail(self, handle, **kwargs):
        handle.write("item_id:token\tpartial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", write_half_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        convert(tmp_path / "raw", tmp_path / "out")
    assert (tmp_path / "out/ml/ml.item").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "out/ml").iterdir()) == [
        "ml.inter", "ml.item", "ml.meta.json", "ml.titles.csv"]


def test_csv_wins_and_agreeing_tsv_is_checked(write_raw, tmp_path):
    write_raw("ml_pairs.tsv", ["1\t5 6 7 8 9"])
    write_raw("ml_pairs.csv", ["user,item,timestamp"]
              + [f"1,{i},{1000 * (i - 4)}" for i in (9, 5, 7, 6, 8)])
    meta = convert(tmp_path / "raw", tmp_path / "out")
    assert meta["interactions_from"] == "pairs_csv" and meta["pairs_cross_check"]["agree"] is True
    assert meta["timestamp"] == "Unix epoch milliseconds"
    rows = read_table(tmp_path / "out/ml/ml.inter")
    assert [(r["item_id:token"], r["timestamp:float"]) for r in rows] == [
        ("5", "1000"), ("6", "2000"), ("7", "3000"), ("8", "4000"), ("9", "5000")]


def test_tsv_csv_disagreement_is_reported(write_raw, tmp_path, caplog):
    write_raw("ml_pairs.tsv", ["1\t5 6 7 8 9", "2\t1 2 3 4 5", "3\t1 2 3 4 5"])
    write_raw("ml_pairs.csv", ["user,item,timestamp"]
              + [f"1,{i},{i}" for i in (5, 6, 7, 8, 9)]
              + [f"2,{i},{t}" for t, i in enumerate((1, 2, 4, 3, 5))]
              + [f"4,{i},{i}" for i in (1, 2, 3, 4, 5)])
    with caplog.at_level(logging.WARNING):
        meta = convert(tmp_path / "raw", tmp_path / "out")
    check = meta["pairs_cross_check"]
    assert check["agree"] is False
    assert check["users_only_in_tsv"] == 1 and check["users_only_in_csv"] == 1
    assert check["users_with_different_sequence"] == 1
    assert check["example"] == {"user": 2, "tsv_items": [1, 2, 3, 4, 5],
                                "csv_items": [1, 2, 4, 3, 5]}
    assert "pairs tsv and csv disagree" in caplog.text
    assert "1 with a different sequence" in caplog.text
    assert meta["statistics"]["raw"]["users"] == 3  # the csv's users 1, 2, 4


def test_cli_end_to_end(write_raw, tmp_path, capsys):
    write_raw("ml_pairs.tsv", PROTOCOL_PAIRS)
    write_raw("ml_titles.csv", ["item,title", "10,a"])
    out = tmp_path / "atomic"
    code = main(["convert", "--raw-dir", str(tmp_path / "raw"), "--dataset", "ml",
                 "--out", str(out), "--keep-last", "4"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "interactions" in printed and "training interactions" in printed
    meta = json.loads((out / "ml/ml.meta.json").read_text())
    assert meta["statistics"]["protocol"]["interactions"] == 8 and meta["options"]["keep_last"] == 4
    assert sorted(p.name for p in (out / "ml").iterdir()) == [
        "ml.inter", "ml.item", "ml.meta.json", "ml.titles.csv"]


def test_cli_reports_bad_input_and_overrides(write_raw, tmp_path, capsys):
    bad = write_raw("other.tsv", ["1\t1 2 3 4 5", "oops"])
    command = ["convert", "--raw-dir", str(tmp_path / "raw"), "--dataset", "ml",
               "--out", str(tmp_path / "o"), "--pairs-tsv", str(bad)]
    assert main(command) == 2
    assert f"{bad}:2: expected 'user<TAB>item item ...'" in capsys.readouterr().err
    assert main(command + ["--skip-bad"]) == 0
    assert "pairs_tsv: malformed_line = 1" in capsys.readouterr().out


def test_recbole_loads_the_atomic_files(write_raw, tmp_path):
    from recbole.config import Config
    from recbole.data import create_dataset

    write_raw("ml_pairs.tsv", PROTOCOL_PAIRS + ["7\t" + " ".join(map(str, range(40, 46)))])
    write_raw("ml_title_en.csv", ["10, Hello world", "11, ", '12, it\'s "quoted"'])
    write_raw("tags_to_summary.csv", ["video_id, tag", "10, Pets"])
    write_raw("ml_likes_and_views.txt", ["10\t5\t100"])
    write_raw("ml_comment_en.txt", ["1\t10\tyum"])
    write_raw("ml_users.csv", ["user,gender", "2,F", "3,M"])
    meta = convert(tmp_path / "raw", tmp_path / "out")
    config = Config(model="SASRec", dataset="ml", config_dict={
        "data_path": str(tmp_path / "out"), "load_col": None, "train_neg_sample_args": None,
        "use_gpu": False})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        dataset = create_dataset(config)
    stats = meta["statistics"]["protocol"]
    assert dataset.user_num == stats["users"] + 1 == 4
    assert dataset.item_num == stats["items"] + 1 == 25
    assert dataset.inter_num == 24
    assert {"title", "tags", "pop_bin", "likes", "views", "comments", "gender"} <= set(
        dataset.field2type)
    gender = dict(zip(dataset.id2token("user_id", dataset.user_feat["user_id"].to_numpy()),
                      dataset.user_feat["gender"].to_numpy().astype(int).tolist()))
    assert dataset.id2token("gender", [gender["2"], gender["3"]]).tolist() == ["F", "M"]
    assert gender["7"] == 0  # no attribute row: padding, not an invented value
    assert meta["item_features"]["title"] == "title_en"
    titles = read_table(tmp_path / "out/ml/ml.titles.csv", delimiter=",")
    titles = {row["item_id"]: row["title"] for row in titles}
    assert [titles[item] for item in ("10", "11", "12", "13")] == [
        "Hello world", "", 'it\'s "quoted"', ""]
