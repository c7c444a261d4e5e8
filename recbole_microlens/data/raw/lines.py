"""Reading one raw file line by line: BOM and CRLF stripped (and counted), line numbers kept, and
a malformed line turned into :class:`RawFormatError` (``file:line: problem``) or, with
``skip_bad``, into a count."""
from __future__ import annotations

import csv
import itertools
import os
import re
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

import numpy as np
from tqdm import tqdm

from recbole_microlens.errors import InputError

PathLike = str | os.PathLike
CHUNK_BYTES = 1 << 23
BOM = b"\xef\xbb\xbf"
RECORD_START = re.compile(r"^\s*\d+\s*,")  # how a record of an id-keyed csv file begins
INT64 = np.iinfo(np.int64)
Line = TypeVar("Line", bytes, str)
Parsed = TypeVar("Parsed")


class RawFormatError(InputError):
    """A raw file does not follow its official format (message: ``file:line: problem``)."""


class LineSource:
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

    def parsed(self, numbered: Iterable[tuple[int, Line]],
               parse: Callable[[Line], Parsed]) -> Iterator[tuple[int, Parsed]]:
        """``parse`` applied to each non-blank line: blank lines are counted, and a ValueError
        from ``parse`` (its message says what is wrong) makes the line a bad line."""
        for line_no, line in numbered:
            if not line.strip():
                self.counts["blank_line"] += 1
                continue
            try:
                yield line_no, parse(line)
            except ValueError as error:
                self.bad(line_no, str(error))

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


def parse_int(text, what: str) -> int:
    """An int64, or a ValueError that says what is wrong with ``text``."""
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{what} {show(text)} is not an integer") from None
    if not INT64.min <= value <= INT64.max:
        raise ValueError(f"{what} {show(text)} does not fit in 64 bits")
    return value


def show(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return repr(value)
