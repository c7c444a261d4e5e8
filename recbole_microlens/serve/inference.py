"""Using a trained model: top-k recommendations, item vectors, and cold-start items.

Everything starts from a checkpoint (:func:`recbole_microlens.quick_start.load_data_and_model`).
Scoring follows the evaluation's rules: every item is embedded once (a content tower encodes
each item once, not once per user), one matrix product per batch of users, and the items a user
already interacted with (their whole history, valid and test items included) are masked.
"""
from __future__ import annotations

import csv
import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from recbole.data.interaction import Interaction
from recbole.utils import ModelType

from recbole_microlens.errors import InputError, MissingInputError, NonFiniteError
from recbole_microlens.evaluator.ranking import mask_scores
from recbole_microlens.io import atomic_open, write_json_atomic
from recbole_microlens.model.layers import content_tower, item_table_once

logger = logging.getLogger(__name__)

TSV_HEADER = ("user_id", "rank", "item_id", "score")
#: with --new-items, a fifth column says where each item came from
SOURCE_COLUMN = "source"
SOURCES = ("catalogue", "new", "new-fallback")  # new-fallback: its media could not be read
CANDIDATES = ("all", "new")
TITLE_FILES = ("titles.csv",)


class InferenceError(InputError):
    """Bad input to recommend / export-embeddings (unknown user, empty folder, ...)."""


# ------------------------------------------------------------------------------ users ---
def read_users_file(path: str | os.PathLike) -> list[tuple[str, str]]:
    """``(token, 'file:line')`` per non-empty line of a one-user-per-line file (``#`` comments)."""
    if not Path(path).is_file():
        raise MissingInputError(f"{path}: no such users file")
    users = []
    with open(path, encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            token = line.split("#", 1)[0].strip()
            if not token:
                continue
            if any(char.isspace() for char in token):
                raise InferenceError(f"{path}:{number}: one user token per line, got {token!r}")
            users.append((token, f"{path}:{number}"))
    if not users:
        raise InferenceError(f"{path}: no user tokens")
    return users


def user_ids(dataset, users: Sequence[tuple[str, str]]) -> np.ndarray:
    """Internal ids of external user tokens, each user once (in first-listed order); an unknown
    token names where it came from."""
    known = dataset.field2token_id[dataset.uid_field]
    unknown = [f"{where}: unknown user {token!r}" for token, where in users if token not in known]
    if unknown:
        more = f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else ""
        raise InferenceError("; ".join(unknown[:5]) + more + f" -- not in dataset {dataset.dataset_name}")
    tokens = list(dict.fromkeys(token for token, _ in users))
    if len(tokens) < len(users):
        logger.warning("%d users listed more than once are served once", len(users) - len(tokens))
    return np.array([known[token] for token in tokens], dtype=np.int64)


# ---------------------------------------------------------------------------- scoring ---
def query_interaction(model, dataset, users: np.ndarray) -> Interaction:
    """What ``full_sort_predict`` reads for each user *now*: a sequential model gets the last
    ``MAX_ITEM_LIST_LENGTH`` items of the whole history (the next item is the recommendation);
    a general model the user id."""
    uid = torch.from_numpy(users)
    if model.type != ModelType.SEQUENTIAL:
        return Interaction({dataset.uid_field: uid})
    sequences = dataset.user_sequences
    length = model.max_seq_length
    item_seq = np.zeros((len(users), length), dtype=np.int64)
    lengths = np.zeros(len(users), dtype=np.int64)
    for row, user in enumerate(users):
        items = sequences.items[sequences.indptr[user]:sequences.indptr[user + 1]][-length:]
        item_seq[row, :len(items)] = items
        lengths[row] = len(items)
    if (lengths == 0).any():
        raise InferenceError("users without interactions cannot be scored by a sequential model")
    return Interaction({dataset.uid_field: uid, model.ITEM_SEQ: torch.from_numpy(item_seq),
                        model.ITEM_SEQ_LEN: torch.from_numpy(lengths)})


def score_users(model, dataset, users: np.ndarray, batch_size: int = 2048,
                new_vectors: torch.Tensor | None = None, candidates: str = "all",
                new_tokens: Sequence[str] | None = None
                ) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """``(users, scores [B, n_items (+ new)])`` per batch, known items and padding at -inf.

    ``new_vectors`` (cold-start items, ``[N, D]``, tokens ``new_tokens``) are scored with the
    same query vectors and appended after the catalogue; ``candidates='new'`` ranks only them.
    A non-finite score is an error naming the item.
    """
    if batch_size < 1:
        raise InputError(f"batch size must be at least 1, got {batch_size}")
    if candidates not in CANDIDATES:
        raise InferenceError(f"candidates must be one of {CANDIDATES}, got {candidates!r}")
    if candidates == "new" and new_vectors is None:
        raise InferenceError("candidates 'new' needs new items (--new-items DIR)")
    device = next(model.parameters()).device
    empty = torch.zeros(0, dtype=torch.long, device=device)
    model.eval()
    with torch.no_grad(), item_table_once(model):
        for start in range(0, len(users), batch_size):
            batch = users[start:start + batch_size]
            interaction = query_interaction(model, dataset, batch).to(device)
            scores = model.full_sort_predict(interaction).view(len(batch), -1)
            require_finite(scores[:, 1:], dataset.field2id_token[dataset.iid_field][1:],
                           dataset.field2id_token[dataset.uid_field][batch])
            rows, items = dataset.user_sequences.history_mask_indices(batch, holdout=0)
            mask_scores(scores, rows.to(device), items.to(device), empty, empty)
            if new_vectors is not None:
                if candidates == "new":
                    scores.fill_(-torch.inf)
                query = query_vectors(model, interaction)
                new_scores = query @ new_vectors.to(device).T
                require_finite(new_scores, new_tokens or range(len(new_vectors)),
                               dataset.field2id_token[dataset.uid_field][batch])
                scores = torch.cat([scores, new_scores], dim=1)
            yield batch, scores


def require_finite(scores: torch.Tensor, item_tokens, user_tokens) -> None:
    """Served scores ``[users, items]`` must be finite: a NaN would rank first. The error names
    the item (a non-finite item vector) or, when every item of a user is hit, the user."""
    if torch.isfinite(scores.sum()):  # one pass clears the usual case (see evaluation.check_finite)
        return
    bad = ~torch.isfinite(scores)
    if not bad.any():
        return
    bad_items = torch.nonzero(bad.all(dim=0), as_tuple=True)[0].tolist()
    bad_users = torch.nonzero(bad.all(dim=1), as_tuple=True)[0].tolist()
    if bad_items and not bad_users:
        what = f"item {str(item_tokens[bad_items[0]])!r} ({len(bad_items)} items in all)"
    elif bad_users and len(bad_users) < len(user_tokens):
        what = f"every item for user {str(user_tokens[bad_users[0]])!r}"
    else:
        row, column = (int(i[0]) for i in torch.nonzero(bad, as_tuple=True))
        what = f"item {str(item_tokens[column])!r} for user {str(user_tokens[row])!r}"
    raise NonFiniteError(f"the model scores {what} as {scores[bad][0].item()}: the checkpoint "
                         "holds non-finite weights; a NaN score cannot be ranked")


def top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k per row; rows with fewer than k unmasked candidates keep only those (-inf dropped
    by the caller)."""
    return torch.topk(scores, min(k, scores.shape[1]), dim=1)


def recommend(model, dataset, users: np.ndarray, k: int = 10, batch_size: int = 2048,
              new_items: "NewItems | None" = None, candidates: str = "all"
              ) -> list[tuple]:
    """``(user token, rank 1..k, item token, score)`` rows, best first per user; with
    ``new_items`` each row ends with the item's source (:data:`SOURCES`)."""
    if k < 1:
        raise InferenceError(f"topk must be at least 1, got {k}")
    item_tokens = list(dataset.field2id_token[dataset.iid_field])
    sources = None
    if new_items is not None:
        sources = ["catalogue"] * len(item_tokens) + new_items.sources()
        item_tokens += new_items.tokens
    user_tokens = dataset.field2id_token[dataset.uid_field]
    rows = []
    vectors = None if new_items is None else new_items.vectors
    new_tokens = None if new_items is None else new_items.tokens
    for batch, scores in score_users(model, dataset, users, batch_size, vectors, candidates,
                                     new_tokens):
        values, indices = top_k(scores, k)
        for user, user_values, user_items in zip(batch, values.tolist(), indices.tolist()):
            ranked = [(item, value) for item, value in zip(user_items, user_values)
                      if value != -np.inf]
            rows += [(str(user_tokens[user]), rank, str(item_tokens[item]), float(value))
                     + ((sources[item],) if sources else ())
                     for rank, (item, value) in enumerate(ranked, start=1)]
    return rows


def write_recommendations(rows, out: str | os.PathLike | None, sources: bool = False) -> None:
    """TSV ``user_id rank item_id score`` (and ``source`` with ``sources``) to ``out``
    (atomically) or to stdout."""
    text = io.StringIO()
    writer = csv.writer(text, delimiter="\t", lineterminator="\n")
    writer.writerow(TSV_HEADER + ((SOURCE_COLUMN,) if sources else ()))
    writer.writerows((user, rank, item, f"{score:.6g}", *rest)
                     for user, rank, item, score, *rest in rows)
    if out is None:
        print(text.getvalue(), end="")
        return
    with atomic_open(out, "w", encoding="utf-8") as handle:
        handle.write(text.getvalue())


# ------------------------------------------------------------------------ item vectors ---
def item_vectors(model) -> torch.Tensor:
    """``[n_items, D]`` item vectors (row 0: padding), each item once: those the model scores
    queries against (``model.item_vectors()``), else its item tower's."""
    tower = getattr(model, "item_tower", None)
    if not hasattr(model, "item_vectors") and tower is None:
        raise InferenceError(f"{type(model).__name__} has no item tower: only recbole-microlens "
                             "models expose their item vectors")
    model.eval()
    with torch.no_grad(), item_table_once(model):
        vectors = model.item_vectors() if hasattr(model, "item_vectors") else tower.all_items()
        return vectors.detach().float().cpu()


def _defined_by(cls: type, name: str) -> type | None:
    return next((klass for klass in cls.__mro__ if name in vars(klass)), None)


def query_vectors(model, interaction: Interaction) -> torch.Tensor:
    """``[B, D]`` query vectors whose dot products with :func:`item_vectors` are the model's
    ``full_sort_predict`` scores. Refused when the class that defines ``full_sort_predict``
    does not also define (or inherit, beneath it) ``query_vectors``: its scores are then not
    such dot products (a pairwise scorer like DeepFM, or a subclass that rescales scores)."""
    scorer = _defined_by(type(model), "full_sort_predict")
    query = _defined_by(type(model), "query_vectors")
    if query is None or scorer is None or not issubclass(query, scorer):
        raise InferenceError(
            f"{type(model).__name__} has no user vectors: its scores ({scorer.__name__ if scorer else '?'}"
            ".full_sort_predict) are not the dot product of a query vector with the item vectors "
            "(a model that overrides full_sort_predict defines query_vectors beside it)")
    return model.query_vectors(interaction)


def user_vectors(model, dataset, users: np.ndarray, batch_size: int = 2048) -> torch.Tensor:
    """``[len(users), D]``: each user's query now (a sequential model's state after the user's
    whole history, as ``recommend`` scores it), in batches of users."""
    device = next(model.parameters()).device
    model.eval()
    rows = []
    with torch.no_grad(), item_table_once(model):
        for start in range(0, len(users), batch_size):
            interaction = query_interaction(model, dataset, users[start:start + batch_size])
            rows.append(query_vectors(model, interaction.to(device)).detach().float().cpu())
    return torch.cat(rows) if rows else torch.zeros(0, 0)


def _write_vectors(out: Path, vectors: np.ndarray, tokens: list[str], meta: dict) -> dict:
    """``out`` (.npy float32) and ``out`` with .json: the row tokens in order and ``meta``."""
    bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    if bad.size:
        value = next(v for v in vectors[bad[0]] if not np.isfinite(v))
        row = meta.get("rows", "items").removesuffix("s")
        raise NonFiniteError(f"the vector of {row} {tokens[bad[0]]!r} holds {value} ({bad.size} "
                             f"{row}s in all): the checkpoint holds non-finite weights")
    with atomic_open(out, "wb") as handle:
        np.save(handle, vectors.astype(np.float32))
    meta = {**meta, "shape": list(vectors.shape), "dtype": "float32", "row_tokens": tokens}
    write_json_atomic(out.with_suffix(".json"), meta)
    return meta


def export_embeddings(model, dataset, out: str | os.PathLike, extra: dict | None = None,
                      users_out: str | os.PathLike | None = None, batch_size: int = 2048) -> dict:
    """``out``: ``[n_items - 1, D]`` item vectors (padding row dropped); with ``users_out``,
    also every user's query vector ``[n_users - 1, D]``, so that a user's vector dotted with the
    item vectors gives the scores ``recommend`` ranks by (before masking the user's history).
    Each .npy gets a .json beside it: its row tokens, the model and ``extra``."""
    common = {"model": type(model).__name__, "dataset": dataset.dataset_name, **(extra or {})}
    users = None
    if users_out is not None:  # refused before anything is written when the model has none
        ids = np.arange(1, dataset.user_num, dtype=np.int64)
        users = user_vectors(model, dataset, ids, batch_size).numpy()
    item_tokens = [str(token) for token in dataset.field2id_token[dataset.iid_field][1:]]
    meta = _write_vectors(Path(out), item_vectors(model)[1:].numpy(), item_tokens,
                          {**common, "rows": "items"})
    if users is not None:
        user_tokens = [str(token) for token in dataset.field2id_token[dataset.uid_field][1:]]
        meta["users"] = _write_vectors(Path(users_out), users, user_tokens, {
            **common, "rows": "users", "query": "the user's vector after their whole history; "
            "score = dot product with the item vectors"})
    return meta


# -------------------------------------------------------------------------- cold start ---
@dataclass
class NewItems:
    """Items that are not in the dataset, embedded by the trained content encoder."""

    tokens: list[str]
    vectors: torch.Tensor  # [N, D]
    fallback: list[bool] = field(default_factory=list)  # media unreadable: a fallback input

    def sources(self) -> list[str]:
        """Each new item's :data:`SOURCES` entry, in token order."""
        flags = self.fallback or [False] * len(self.tokens)
        return ["new-fallback" if flag else "new" for flag in flags]


#: the trained store's kind -> the modality new items must bring
STORE_MODALITY = {"frames": "video", "covers": "image", "titles": "text"}


def new_item_tokens(folder: Path, modality: str) -> list[str]:
    """Item tokens of a new-items folder: ``videos/*.mp4``, ``covers/*.jpg`` or a titles file."""
    if not folder.is_dir():
        raise InferenceError(f"{folder}: no such new-items folder")
    if modality == "text":
        titles = _titles_file(folder)
        from recbole_microlens.data.stores.titles import read_titles

        return list(read_titles(titles))
    names = {"video": ("videos", "*.mp4"), "image": ("covers", "*.jpg")}[modality]
    sub = folder / names[0]
    if not sub.is_dir():
        raise InferenceError(f"{folder}: a {modality} model needs new items in {sub}/")
    return sorted(path.stem for path in sub.glob(names[1]))


def _titles_file(folder: Path) -> Path:
    for name in TITLE_FILES:
        if (folder / name).is_file():
            return folder / name
    raise InferenceError(f"{folder}: a text model needs new items' titles in "
                         f"{folder / TITLE_FILES[0]} (item_id,title)")


def new_item_inputs(tower, folder: Path, tokens: list[str]):
    """``ItemInputs`` for the new tokens, decoded into ``folder/media`` exactly as the training
    store was (same frame spec or size, same tokenizer and length)."""
    from recbole_microlens.data.stores.item_inputs import ItemInputs
    from recbole_microlens.data.stores.media import PAD_TOKEN, MediaStore, build_cover_store, build_frame_store
    from recbole_microlens.data.stores.titles import TitleStore, build_title_store, load_tokenizer

    trained = tower.inputs.store
    kind = trained.meta["kind"]
    media_root = folder / "media"
    if kind == "titles":
        tokenizer = load_tokenizer(trained.folder / "tokenizer")
        store = TitleStore.open(build_title_store(_titles_file(folder), tokens, media_root,
                                                  tokenizer, max_length=trained.meta["max_length"]))
    elif kind == "frames":
        covers = folder / "covers"
        report = build_frame_store(folder / "videos", tokens, media_root, trained.spec,
                                   covers_dir=covers if covers.is_dir() else None, progress=False)
        store = MediaStore.open(report.folder)
    else:
        report = build_cover_store(folder / "covers", tokens, media_root, trained.spec.size,
                                   progress=False)
        store = MediaStore.open(report.folder)
    return ItemInputs(store, [PAD_TOKEN, *tokens], tower.inputs.convert)


def embed_new_items(model, dataset, folder: str | os.PathLike) -> NewItems:
    """Embed the items of ``folder`` that are not in the dataset with the trained encoder."""
    tower = content_tower(model)
    if tower is None or not hasattr(model, "forward") or model.type != ModelType.SEQUENTIAL:
        raise InferenceError(f"{type(model).__name__} has no content encoder: only content "
                             "towers (item_tower: encoder, e.g. SASRecV) can embed new items")
    folder = Path(folder)
    tokens = new_item_tokens(folder, STORE_MODALITY[tower.inputs.store.meta["kind"]])
    known = set(dataset.field2token_id[dataset.iid_field])
    skipped = [token for token in tokens if token in known]
    tokens = [token for token in tokens if token not in known]
    if skipped:
        logger.info("%d items of %s are in the dataset already; scored as catalogue items",
                    len(skipped), folder)
    if not tokens:
        raise InferenceError(f"{folder}: no new items (every item there is in the dataset)")
    ids = torch.arange(1, len(tokens) + 1, device=tower.device)
    inputs = new_item_inputs(tower, folder, tokens)
    fallback = inputs.fallback_items()[1:].tolist()  # ids 1..N: the tokens in order
    if any(fallback):
        broken = [token for token, flag in zip(tokens, fallback) if flag]
        logger.warning("%d new items of %s have no readable media (%s%s): ranked from a fallback "
                       "input and marked %r in the TSV's source column", len(broken), folder,
                       ", ".join(broken[:5]), " ..." if len(broken) > 5 else "", "new-fallback")
    model.eval()
    with torch.no_grad(), tower.reading(inputs):
        vectors = tower.embed(ids)
    return NewItems(tokens, vectors, fallback)
