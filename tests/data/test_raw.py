"""Readers of the raw MicroLens formats: values, repairs, counts and error messages."""
from __future__ import annotations

import numpy as np
import pytest

from recbole_microlens.data.raw import readers as raw

from recbole_microlens.data.raw import lines as raw_lines
from recbole_microlens.data.raw.readers import RawFilesError, RawFormatError, detect_raw_files


# --------------------------------------------------------------------------- detection


def test_detect_finds_every_official_file(write_raw):
    names = ["MicroLens-100k_pairs.tsv", "MicroLens-100k_pairs.csv",
             "MicroLens-100k_title_en.csv", "MicroLens-100k_likes_and_views.txt",
             "tags_to_summary.csv", "MicroLens-100k_comment_en.txt", "MicroLens-100k_users.csv"]
    paths = [write_raw(name, ["x"]) for name in names]
    raw_dir = paths[0].parent
    (raw_dir / "covers").mkdir()
    found = detect_raw_files(raw_dir)
    fields = ["pairs_tsv", "pairs_csv", "title_en", "likes_views", "tags", "comments", "users"]
    assert [getattr(found, field) for field in fields] == paths
    assert found.covers == raw_dir / "covers"
    assert found.titles is None and found.videos is None
    assert set(found.present()) == {"pairs_tsv", "pairs_csv", "title_en", "likes_views", "tags",
                                    "comments", "users", "covers"}


def test_detect_override_wins_and_resolves_ambiguity(write_raw, tmp_path):
    first = write_raw("a_pairs.tsv", ["1\t2"])
    write_raw("b_pairs.tsv", ["1\t2"])
    message = r"2 files match '\*_pairs.tsv' \(a_pairs.tsv, b_pairs.tsv\)"
    with pytest.raises(RawFilesError, match=message):
        detect_raw_files(first.parent)
    assert detect_raw_files(first.parent, pairs_tsv=first).pairs_tsv == first


def test_detect_without_pairs_names_directory_and_patterns(write_raw):
    titles = write_raw("MicroLens-50k_titles.csv", ["item,title"])
    with pytest.raises(RawFilesError) as error:
        detect_raw_files(titles.parent)
    assert str(titles.parent) in str(error.value)
    assert "'*_pairs.tsv'" in str(error.value) and "'*_pairs.csv'" in str(error.value)


def test_detect_missing_override_is_an_error(write_raw, tmp_path):
    write_raw("x_pairs.tsv", ["1\t2"])
    with pytest.raises(RawFilesError, match="titles: .*nope.csv is not an existing file"):
        detect_raw_files(tmp_path / "raw", titles=tmp_path / "nope.csv")


# --------------------------------------------------------------------------- pairs tsv


def test_pairs_tsv_positions_crlf_bom_and_duplicates(write_raw):
    path = write_raw("p_pairs.tsv", ["7\t3 1 3 9", "2\t5 6 5 5 8"], bom=True)
    inter, counts = raw.read_pairs_tsv(path)
    assert inter.user.tolist() == [7, 7, 7, 2, 2, 2]
    assert inter.item.tolist() == [3, 1, 9, 5, 6, 8]
    assert inter.timestamp.tolist() == [0, 1, 2, 0, 1, 2]
    assert inter.item.dtype == np.int64
    assert counts == {"utf8_bom_removed": 1, "crlf_line_end": 2, "duplicate_item_in_user": 3}


def test_pairs_tsv_malformed_item_names_file_and_line(write_raw):
    path = write_raw("MicroLens-50k_pairs.tsv", ["1\t1 2"] * 16 + ["17\t4 x12 5", "18\t1"])
    with pytest.raises(RawFormatError) as error:
        raw.read_pairs_tsv(path)
    assert str(error.value) == f"{path}:17: item 'x12' is not an integer"


@pytest.mark.parametrize("line, problem", [
    ("5 6 7", "expected 'user<TAB>item item ...', found '5 6 7'"),
    ("u5\t6", "user 'u5' is not an integer"),
    ("5\t", "expected 'user<TAB>item item ...'"),
    ("5\t1 99999999999999999999", "item '99999999999999999999' does not fit in 64 bits"),
])
def test_pairs_tsv_other_malformed_lines(write_raw, line, problem):
    path = write_raw("p_pairs.tsv", ["1\t2", line])
    with pytest.raises(RawFormatError, match=f":2: {problem}"):
        raw.read_pairs_tsv(path)


def test_pairs_tsv_skip_bad_counts_and_keeps_the_rest(write_raw):
    path = write_raw("p_pairs.tsv", ["1\t1 2", "2\t3 y", "", "3 4", "4\t5 6", "1\t9"])
    inter, counts = raw.read_pairs_tsv(path, skip_bad=True)
    assert inter.user.tolist() == [1, 1, 4, 4]
    assert inter.item.tolist() == [1, 2, 5, 6]
    assert counts["malformed_line"] == 3  # bad item, no tab, user 1 again
    assert counts["blank_line"] == 1


def test_pairs_tsv_user_on_two_lines(write_raw):
    path = write_raw("p_pairs.tsv", ["1\t1 2", "2\t3", "1\t4"])
    with pytest.raises(RawFormatError, match=r":3: user 1 already has a line \(line 1\)"):
        raw.read_pairs_tsv(path)


def test_pairs_tsv_small_chunks_give_the_same_result(write_raw, monkeypatch):
    lines = [f"{u}\t" + " ".join(str((u * 7 + k) % 50 + 1) for k in range(3 + u % 9))
             for u in range(1, 300)]
    path = write_raw("p_pairs.tsv", lines + ["300\t1 oops"])
    expected, _ = raw.read_pairs_tsv(path, skip_bad=True)
    monkeypatch.setattr(raw_lines, "CHUNK_BYTES", 64)  # the line reader's chunk size
    chunked, counts = raw.read_pairs_tsv(path, skip_bad=True)
    for field in ("user", "item", "timestamp"):
        assert np.array_equal(getattr(chunked, field), getattr(expected, field))
    assert counts["crlf_line_end"] == 300 and counts["malformed_line"] == 1
    with pytest.raises(RawFormatError, match=":300: item 'oops'"):
        raw.read_pairs_tsv(path)


# --------------------------------------------------------------------------- pairs csv


def test_pairs_csv_reads_ms_timestamps_and_keeps_earliest_duplicate(write_raw):
    path = write_raw("p_pairs.csv", ["user,item,timestamp", "1,10,1600000000500",
                                     "2,11,1600000000000", "1,10,1600000000100",
                                     "1,12,1600000000200"], bom=True)
    inter, counts = raw.read_pairs_csv(path)
    assert inter.user.tolist() == [2, 1, 1]
    assert inter.item.tolist() == [11, 10, 12]
    assert inter.timestamp.tolist() == [1600000000000, 1600000000100, 1600000000200]
    assert counts == {"utf8_bom_removed": 1, "crlf_line_end": 5, "duplicate_item_in_user": 1}


def test_pairs_csv_malformed_lines(write_raw):
    path = write_raw("p_pairs.csv", ["user,item,timestamp", "1,10,5", "1,11", "1,x,7", "2,3,4",
                                     "2,4,99999999999999999999"])
    message = r"p_pairs.csv:3: expected 3 fields 'user,item,timestamp', found 2"
    with pytest.raises(RawFormatError, match=message):
        raw.read_pairs_csv(path)
    inter, counts = raw.read_pairs_csv(path, skip_bad=True)
    assert inter.item.tolist() == [10, 3] and counts["malformed_line"] == 3


def test_pairs_csv_small_chunks_give_the_same_result(write_raw, monkeypatch):
    lines = ["user,item,timestamp"] + [f"{u % 7},{u},{1000 + u}" for u in range(200)] + ["3,x,5"]
    path = write_raw("p_pairs.csv", lines)
    expected, _ = raw.read_pairs_csv(path, skip_bad=True)
    monkeypatch.setattr(raw_lines, "CHUNK_BYTES", 16)
    chunked, counts = raw.read_pairs_csv(path, skip_bad=True)
    assert len(chunked) == 200 and counts["malformed_line"] == 1
    for field in ("user", "item", "timestamp"):
        assert np.array_equal(getattr(chunked, field), getattr(expected, field))
    with pytest.raises(RawFormatError, match=":202: item 'x' is not an integer"):
        raw.read_pairs_csv(path)


def test_pairs_csv_requires_header(write_raw):
    path = write_raw("p_pairs.csv", ["1,10,5"])
    with pytest.raises(RawFormatError, match=":1: expected the header 'user,item,timestamp'"):
        raw.read_pairs_csv(path)


# --------------------------------------------------------------------------- item metadata


def test_titles_csv_quotes_bom_crlf_and_empty_titles(write_raw):
    path = write_raw("MicroLens-50k_titles.csv", [
        "item,title", '1,"Hello, ""world"" # tag"', "2,", '3,"two', 'lines"', "4,plain"], bom=True)
    titles, counts = raw.read_titles_csv(path)
    assert titles.to_dict() == {1: 'Hello, "world" # tag', 2: "", 3: "two\nlines", 4: "plain"}
    assert titles.index.dtype == np.int64
    assert counts == {"utf8_bom_removed": 1, "crlf_line_end": 6, "empty_title": 1}


def test_titles_csv_bad_item_reports_record_start_line(write_raw):
    path = write_raw("t_titles.csv",
                     ["item,title", '1,"multi', 'line"', "x2,bad", "3,ok", "1,again"])
    with pytest.raises(RawFormatError, match=r"t_titles.csv:4: item 'x2' is not an integer"):
        raw.read_titles_csv(path)
    titles, counts = raw.read_titles_csv(path, skip_bad=True)
    assert titles.to_dict() == {1: "multi\nline", 3: "ok"}
    assert counts["malformed_line"] == 1 and counts["duplicate_item"] == 1


def test_titles_invalid_utf8_is_a_bad_line(tmp_path):
    path = tmp_path / "t_titles.csv"
    path.write_bytes(b"item,title\r\n1,ok\r\n2,\xff\xfe\r\n")
    with pytest.raises(RawFormatError, match=":3: not valid UTF-8"):
        raw.read_titles_csv(path)


def test_title_en_splits_at_first_comma_without_header(write_raw):
    path = write_raw("MicroLens-100k_title_en.csv",
                     ["1, Cats, dogs and more", "2, ", "3,", '17, a "quoted" one'])
    titles, counts = raw.read_title_en(path)
    assert titles.to_dict() == {1: "Cats, dogs and more", 2: "", 3: "", 17: 'a "quoted" one'}
    assert counts["empty_title"] == 2
    bad = write_raw("bad_title_en.csv", ["1, a", "no comma here"])
    with pytest.raises(RawFormatError, match="bad_title_en.csv:2: expected 'id, title'"):
        raw.read_title_en(bad)


def test_likes_and_views(write_raw):
    path = write_raw("MicroLens-100k_likes_and_views.txt", ["1\t10\t200", "2\t0\t5", "1\t3\t3"])
    frame, counts = raw.read_likes_views(path)
    assert frame.loc[1].tolist() == [10, 200] and frame.loc[2].tolist() == [0, 5]
    assert counts["duplicate_item"] == 1
    bad = write_raw("bad_likes_and_views.txt", ["1\t10\t200", "2\t3"])
    message = ":2: expected 'item<TAB>likes<TAB>views', found 2 fields"
    with pytest.raises(RawFormatError, match=message):
        raw.read_likes_views(bad)


def test_tags_header_with_space(write_raw):
    path = write_raw("tags_to_summary.csv", ["video_id, tag", "1, Food & Drink", "2, Pets",
                                             "2, Games", "3, ", "2, Pets"])
    tags, counts = raw.read_tags(path)
    assert tags.to_dict() == {1: ("Food & Drink",), 2: ("Pets", "Games")}
    assert counts["empty_tag"] == 1 and counts["duplicate_tag"] == 1


def test_comment_counts(write_raw):
    path = write_raw("MicroLens-100k_comment_en.txt",
                     ["1\t5\tnice\tvideo", "2\t5\t", "3\t7\twow", "4\tz\tbad"])
    with pytest.raises(RawFormatError, match=":4: item 'z' is not an integer"):
        raw.read_comment_counts(path)
    counts_per_item, counts = raw.read_comment_counts(path, skip_bad=True)
    assert counts_per_item.to_dict() == {5: 2, 7: 1} and counts["malformed_line"] == 1


def test_users_skip_rows_without_gender(write_raw):
    path = write_raw("MicroLens-100k_users.csv", ["user,gender", "1,F", "2,", "3, M "])
    genders, counts = raw.read_users(path)
    assert genders.to_dict() == {1: "F", 3: "M"}
    assert counts["empty_gender"] == 1
