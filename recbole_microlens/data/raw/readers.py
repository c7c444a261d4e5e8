"""Readers for the official MicroLens raw files: one function per format, no RecBole.

Interactions stay in numpy int64 arrays read in byte-bounded chunks, so memory grows with the
number of interactions and never with Python objects per interaction. Every reader returns
``(data, counts)``; ``counts`` is a Counter of skipped or repaired rows keyed by reason, so that
nothing is dropped silently. A malformed line raises :class:`RawFormatError` naming the file and
the 1-based line, unless ``skip_bad`` is set, in which case it is skipped and counted.

Here: finding the files and the interaction readers; line handling is in :mod:`.raw_lines`, the
item metadata readers in :mod:`.raw_items` (re-exported here).
"""
from __future__ import annotations

import dataclasses
import itertools
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recbole_microlens.data.raw.items import (
    read_comment_counts, read_likes_views, read_tags, read_title_en, read_titles_csv, read_users,
)
from recbole_microlens.errors import InputError
from recbole_microlens.data.raw.lines import LineSource, PathLike, RawFormatError, parse_int, show

__all__ = ["FILE_PATTERNS", "RawFiles", "RawFilesError", "RawFormatError", "RawInteractions",
           "detect_raw_files", "in_milliseconds", "read_comment_counts", "read_likes_views",
           "read_pairs_csv", "read_pairs_tsv", "read_tags", "read_title_en", "read_titles_csv",
           "read_users"]
CSV_FIELDS = ("user", "item", "timestamp")
SECONDS_FROM, SECONDS_BELOW = 10**8, 10**11  # epoch timestamps in this range are in seconds
SECONDS_SCALED = "timestamp_in_seconds_scaled_to_ms"

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


class RawFilesError(InputError):
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
class RawInteractions:
    """Parallel int64 arrays, one entry per interaction.

    ``timestamp`` is Unix epoch milliseconds (pairs csv) or the position in the user's
    sequence 0, 1, 2, ... (pairs tsv, which has no times).
    """

    user: np.ndarray
    item: np.ndarray
    timestamp: np.ndarray

    def __len__(self) -> int:
        return len(self.user)

    def take(self, index: np.ndarray) -> "RawInteractions":
        """A subset (boolean mask or positions), keeping the given order."""
        return RawInteractions(self.user[index], self.item[index], self.timestamp[index])


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


# --------------------------------------------------------------------------- pairs


def read_pairs_tsv(path: PathLike, *, skip_bad: bool = False) -> tuple[RawInteractions, Counter]:
    """``user<TAB>item item …`` per line, items in chronological order.

    The timestamp is the item's position in the user's de-duplicated sequence.
    A repeated item keeps its first occurrence; a user on two lines is a bad line.
    """
    source = LineSource(path, skip_bad)
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
    inter = RawInteractions(np.repeat(line_users, lengths), _concat(items), _concat(positions))
    if not keep_line.all():
        inter = inter.take(np.repeat(keep_line, lengths))
    return inter, source.counts


@dataclass
class _TsvChunk:
    users: np.ndarray
    line_nos: np.ndarray
    lengths: np.ndarray
    items: np.ndarray


def _parse_tsv_chunk(lines: list[bytes], first: int, source: LineSource) -> _TsvChunk:
    """Vectorised parse of well-formed lines; line by line only when something is wrong."""
    try:
        return _parse_tsv_lines(lines, first)
    except ValueError:
        pass
    good = list(source.parsed(enumerate(lines, first), lambda line: _parse_tsv_lines([line], 0)))
    return _TsvChunk(_concat([chunk.users for _, chunk in good]),
                     np.array([line_no for line_no, _ in good], dtype=np.int64),
                     _concat([chunk.lengths for _, chunk in good]),
                     _concat([chunk.items for _, chunk in good]))


def _parse_tsv_lines(lines: list[bytes], first: int) -> _TsvChunk:
    """Parse lines that must all be well formed; ValueError names the first problem."""
    users, lengths, flat = [], [], []
    for line in lines:
        user, tab, rest = line.partition(b"\t")
        tokens = rest.split()
        if not tab or not tokens:
            raise ValueError(f"expected 'user<TAB>item item ...', found {show(line[:80])}")
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
            parse_int(token, what)
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


def _first_line_per_user(users: np.ndarray, line_nos: np.ndarray, source: LineSource) -> np.ndarray:
    """Mask of lines to keep: a user's second line is a bad line."""
    keep = np.ones(len(users), dtype=bool)
    order = np.argsort(users, kind="stable")
    again = order[1:][users[order][1:] == users[order][:-1]]
    for line in sorted(again, key=lambda i: line_nos[i]):
        earlier = line_nos[order[np.searchsorted(users[order], users[line])]]
        source.bad(int(line_nos[line]), f"user {users[line]} already has a line (line {earlier})")
        keep[line] = False
    return keep


def read_pairs_csv(path: PathLike, *, skip_bad: bool = False) -> tuple[RawInteractions, Counter]:
    """Header ``user,item,timestamp`` (epoch ms), then one interaction per line, in any order.

    A repeated (user, item) keeps its earliest occurrence (ties: file order).
    """
    source = LineSource(path, skip_bad)
    parts = []
    for first, lines in source.chunks():
        if first == 1:
            _check_csv_header(lines[0], source)
            lines, first = lines[1:], 2
        parts.append(_parse_csv_chunk(lines, first, source))
    table = np.concatenate(parts) if parts else np.empty((0, 3), dtype=np.int64)
    inter = RawInteractions(table[:, 0], table[:, 1], in_milliseconds(table[:, 2], source))
    repeats = _later_repeats(inter.user, inter.item, inter.timestamp)
    source.counts["duplicate_item_in_user"] += int(repeats.sum())
    return inter.take(~repeats), source.counts


def in_milliseconds(timestamps: np.ndarray, source: LineSource) -> np.ndarray:
    """Epoch timestamps in milliseconds; ones in seconds (found by magnitude: from 1e8 to 1e11,
    i.e. 1973 to 5138 AD in seconds, 1970 to 1973 in milliseconds) are scaled and counted, so
    one user's seconds are not ordered before everybody's milliseconds. Smaller values (not
    epoch times: positions, synthetic data) are left as they are."""
    seconds = (timestamps >= SECONDS_FROM) & (timestamps < SECONDS_BELOW)
    if seconds.any():
        source.counts[SECONDS_SCALED] += int(seconds.sum())
        timestamps = np.where(seconds, timestamps * 1000, timestamps)
    return timestamps


def _check_csv_header(line: bytes, source: LineSource) -> None:
    fields = line.split(b",")
    if len(fields) != 3 or all(f.strip().isdigit() for f in fields):
        raise RawFormatError(
            f"{source.path}:1: expected the header 'user,item,timestamp', found {show(line[:80])}")


def _parse_csv_chunk(lines: list[bytes], first: int, source: LineSource) -> np.ndarray:
    """An (n, 3) int64 array; vectorised unless a line is malformed."""
    if set(map(bytes.count, lines, itertools.repeat(b","))) <= {2}:
        try:
            return np.array(b",".join(lines).split(b","), dtype=np.int64).reshape(-1, 3)
        except (ValueError, OverflowError):
            pass
    rows = [row for _, row in source.parsed(enumerate(lines, first), _pair_fields)]
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def _pair_fields(line: bytes) -> list[int]:
    fields = line.split(b",")
    if len(fields) != 3:
        raise ValueError(f"expected 3 fields 'user,item,timestamp', found {len(fields)}")
    return [parse_int(field, name) for field, name in zip(fields, CSV_FIELDS)]


def _concat(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.empty(0, dtype=np.int64)
