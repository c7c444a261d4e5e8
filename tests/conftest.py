"""Shared test fixtures: small raw MicroLens files, thread settings."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def write_raw(tmp_path):
    """``write_raw(name, lines, crlf=True, bom=False)`` writes ``tmp_path/raw/name`` as UTF-8
    with the official CRLF line ends and returns its path."""
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir(exist_ok=True)

    def write(name: str, lines: list[str], *, crlf: bool = True, bom: bool = False) -> Path:
        end = "\r\n" if crlf else "\n"
        path = raw_dir / name
        text = "".join(line + end for line in lines).encode("utf-8")
        path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text)
        return path

    return write


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: a second OpenMP thread only adds contention on a 2-core machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
