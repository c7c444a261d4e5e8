"""The generic store every per-item input shares (frames, covers, titles): a folder of arrays
with one row per item, ``index.json`` naming each row's item token, ``meta.json`` written last
(its presence means "complete"), built under the artefact protocol (:mod:`.artefact`: locked,
in a partial folder beside it, moved into place when complete).

Row 0 is the padding row (token ``[PAD]``), so RecBole's padding item id maps to a row like any
other item; readers index rows by item token, so a store may hold more items, in another order.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from recbole_microlens.io import read_json

PAD_TOKEN = "[PAD]"
PADDING_ROW = 0


class TokenRows:
    """Item token -> store row, shared by every store kind."""

    def __init__(self, tokens: list[str], folder: Path):
        self._row_of = {token: row for row, token in enumerate(tokens)}
        self._folder = folder

    def __call__(self, tokens: Iterable[str]) -> np.ndarray:
        tokens = [str(token) for token in tokens]
        unknown = [token for token in tokens if token not in self._row_of]
        if unknown:
            raise KeyError(f"{len(unknown)} item tokens not in {self._folder}: {unknown[:5]}")
        return np.fromiter((self._row_of[token] for token in tokens), dtype=np.int64,
                           count=len(tokens))


class IndexedStore:
    """A complete store folder (``meta.json``, ``index.json``, arrays), opened read-only.

    Open once per process, then index rows by item token. Pickling (e.g. into DataLoader
    workers) sends only the folder; the copy maps the files again.
    """

    kind_name = "store"

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        meta_file = self.folder / "meta.json"
        if not meta_file.is_file():
            raise FileNotFoundError(f"{self.folder} is not a complete {self.kind_name} (no meta.json)")
        self.meta = read_json(meta_file)
        index = read_json(self.folder / "index.json")
        self.tokens = index["tokens"]
        self.status = np.array(index["status"])
        self._rows = TokenRows(self.tokens, self.folder)
        self._map_arrays()

    def _map_arrays(self) -> None:
        raise NotImplementedError

    @classmethod
    def open(cls, folder: str | os.PathLike):
        return cls(folder)

    def rows_for(self, tokens: Iterable[str]) -> np.ndarray:
        """Row of each item token (``[PAD]`` -> the padding row); unknown tokens raise KeyError."""
        return self._rows(tokens)

    def __len__(self) -> int:
        return len(self.tokens)

    def __getstate__(self):
        return {"folder": self.folder}

    def __setstate__(self, state):
        self.__init__(state["folder"])


def read_item_tokens(dataset_dir: str | os.PathLike) -> list[str]:
    """Item tokens of a converted dataset: ``.item`` rows in order, else ``.inter`` first seen."""
    dataset_dir = Path(dataset_dir)
    for suffix in (".item", ".inter"):
        path = dataset_dir / f"{dataset_dir.name}{suffix}"
        if path.is_file():
            return list(dict.fromkeys(_token_column(path, "item_id")))
    raise FileNotFoundError(f"no {dataset_dir.name}.item or .inter in {dataset_dir}")


def _token_column(path: Path, field_name: str) -> Iterator[str]:
    """Values of the ``<field_name>:<type>`` column of a RecBole atomic file."""
    with open(path, encoding="utf-8") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        column = [name.split(":")[0] for name in header].index(field_name)
        for line in handle:
            if line.strip():
                yield line.rstrip("\n").split("\t")[column]
