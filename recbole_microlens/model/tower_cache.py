"""What content towers cost, and the exact ways the trainer avoids paying it.

* ``unique_items_table``: encode each distinct item of a step once (padding never), and let
  every lookup in the step read that table (the reference code encodes every occurrence, ~56x
  duplication per epoch, and every padding slot);
* ``all_items_table``: evaluation encodes every item once, then ranks with one matrix product;
* ``TrunkCache``: with the lower blocks frozen (``finetune: top``), their output per item is
  computed once, stored memory-mapped (fp16 by default), and training runs only the top blocks;
* ``TokenTrunkCache``: the same for text encoders, stored without padding (a flat token array
  plus per-item offsets), read by memory-mapped row slices and padded per chunk only to the
  longest title it holds (``length_grouping``).

Each is switchable (``unique_item_encoding``, ``trunk_cache``) so it can be compared with the
plain path, and each is exact: tests compare losses and gradients with the plain path.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from recbole_microlens.data.stores.artefact import build_once
from recbole_microlens.model.layers import ItemTable

logger = logging.getLogger(__name__)


def table_for(tower, ids: torch.Tensor) -> ItemTable:
    """Vectors of the sorted distinct ``ids``; id 0 gets zeros without being encoded."""
    ids = torch.unique(ids.reshape(-1))
    real = ids[ids > 0]
    vectors = tower.embed(real)
    if len(real) < len(ids):
        vectors = torch.cat([vectors.new_zeros((1, vectors.size(1))), vectors])
    return ItemTable(ids, vectors)


def unique_items_table(tower, interaction, item_fields) -> ItemTable:
    """The table of every item id a training step will look up."""
    present = [interaction[field].reshape(-1) for field in item_fields if field in interaction]
    return table_for(tower, torch.cat(present))


def all_items_table(tower) -> ItemTable:
    return table_for(tower, torch.arange(tower.n_items, device=tower.device))


def item_id_fields(config) -> list[str]:
    """Interaction fields holding item ids: target, input window, sampled negatives."""
    iid = config["ITEM_ID_FIELD"]
    return [iid, iid + config["LIST_SUFFIX"], config["NEG_PREFIX"] + iid]


# ------------------------------------------------------------------------------ trunk cache ---
# The live trunk's memory layout is restored on lookup: CPU convolutions (X3D's depthwise ones
# above all) are many times slower on a tensor in another layout than the one they produced.
LAYOUTS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last,
           "channels_last_3d": torch.channels_last_3d}


def _layout(tensor: torch.Tensor) -> str:
    if tensor.is_contiguous():
        return "contiguous"
    if tensor.dim() == 5 and tensor.is_contiguous(memory_format=torch.channels_last_3d):
        return "channels_last_3d"
    if tensor.dim() == 4 and tensor.is_contiguous(memory_format=torch.channels_last):
        return "channels_last"
    return "contiguous"


def _flatten(value):
    """A block output as a list of tensors plus how to rebuild it."""
    if torch.is_tensor(value):
        return [value], None
    return list(value), type(value)


def _rebuild(parts, kind):
    if kind is None:
        return parts[0]
    return kind(*parts) if hasattr(kind, "_fields") else kind(parts)


class TrunkCache:
    """Output of ``encoder.blocks[:start]`` for every item row, memory-mapped."""

    def __init__(self, folder: Path, start: int):
        self.folder, self.start = Path(folder), start
        meta = json.loads((self.folder / "meta.json").read_text())
        self.parts = [np.load(self.folder / f"part{i}.npy", mmap_mode="r") for i in range(meta["parts"])]
        self.float_parts = meta["float_parts"]
        self.layouts = meta["layouts"]
        self.kind = None  # rebuilt structure, set by build/open from the live encoder
        self.items = meta["items"]

    def lookup(self, ids: torch.Tensor, device, trim: bool = False) -> object:
        """Trunk output of ``ids`` (``trim`` is for token caches; these rows have no padding)."""
        rows = ids.cpu().numpy()
        parts = []
        for array, is_float, layout in zip(self.parts, self.float_parts, self.layouts):
            tensor = torch.from_numpy(np.ascontiguousarray(array[rows])).to(device)
            tensor = tensor.float() if is_float else tensor
            parts.append(tensor.contiguous(memory_format=LAYOUTS[layout]))
        return _rebuild(parts, self.kind)

    @property
    def bytes_per_item(self) -> int:
        return sum(int(np.prod(a.shape[1:])) * a.dtype.itemsize for a in self.parts)

    @classmethod
    def open_or_build(cls, tower, root: Path, *, dtype: str = "float16", batch_size: int = 64,
                      progress: bool = True) -> "TrunkCache":
        """Reuse the cache for this trunk (same weights, inputs and dtype) or compute it."""
        encoder, start = tower.encoder, tower.encoder.trainable_block_start
        folder = Path(root) / f"{encoder.name}-k{start}-{dtype}-{_trunk_key(tower, start, dtype)}"
        # one builder; a run sharing checkpoint_dir waits, then reuses
        build_once(folder, lambda partial: _build(tower, partial, start, np.dtype(dtype),
                                                  batch_size, progress), describe="trunk cache")
        cache = cls(folder, start)
        _, cache.kind = _flatten(_trunk_output(tower, torch.tensor([1], device=tower.device), start))
        return cache


def _trunk_key(tower, start: int, dtype: str, layout: str = "v2") -> str:
    """Hash of the trunk's weights and buffers and of the input store: reuse only when exact."""
    digest = hashlib.sha256(f"{layout}:{start}:{dtype}:{getattr(tower.inputs.store, 'folder', '')}".encode())
    for name, tensor in tower.encoder.blocks[:start].state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


@torch.no_grad()
def _trunk_output(tower, ids: torch.Tensor, start: int):
    return tower.encoder.run_blocks(tower.inputs(ids, tower.device), 0, start)


@torch.no_grad()
def _build(tower, tmp: Path, start: int, dtype: np.dtype, batch_size: int, progress: bool) -> dict:
    """Trunk output of every item into ``tmp``; returns the cache's meta.json."""
    n_items, arrays, layouts = tower.n_items, None, None
    batches = torch.arange(n_items, device=tower.device).split(batch_size)
    for ids in tqdm(batches, desc=f"Trunk cache ({tower.encoder.name} blocks[:{start}])",
                    disable=not progress, ncols=100):
        parts, _ = _flatten(_trunk_output(tower, ids, start))
        if arrays is None:
            arrays = [_open_part(tmp / f"part{i}.npy", p, n_items, dtype) for i, p in enumerate(parts)]
            layouts = [_layout(part) for part in parts]
        for array, part in zip(arrays, parts):
            array[ids.cpu().numpy()] = part.cpu().numpy().astype(array.dtype)
    for array in arrays:
        array.flush()
    float_parts = [bool(np.issubdtype(a.dtype, np.floating)) for a in arrays]
    logger.info("trunk cache of %d items computed", n_items)
    return {"parts": len(arrays), "float_parts": float_parts, "layouts": layouts,
            "items": n_items, "start_block": start, "encoder": tower.encoder.name,
            "dtype": str(dtype)}


def _open_part(path: Path, part: torch.Tensor, n_items: int, dtype: np.dtype):
    stored = dtype if part.is_floating_point() else part.cpu().numpy().dtype
    return np.lib.format.open_memmap(path, mode="w+", dtype=stored, shape=(n_items,) + tuple(part.shape[1:]))


# ------------------------------------------------------------------------ token trunk cache ---
class TokenTrunkCache:
    """Output ``(hidden, mask)`` of a text encoder's ``blocks[:start]``, without the padding.

    ``hidden.npy`` is ``[total real tokens, D]`` (item after item), ``offsets.npy`` the first
    token row of each item (``[n_items + 1]``). Titles average 28 of 64 tokens on MicroLens-50k,
    so this is ~2.3x smaller than the padded layout, and a lookup reads only the requested rows.
    """

    def __init__(self, folder: Path, start: int):
        self.folder, self.start = Path(folder), start
        meta = json.loads((self.folder / "meta.json").read_text())
        self.hidden = np.load(self.folder / "hidden.npy", mmap_mode="r")
        self.offsets = np.load(self.folder / "offsets.npy")
        self.lengths = np.diff(self.offsets)
        self.width = meta["width"]  # the store's padded length: what ``trim=False`` returns
        self.items = meta["items"]

    def lookup(self, ids: torch.Tensor, device, trim: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """``(hidden [N, W, D] float32, mask [N, W])``; W is the longest of ``ids`` when ``trim``,
        else the store's padded length (the padding positions are zeros, which masking ignores)."""
        rows = ids.cpu().numpy()
        lengths = self.lengths[rows]
        width = int(lengths.max()) if trim else self.width
        tokens = torch.from_numpy(self.hidden[token_rows(self.offsets, rows)]).to(device).float()
        mask = torch.arange(width, device=device) < torch.from_numpy(lengths).to(device)[:, None]
        hidden = tokens.new_zeros((len(rows), width, tokens.size(1)))
        hidden[mask] = tokens
        return hidden, mask.long()

    @property
    def bytes_per_item(self) -> float:
        return self.hidden.shape[0] * self.hidden.shape[1] * self.hidden.dtype.itemsize / self.items

    @classmethod
    def open_or_build(cls, tower, root: Path, *, dtype: str = "float16", batch_size: int = 64,
                      progress: bool = True) -> "TokenTrunkCache":
        encoder, start = tower.encoder, tower.encoder.trainable_block_start
        key = _trunk_key(tower, start, dtype, layout="tokens-v1")
        folder = Path(root) / f"{encoder.name}-k{start}-{dtype}-tokens-{key}"
        # one builder; a run sharing checkpoint_dir waits, then reuses
        build_once(folder, lambda partial: _build_tokens(tower, partial, start, np.dtype(dtype),
                                                         batch_size, progress),
                   describe="token trunk cache")
        return cls(folder, start)


def token_rows(offsets: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Rows of the flat token array holding ``items``' tokens, item after item."""
    starts, lengths = offsets[items], offsets[items + 1] - offsets[items]
    before = np.cumsum(lengths) - lengths  # position of each item's first token in the output
    return np.repeat(starts - before, lengths) + np.arange(int(lengths.sum()))


@torch.no_grad()
def _build_tokens(tower, tmp: Path, start: int, dtype: np.dtype, batch_size: int,
                  progress: bool) -> dict:
    """Trunk output of every item into ``tmp``, computed in length-sorted batches cut to their
    longest title; returns the cache's meta.json."""
    from recbole_microlens.encoders.text import trim_padding

    all_ids = torch.arange(tower.n_items)
    lengths = tower.inputs.lengths(all_ids).numpy()
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    order = torch.from_numpy(np.argsort(lengths, kind="stable"))
    hidden = None
    for ids in tqdm(order.split(batch_size), desc=f"Token trunk cache ({tower.encoder.name} "
                    f"blocks[:{start}])", disable=not progress, ncols=100):
        x = trim_padding(tower.inputs(ids.to(tower.device), tower.device))
        out, mask = tower.encoder.run_blocks(x, 0, start)
        mask = mask.bool()
        if not torch.equal(mask.sum(1).cpu(), torch.from_numpy(lengths[ids.numpy()])):
            raise RuntimeError(f"{tower.encoder.name}: the trunk changed the attention mask")
        if hidden is None:
            hidden = np.lib.format.open_memmap(tmp / "hidden.npy", mode="w+", dtype=dtype,
                                               shape=(int(offsets[-1]), out.size(-1)))
        hidden[token_rows(offsets, ids.numpy())] = out[mask].cpu().numpy().astype(dtype)
    hidden.flush()
    np.save(tmp / "offsets.npy", offsets)
    width = tower.inputs(all_ids[:1], tower.device)["attention_mask"].shape[1]  # padded length
    logger.info("token trunk cache of %d items (%d tokens) computed", tower.n_items,
                int(offsets[-1]))
    return {"layout": "tokens", "items": tower.n_items, "width": width,
            "tokens": int(offsets[-1]), "start_block": start, "encoder": tower.encoder.name,
            "dtype": str(dtype)}


def open_trunk_cache(tower, root: Path, **options):
    """The unpadded token cache when a text encoder over a token store trains its top blocks;
    else the per-item one (video, or a frozen encoder, whose cached output is the pooled vector,
    not tokens)."""
    encoder = tower.encoder
    token_store = encoder.token_inputs and tower.inputs.lengths(torch.tensor([0])) is not None
    tokens_out = token_store and encoder.trainable_block_start < encoder.num_blocks
    return (TokenTrunkCache if tokens_out else TrunkCache).open_or_build(tower, root, **options)


def run_trunk_cache_root(config) -> Path:
    """Where a run's trunk caches live: beside its checkpoints, one folder per dataset."""
    return Path(config["checkpoint_dir"]) / "trunk_cache" / config["dataset"]


def attach_run_trunk_cache(tower, config, progress: bool = False) -> str:
    """Install the trunk cache the run's config asks for (``trunk_cache``, ``finetune: top``),
    built once per trunk and reused: training, evaluation and a reloaded checkpoint read the same
    (fp16 by default) trunk output, so a reload scores exactly as the run was evaluated. Returns
    why no cache was installed ("" when one was)."""
    if tower is None or not config["trunk_cache"]:
        return "trunk_cache is off"
    if tower.encoder.trainable_block_start == 0:
        return "trunk_cache ignored: the whole encoder trains (finetune: full)"
    if not tower.encoder.trunk_is_a_function_of_the_item:
        return ("trunk_cache ignored: frozen_trunk_mode: train normalises the trunk with batch "
                "statistics, so its output is not per item")
    tower.use_trunk_cache(open_trunk_cache(
        tower, run_trunk_cache_root(config), dtype=config["trunk_cache_dtype"],
        batch_size=config["encode_chunk_size"], progress=progress))
    return ""
