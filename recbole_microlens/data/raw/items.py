"""Readers of the official item (and user) metadata files: titles, likes and views, tags,
comment counts, user attributes. Each returns ``(data, counts)`` like the pairs readers."""
from __future__ import annotations

from collections import Counter
from typing import Iterable, Iterator

import numpy as np
import pandas as pd

from recbole_microlens.data.raw.lines import LineSource, PathLike, RawFormatError, parse_int, show

LIKES_FIELDS = ("item", "likes", "views")
Records = Iterator[tuple[int, list[str]]]


def read_titles_csv(path: PathLike, *, skip_bad: bool = False) -> tuple[pd.Series, Counter]:
    """50k style: RFC-4180 CSV with header ``item,title``. Returns titles indexed by item."""
    source = LineSource(path, skip_bad)
    records = source.csv_records()
    _expect_header(records, ("item", "title"), source)
    return _item_series(_two_fields(records, "item", source), "title", source), source.counts


def read_title_en(path: PathLike, *, skip_bad: bool = False) -> tuple[pd.Series, Counter]:
    """100k style: no header, ``id, title`` split at the first comma (titles may be empty)."""
    source = LineSource(path, skip_bad)
    rows = ((line_no, *item_title) for line_no, item_title
            in source.parsed(source.text_lines(), _item_and_title))
    return _item_series(rows, "title", source), source.counts


def _item_and_title(text: str) -> tuple[int, str]:
    item, comma, title = text.partition(",")
    if not comma:
        raise ValueError(f"expected 'id, title', found {show(text[:80])}")
    return parse_int(item, "item"), title.strip()


def read_likes_views(path: PathLike, *, skip_bad: bool = False) -> tuple[pd.DataFrame, Counter]:
    """``item<TAB>likes<TAB>views`` (integers). Returns columns likes, views indexed by item."""
    source = LineSource(path, skip_bad)
    items, values, seen = [], [], set()
    for _, (item, likes, views) in source.parsed(source.numbered_lines(), _likes_views_fields):
        if item in seen:
            source.counts["duplicate_item"] += 1
            continue
        seen.add(item)
        items.append(item)
        values.append((likes, views))
    frame = pd.DataFrame(np.array(values, dtype=np.int64).reshape(-1, 2), columns=LIKES_FIELDS[1:],
                         index=pd.Index(np.array(items, dtype=np.int64), name="item"))
    return frame, source.counts


def _likes_views_fields(line: bytes) -> tuple[int, int, int]:
    fields = line.split(b"\t")
    if len(fields) != 3:
        raise ValueError(f"expected 'item<TAB>likes<TAB>views', found {len(fields)} fields")
    item, likes, views = (parse_int(field, name) for field, name in zip(fields, LIKES_FIELDS))
    return item, likes, views


def read_tags(path: PathLike, *, skip_bad: bool = False) -> tuple[pd.Series, Counter]:
    """``tags_to_summary.csv``: header ``video_id, tag``. Returns a tuple of tags per item
    (one category per item in the release; more rows for an item add tags in file order)."""
    source = LineSource(path, skip_bad)
    records = source.csv_records(skipinitialspace=True)
    _expect_header(records, ("video_id", "tag"), source)
    tags: dict[int, list[str]] = {}
    for _, item, tag in _two_fields(records, "video_id", source):
        if not tag.strip():
            source.counts["empty_tag"] += 1
        elif tag.strip() in tags.setdefault(item, []):
            source.counts["duplicate_tag"] += 1
        else:
            tags[item].append(tag.strip())
    series = pd.Series({item: tuple(values) for item, values in tags.items()}, name="tags",
                       dtype=object)
    series.index = series.index.astype(np.int64).rename("item")
    return series, source.counts


def read_comment_counts(path: PathLike, *, skip_bad: bool = False) -> tuple[pd.Series, Counter]:
    """``user<TAB>item<TAB>text``; only the number of comments per item is kept."""
    source = LineSource(path, skip_bad)
    totals: Counter = Counter()
    for first, lines in source.chunks():
        items = [item for _, item in source.parsed(enumerate(lines, first), _commented_item)]
        ids, counts = np.unique(np.array(items, dtype=np.int64), return_counts=True)
        totals.update(dict(zip(ids.tolist(), counts.tolist())))
    series = pd.Series(totals, name="comments", dtype=np.int64)
    series.index = series.index.astype(np.int64).rename("item")
    return series.sort_index(), source.counts


def _commented_item(line: bytes) -> int:
    fields = line.split(b"\t", 2)
    if len(fields) < 3:
        raise ValueError("expected 'user<TAB>item<TAB>text'")
    parse_int(fields[0], "user")
    return parse_int(fields[1], "item")


def read_users(path: PathLike, *, skip_bad: bool = False) -> tuple[pd.Series, Counter]:
    """Optional user attributes: header ``user,gender``. Rows without a gender are skipped
    (counted), never filled in."""
    source = LineSource(path, skip_bad)
    records = source.csv_records()
    _expect_header(records, ("user", "gender"), source)

    def rows_with_gender() -> Iterator[tuple[int, int, str]]:
        for line_no, user, gender in _two_fields(records, "user", source):
            if gender.strip():
                yield line_no, user, gender.strip()
            else:
                source.counts["empty_gender"] += 1

    return _item_series(rows_with_gender(), "gender", source, kind="user"), source.counts


def _expect_header(records: Records, names: tuple[str, ...], source: LineSource) -> None:
    line_no, header = next(records, (1, []))
    if tuple(field.strip().lower() for field in header) != names:
        raise RawFormatError(
            f"{source.path}:{line_no}: expected the header {','.join(names)!r}, found {header!r}")


def _two_fields(records: Records, key: str, source: LineSource) -> Iterator[tuple[int, int, str]]:
    for line_no, record in records:
        if len(record) != 2:
            source.bad(line_no, f"expected 2 fields, found {len(record)}")
            continue
        try:
            yield line_no, parse_int(record[0], key), record[1]
        except ValueError as error:
            source.bad(line_no, str(error))


def _item_series(rows: Iterable[tuple[int, int, str]], name: str, source: LineSource,
                 kind: str = "item") -> pd.Series:
    """First value per id (repeats counted); empty titles are kept and counted."""
    values: dict[int, str] = {}
    for _, key, value in rows:
        if key in values:
            source.counts[f"duplicate_{kind}"] += 1
            continue
        if not value.strip():
            source.counts[f"empty_{name}"] += 1
        values[key] = value
    series = pd.Series(values, name=name, dtype=object)
    series.index = series.index.astype(np.int64).rename(kind)
    return series
