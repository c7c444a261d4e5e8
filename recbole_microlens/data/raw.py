"""Readers for the official MicroLens raw files: one function per format, no RecBole.

Interactions stay in numpy int64 arrays read in byte-bounded chunks, so memory grows with the
number of interactions and never with Python objects per interaction. Every reader returns
``(data, counts)``; ``counts`` is a Counter of skipped or repaired rows keyed by reason, so that
nothing is dropped silently. A malformed line raises :class:`RawFormatError` naming the file and
the 1-based line, unless ``skip_bad`` is set, in which case it is skipped and counted.
"""
from __future__ import annotations

import csv
import dataclasses
import itertools
import re
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd
from tqdm import tqdm

PathLike = str | os.PathLike
CHUNK_BYTES = 1 << 23
BOM = b"\xef\xbb\xbf"
CSV_FIELDS = ("user", "item", "timestamp")
SECONDS_FROM, SECONDS_BELOW = 10**8, 10**11  # epoch timestamps in this range are in seconds
SECONDS_SCALED = "timestamp_in_seconds_scaled_to_ms"
RECORD_START = re.compile(r"^\s*\d+\s*,")  # how a record of an id-keyed csv file begins
LIKES_FIELDS = ("item", "likes", "views")
INT64 = np.iinfo(np.int64)

# Field name of RawFiles -> the name pattern of the official release.
FILE_PATTERNS = {
    "pairs_tsv": "*_pairs.tsv",
    "pairs_csv": "*_pairs.csv",
    "titles": "*_titles.csv",
    "title_en": "*_title_en.csv",
    "likes_views": "*_likes_and_views.txt",
    "tags": "tags_to_summary.csv",
    "comments": "*_comment_en.txt",
    "users": "*_users.csv",
    "covers": "covers",
    "videos": "videos",
}
DIRECTORY_FIELDS = ("covers", "videos")


class RawFormatError(ValueError):
    """A raw file does not follow its official format (message: ``file:line: problem``)."""


class RawFilesError(ValueError):
    """The raw directory lacks a required file or holds two candidates for one."""


@dataclass(frozen=True)
class RawFiles:
    """Paths of the raw files of one release; ``None`` where the release lacks that file."""

    pairs_tsv: Path | None = None
    pairs_csv: Path | None = None
    titles: Path | None = None
    title_en: Path | None = None
    likes_views: Path | None = None
    tags: Path | None = None
    comments: Path | None = None
    users: Path | None = None
    covers: Path | None = None
    videos: Path | None = None

    def present(self) -> dict[str, Path]:
        """The files and folders that exist in this release, by field name."""
        paths = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        return {name: path for name, path in paths.items() if path is not None}


@dataclass
class Interactions:
    """Parallel int64 arrays, one entry per interaction.

    ``timestamp`` is Unix epoch milliseconds (pairs csv) or the position in the user's
    sequence 0, 1, 2, ... (pairs tsv, which has no times).
    """

    user: np.ndarray
    item: np.ndarray
    timestamp: np.ndarray

    def __len__(self) -> int:
        return len(self.user)

    def take(self, index: np.ndarray) -> "Interactions":
        """A subset (boolean mask or positions), keeping the given order."""
        return Interactions(self.user[index], self.item[index], self.timestamp[index])


# --------------------------------------------------------------------------- file detection


def detect_raw_files(raw_dir: PathLike, **overrides: PathLike | None) -> RawFiles:
    """Find each official file in ``raw_dir`` by its name pattern; explicit overrides win.

    Raises :class:`RawFilesError` when no pairs file is found or a pattern matches twice.
    """
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise RawFilesError(f"raw directory {raw_dir} does not exist")
    unknown = set(overrides) - set(FILE_PATTERNS)
    if unknown:
        raise TypeError(f"unknown raw file kinds: {sorted(unknown)}")
    found = {}
    for field, pattern in FILE_PATTERNS.items():
        if overrides.get(field) is not None:
            found[field] = _existing(Path(overrides[field]), field)
        else:
            found[field] = _match_one(raw_dir, field, pattern)
    if found["pairs_tsv"] is None and found["pairs_csv"] is None:
        raise RawFilesError(
            f"no interaction file in {raw_dir}: looked for {FILE_PATTERNS['pairs_tsv']!r} "
            f"and {FILE_PATTERNS['pairs_csv']!r}"
        )
    return RawFiles(**found)


def _existing(path: Path, field: str) -> Path:
    wants_dir = field in DIRECTORY_FIELDS
    if not (path.is_dir() if wants_dir else path.is_file()):
        kind = "folder" if wants_dir else "file"
        raise RawFilesError(f"{field}: {path} is not an existing {kind}")
    return path


def _match_one(raw_dir: Path, field: str, pattern: str) -> Path | None:
    wants_dir = field in DIRECTORY_FIELDS
    matches = sorted(p for p in raw_dir.glob(pattern) if (p.is_dir() if wants_dir else p.is_file()))
    if len(matches) > 1:
        names = ", ".join(p.name for p in matches)
        raise RawFilesError(
            f"{raw_dir}: {len(matches)} files match {pattern!r} ({names}); "
            f"name the one to use with the {field} override"
        )
    return matches[0] if matches else None


# --------------------------------------------------------------------------- line sources


class _Source:
    """One raw file being read: strips BOM and CRLF (counted), knows line numbers, and
    turns a bad line into an error or, with ``skip_bad``, into a count."""

    def __init__(self, path: PathLike, skip_bad: bool):
        self.path = Path(path)
        self.skip_bad = skip_bad
        self.counts: Counter = Counter()

    def bad(self, line_no: int, problem: str) -> None:
        if not self.skip_bad:
            raise RawFormatError(f"{self.path}:{line_no}: {problem}")
        self.counts["malformed_line"] += 1

    def chunks(self) -> Iterator[tuple[int, list[bytes]]]:
        """Yield ``(line number of the first line, lines without line ends)`` per chunk of
        about ``CHUNK_BYTES``."""
        line_no = 1
        with open(self.path, "rb") as handle, tqdm(
            total=self.path.stat().st_size, unit="B", unit_scale=True,
            desc=self.path.name, disable=None, leave=False,
        ) as progress:
            while lines := handle.readlines(CHUNK_BYTES):
                progress.update(sum(map(len, lines)))
                if line_no == 1 and lines[0].startswith(BOM):
                    lines[0] = lines[0][len(BOM):]
                    self.counts["utf8_bom_removed"] += 1
                crlf = sum(map(bytes.endswith, lines, itertools.repeat(b"\r\n")))
                self.counts["crlf_line_end"] += crlf
                yield line_no, [line.rstrip(b"\r\n") for line in lines]
                line_no += len(lines)

    def numbered_lines(self) -> Iterator[tuple[int, bytes]]:
        for first, lines in self.chunks():
            yield from enumerate(lines, first)

    def text_lines(self) -> Iterator[tuple[int, str]]:
        """Decoded UTF-8 lines; a line that is not valid UTF-8 is a bad line."""
        for line_no, line in self.numbered_lines():
            try:
                yield line_no, line.decode("utf-8")
            except UnicodeDecodeError as error:
                self.bad(line_no, f"not valid UTF-8 ({error.reason} at byte {error.start})")

    def quote_checked_lines(self) -> Iterator[tuple[int, str]]:
        """:meth:`text_lines`, less lines whose quoted field is never closed.

        A quoted field may span lines (RFC-4180), but one still open where the next line starts
        a new record (``<id>,``) or at the end of the file is an unterminated quote: the csv
        reader would silently swallow the records that follow into it.
        """
        lines = self.text_lines()
        upcoming = next(lines, None)
        in_field = False
        while upcoming is not None:
            line_no, text = upcoming
            upcoming = next(lines, None)
            odd = text.count('"') % 2 == 1
            if odd and not in_field and (upcoming is None or RECORD_START.match(upcoming[1])):
                self.bad(line_no, "unterminated quote: the quoted field opened on this line is "
                                  "never closed")
                continue
            in_field ^= odd
            yield line_no, text

    def csv_records(self, **reader_kwargs) -> Iterator[tuple[int, list[str]]]:
        """RFC-4180 records with the line number each record starts on."""
        record_lines: list[int] = []

        def feed() -> Iterator[str]:
            for line_no, text in self.quote_checked_lines():
                record_lines.append(line_no)
                yield text + "\n"

        reader = csv.reader(feed(), **reader_kwargs)
        while True:
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                self.bad(record_lines[0], f"not valid CSV ({error})")
                record_lines.clear()
                continue
            start = record_lines[0]
            record_lines.clear()
            if record:
                yield start, record
            else:
                self.counts["blank_line"] += 1


def _parse_int(text, what: str) -> int:
    """An int64, or a ValueError that says what is wrong with ``text``."""
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{what} {_show(text)} is not an integer") from None
    if not INT64.min <= value <= INT64.max:
        raise ValueError(f"{what} {_show(text)} does not fit in 64 bits")
    return value


def _show(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return repr(value)


# --------------------------------------------------------------------------- pairs


def read_pairs_tsv(path: PathLike, *, skip_bad: bool = False) -> tuple[Interactions, Counter]:
    """``user<TAB>item item …`` per line, items in chronological order.

    The timestamp is the item's position in the user's de-duplicated sequence.
    A repeated item keeps its first occurrence; a user on two lines is a bad line.
    """
    source = _Source(path, skip_bad)
    users, line_nos, lengths, items, positions = [], [], [], [], []
    for first, lines in source.chunks():
        chunk = _parse_tsv_chunk(lines, first, source)
        kept, kept_lengths, kept_positions = _first_occurrences(chunk.lengths, chunk.items)
        source.counts["duplicate_item_in_user"] += len(kept) - len(kept_positions)
        users.append(chunk.users)
        line_nos.append(chunk.line_nos)
        lengths.append(kept_lengths)
        items.append(chunk.items[kept])
        positions.append(kept_positions)
    line_users, lengths = _concat(users), _concat(lengths)
    keep_line = _first_line_per_user(line_users, _concat(line_nos), source)
    inter = Interactions(np.repeat(line_users, lengths), _concat(items), _concat(positions))
    if not keep_line.all():
        inter = inter.take(np.repeat(keep_line, lengths))
    return inter, source.counts


@dataclass
class _TsvChunk:
    users: np.ndarray
    line_nos: np.ndarray
    lengths: np.ndarray
    items: np.ndarray


def _parse_tsv_chunk(lines: list[bytes], first: int, source: _Source) -> _TsvChunk:
    """Vectorised parse of well-formed lines; line by line only when something is wrong."""
    try:
        return _parse_tsv_lines(lines, first)
    except ValueError:
        pass
    good_users, good_lines, good_lengths, good_items = [], [], [], []
    for line_no, line in enumerate(lines, first):
        if not line.strip():
            source.counts["blank_line"] += 1
            continue
        try:
            chunk = _parse_tsv_lines([line], line_no)
        except ValueError as error:
            source.bad(line_no, str(error))
            continue
        good_users.append(chunk.users)
        good_lines.append(chunk.line_nos)
        good_lengths.append(chunk.lengths)
        good_items.append(chunk.items)
    return _TsvChunk(*map(_concat, (good_users, good_lines, good_lengths, good_items)))


def _parse_tsv_lines(lines: list[bytes], first: int) -> _TsvChunk:
    """Parse lines that must all be well formed; ValueError names the first problem."""
    users, lengths, flat = [], [], []
    for line in lines:
        user, tab, rest = line.partition(b"\t")
        tokens = rest.split()
        if not tab or not tokens:
            raise ValueError(f"expected 'user<TAB>item item ...', found {_show(line[:80])}")
        users.append(user)
        lengths.append(len(tokens))
        flat.extend(tokens)
    item_array = _int_array(flat, "item")
    user_array = _int_array(users, "user")
    line_nos = np.arange(first, first + len(lines), dtype=np.int64)
    return _TsvChunk(user_array, line_nos, np.array(lengths, dtype=np.int64), item_array)


def _int_array(tokens: list[bytes], what: str) -> np.ndarray:
    """int64 array of ``tokens`` in one C-level pass; on failure, name the first bad token."""
    try:
        return np.array(tokens, dtype=np.int64)
    except (ValueError, OverflowError):
        for token in tokens:
            _parse_int(token, what)
        raise ValueError(f"{what} ids could not be read as 64-bit integers") from None


def _first_occurrences(lengths: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, ...]:
    """Mask of each row's first occurrence of every item, the kept length of each row, and
    each kept item's position in its row. Rows are consecutive runs of ``lengths`` items."""
    row = np.repeat(np.arange(len(lengths)), lengths)
    kept = ~_later_repeats(row, items)
    kept_row = row[kept]
    kept_lengths = np.bincount(kept_row, minlength=len(lengths))
    starts = np.cumsum(kept_lengths) - kept_lengths
    positions = np.arange(len(kept_row), dtype=np.int64) - starts[kept_row]
    return kept, kept_lengths, positions


def _later_repeats(users: np.ndarray, items: np.ndarray, *tie_keys: np.ndarray) -> np.ndarray:
    """Mask of the rows whose (user, item) pair came before: earlier by ``tie_keys``, then by
    file order (lexsort is stable)."""
    order = np.lexsort((*tie_keys, items, users))
    users, items = users[order], items[order]
    repeat = (users[1:] == users[:-1]) & (items[1:] == items[:-1])
    mask = np.zeros(len(order), dtype=bool)
    mask[order[1:][repeat]] = True
    return mask


def _first_line_per_user(users: np.ndarray, line_nos: np.ndarray, source: _Source) -> np.ndarray:
    """Mask of lines to keep: a user's second line is a bad line."""
    keep = np.ones(len(users), dtype=bool)
    order = np.argsort(users, kind="stable")
    again = order[1:][users[order][1:] == users[order][:-1]]
    for line in sorted(again, key=lambda i: line_nos[i]):
        earlier = line_nos[order[np.searchsorted(users[order], users[line])]]
        source.bad(int(line_nos[line]), f"user {users[line]} already has a line (line {earlier})")
        keep[line] = False
    return keep


def read_pairs_csv(path: PathLike, *, skip_bad: bool = False) -> tuple[Interactions, Counter]:
    """Header ``user,item,timestamp`` (epoch ms), then one interaction per line, in any order.

    A repeated (user, item) keeps its earliest occurrence (ties: file order).
    """
    source = _Source(path, skip_bad)
    parts = []
    for first, lines in source.chunks():
        if first == 1:
            _check_csv_header(lines[0], source)
            lines, first = lines[1:], 2
        parts.append(_parse_csv_chunk(lines, first, source))
    table = np.concatenate(parts) if parts else np.empty((0, 3), dtype=np.int64)
    inter = Interactions(table[:, 0], table[:, 1], in_milliseconds(table[:, 2], source))
    repeats = _later_repeats(inter.user, inter.item, inter.timestamp)
    source.counts["duplicate_item_in_user"] += int(repeats.sum())
    return inter.take(~repeats), source.counts


def in_milliseconds(timestamps: np.ndarray, source: _Source) -> np.ndarray:
    """Epoch timestamps in milliseconds; ones in seconds (found by magnitude: from 1e8 to 1e11,
    i.e. 1973 to 5138 AD in seconds, 1970 to 1973 in milliseconds) are scaled and counted, so
    one user's seconds are not ordered before everybody's milliseconds. Smaller values (not
    epoch times: positions, synthetic data) are left as they are."""
    seconds = (timestamps >= SECONDS_FROM) & (timestamps < SECONDS_BELOW)
    if seconds.any():
        source.counts[SECONDS_SCALED] += int(seconds.sum())
        timestamps = np.where(seconds, timestamps * 1000, timestamps)
    return timestamps


def _check_csv_header(line: bytes, source: _Source) -> None:
    fields = line.split(b",")
    if len(fields) != 3 or all(f.strip().isdigit() for f in fields):
        raise RawFormatError(
            f"{source.path}:1: expected the header 'user,item,timestamp', found {_show(line[:80])}")


def _parse_csv_chunk(lines: list[bytes], first: int, source: _Source) -> np.ndarray:
    """An (n, 3) int64 array; vectorised unless a line is malformed."""
    if set(map(bytes.count, lines, itertools.repeat(b","))) <= {2}:
        try:
            return np.array(b",".join(lines).split(b","), dtype=np.int64).reshape(-1, 3)
        except (ValueError, OverflowError):
            pass
    rows = []
    for line_no, line in enumerate(lines, first):
        if not line.strip():
            source.counts["blank_line"] += 1
            continue
        fields = line.split(b",")
        if len(fields) != 3:
            source.bad(line_no, f"expected 3 fields 'user,item,timestamp', found {len(fields)}")
            continue
        try:
            rows.append([_parse_int(field, name) for field, name in zip(fields, CSV_FIELDS)])
        except ValueError as error:
            source.bad(line_no, str(error))
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def _concat(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.empty(0, dtype=np.int64)


# --------------------------------------------------------------------------- item metadata


def read_titles_csv(path: PathLike, *, skip_bad: bool = False) -> tuple[pd.Series, Counter]:
    """50k style: RFC-4180 CSV with header ``item,title``. Returns titles indexed by item."""
    source = _Source(path, skip_bad)
    records = source.csv_records()
    _expect_header(records, ("item", "title"), source)
    return _item_series(_two_fields(records, "item", source), "title", source), source.counts


def read_title_en(path: PathLike, *, skip_bad: bool = False) -> tuple[pd.Series, Counter]:
    """100k style: no header, ``id, title`` split at the first comma (titles may be empty)."""
    source = _Source(path, skip_bad)

    def rows() -> Iterator[tuple[int, int, str]]:
        for line_no, text in source.text_lines():
            if not text.strip():
                source.counts["blank_line"] += 1
                continue
            item, comma, title = text.partition(",")
            if not comma:
                source.bad(line_no, f"expected 'id, title', found {_show(text[:80])}")
                continue
            try:
                yield line_no, _parse_int(item, "item"), title.strip()
            except ValueError as error:
                source.bad(line_no, str(error))

    return _item_series(rows(), "title", source), source.counts


def read_likes_views(path: PathLike, *, skip_bad: bool = False) -> tuple[pd.DataFrame, Counter]:
    """``item<TAB>likes<TAB>views`` (integers). Returns columns likes, views indexed by item."""
    source = _Source(path, skip_bad)
    items, values, seen = [], [], set()
    for line_no, line in source.numbered_lines():
        if not line.strip():
            source.counts["blank_line"] += 1
            continue
        fields = line.split(b"\t")
        if len(fields) != 3:
            source.bad(line_no, f"expected 'item<TAB>likes<TAB>views', found {len(fields)} fields")
            continue
        try:
            item, likes, views = (_parse_int(f, name) for f, name in zip(fields, LIKES_FIELDS))
        except ValueError as error:
            source.bad(line_no, str(error))
            continue
        if item in seen:
            source.counts["duplicate_item"] += 1
            continue
        seen.add(item)
        items.append(item)
        values.append((likes, views))
    frame = pd.DataFrame(np.array(values, dtype=np.int64).reshape(-1, 2), columns=LIKES_FIELDS[1:],
                         index=pd.Index(np.array(items, dtype=np.int64), name="item"))
    return frame, source.counts


def read_tags(path: PathLike, *, skip_bad: bool = False) -> tuple[pd.Series, Counter]:
    """``tags_to_summary.csv``: header ``video_id, tag``. Returns a tuple of tags per item
    (one category per item in the release; more rows for an item add tags in file order)."""
    source = _Source(path, skip_bad)
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
    source = _Source(path, skip_bad)
    totals: Counter = Counter()
    for first, lines in source.chunks():
        items = []
        for line_no, line in enumerate(lines, first):
            fields = line.split(b"\t", 2)
            if not line.strip():
                source.counts["blank_line"] += 1
            elif len(fields) < 3:
                source.bad(line_no, "expected 'user<TAB>item<TAB>text'")
            else:
                try:
                    _parse_int(fields[0], "user")
                    items.append(_parse_int(fields[1], "item"))
                except ValueError as error:
                    source.bad(line_no, str(error))
        ids, counts = np.unique(np.array(items, dtype=np.int64), return_counts=True)
        totals.update(dict(zip(ids.tolist(), counts.tolist())))
    series = pd.Series(totals, name="comments", dtype=np.int64)
    series.index = series.index.astype(np.int64).rename("item")
    return series.sort_index(), source.counts


def read_users(path: PathLike, *, skip_bad: bool = False) -> tuple[pd.Series, Counter]:
    """Optional user attributes: header ``user,gender``. Rows without a gender are skipped
    (counted), never filled in."""
    source = _Source(path, skip_bad)
    records = source.csv_records()
    _expect_header(records, ("user", "gender"), source)

    def rows_with_gender() -> Iterator[tuple[int, int, str]]:
        for line_no, user, gender in _two_fields(records, "user", source):
            if gender.strip():
                yield line_no, user, gender.strip()
            else:
                source.counts["empty_gender"] += 1

    return _item_series(rows_with_gender(), "gender", source, kind="user"), source.counts


Records = Iterator[tuple[int, list[str]]]


def _expect_header(records: Records, names: tuple[str, ...], source: _Source) -> None:
    line_no, header = next(records, (1, []))
    if tuple(field.strip().lower() for field in header) != names:
        raise RawFormatError(
            f"{source.path}:{line_no}: expected the header {','.join(names)!r}, found {header!r}")


def _two_fields(records: Records, key: str, source: _Source) -> Iterator[tuple[int, int, str]]:
    for line_no, record in records:
        if len(record) != 2:
            source.bad(line_no, f"expected 2 fields, found {len(record)}")
            continue
        try:
            yield line_no, _parse_int(record[0], key), record[1]
        except ValueError as error:
            source.bad(line_no, str(error))


def _item_series(rows: Iterable[tuple[int, int, str]], name: str, source: _Source,
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
