"""ItemTower: the one seam between a recommender and how items become vectors.

A model asks the tower to embed item ids (``tower(ids)``), or every item (``all_items()``);
whether that is an ID table, a frozen feature matrix or an encoder over frames, covers or titles
is configuration, not model code. What a tower costs is the trainer's business: it may install a
table of precomputed vectors (``use_table``) that answers instead of the tower's own ``embed``.
The tower owns its runtime state; the trainer and serving change it only through its methods
(``for_evaluation``, ``configure_runtime``, ``use_trunk_cache``, ``reading``).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from recbole.utils import FeatureType
from torch import nn
from torch.utils.checkpoint import checkpoint

from recbole_microlens.encoders.text import trim_padding
from recbole_microlens.model.options import choose
from recbole_microlens.errors import ConfigError, InputError


class ItemTable:
    """Vectors of a sorted set of item ids; ``lookup`` maps any id tensor into it."""

    def __init__(self, ids: torch.Tensor, vectors: torch.Tensor):
        self.ids = ids
        self.vectors = vectors

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.searchsorted(self.ids, ids.reshape(-1))
        return self.vectors[positions].view(*ids.shape, -1)


class ItemTower(nn.Module):
    """Base class: ``forward(ids) -> [..., dim]``, id 0 (padding) mapped to zeros."""

    #: whether embedding an item runs a content encoder (worth de-duplicating and caching)
    encodes_content = False

    def __init__(self, n_items: int, dim: int):
        super().__init__()
        self.n_items = n_items
        self.dim = dim
        self.table: ItemTable | None = None

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.table is not None:
            return self.table.lookup(ids)
        return self.embed(ids)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def all_items(self) -> torch.Tensor:
        """Vectors of every item id 0..n_items-1, [n_items, dim]."""
        if self.table is not None and len(self.table.ids) == self.n_items:
            return self.table.vectors
        return self.embed(torch.arange(self.n_items, device=self.device))

    @contextlib.contextmanager
    def use_table(self, table: ItemTable):
        previous, self.table = self.table, table
        try:
            yield
        finally:
            self.table = previous

    def for_evaluation(self):
        """Context: every item is embedded once, and all lookups read that table."""
        from recbole_microlens.model.tower_cache import all_items_table

        return self.use_table(all_items_table(self))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


class IDItemTower(ItemTower):
    """A learned embedding table (IDRec)."""

    def __init__(self, n_items: int, dim: int):
        super().__init__(n_items, dim)
        self.embedding = nn.Embedding(n_items, dim, padding_idx=0)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        vectors = self.embedding(ids)
        return vectors * (ids != 0).unsqueeze(-1).to(vectors.dtype)  # padding -> zeros

    def all_items(self) -> torch.Tensor:
        """The table with its padding row zero, in training as in evaluation (weight init
        overwrites ``padding_idx``'s row, so it is masked, not trusted)."""
        if self.table is not None:
            return super().all_items()
        return F.pad(self.embedding.weight[1:], (0, 0, 1, 0))


@dataclass(slots=True)  # a misspelt switch is an error, not a new attribute
class TowerRuntime:
    """How the trainer runs an encoder tower (read as ``tower.runtime``, changed only through
    the tower's ``configure_runtime`` and ``use_trunk_cache``). ``trunk_cache`` replaces the frozen trunk ``blocks[:k]`` by its cached per-item
    output; ``checkpoint_blocks`` recomputes activations in backward (training only);
    ``length_grouping`` (token inputs) sorts the items by length before chunking and cuts each
    chunk's padding to its longest title."""

    trunk_cache: Any = None
    checkpoint_blocks: bool = False
    length_grouping: bool = False


def runtime_options(config) -> dict:
    """A run's :class:`TowerRuntime` switches, from its config: one reading for the trainer and
    for a reloaded checkpoint, so both run the encoder alike."""
    return {"checkpoint_blocks": bool(config["gradient_checkpointing"]),
            "length_grouping": config["length_grouping"] is not False}


class EncoderItemTower(ItemTower):
    """An item encoder (video, image or text) trained end to end, projected to ``dim`` (VideoRec).

    ``embed`` is the plain path: every id it is given is encoded (in chunks), as the reference
    code does, unless the trainer's :class:`TowerRuntime` says otherwise.
    """

    encodes_content = True

    #: what follows the projection (``item_projection_act``; the reference code uses GELU)
    ACTIVATIONS = {"none": nn.Identity, "gelu": nn.GELU}

    def __init__(self, n_items: int, dim: int, encoder, inputs, chunk_size: int = 256,
                 activation: str = "none"):
        super().__init__(n_items, dim)
        self.encoder = encoder
        self.projection = nn.Linear(encoder.out_dim, dim)
        self.activation = self.ACTIVATIONS[activation]()
        self.inputs = inputs
        self.chunk_size = chunk_size
        self._runtime = TowerRuntime()
        self.items_encoded = 0  # encoder passes, one per item vector computed

    @property
    def runtime(self) -> TowerRuntime:
        return self._runtime

    def configure_runtime(self, *, checkpoint_blocks: bool = False,
                          length_grouping: bool = False) -> None:
        """How training runs the encoder (:class:`TowerRuntime`); no trunk cache until
        :meth:`use_trunk_cache` installs one."""
        self._runtime = TowerRuntime(checkpoint_blocks=checkpoint_blocks,
                                     length_grouping=length_grouping)

    def use_trunk_cache(self, cache) -> None:
        """Read the frozen trunk's output from ``cache`` (a ``tower_cache`` trunk cache built
        for this tower), or compute it again (None)."""
        self._runtime.trunk_cache = cache

    @contextlib.contextmanager
    def reading(self, inputs):
        """Context: the tower encodes from ``inputs`` (e.g. items outside the catalogue) and
        without the trunk cache, which holds catalogue items only."""
        saved = self.inputs, self._runtime.trunk_cache
        self.inputs, self._runtime.trunk_cache = inputs, None
        try:
            yield
        finally:
            self.inputs, self._runtime.trunk_cache = saved

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        flat = ids.reshape(-1)
        order = self._length_order(flat)
        if order is not None:
            flat = flat[order]
        # balanced chunks: no 1-item remainder (BatchNorm cannot train on a single item)
        parts = flat.tensor_split(max(1, -(-len(flat) // self.chunk_size)))
        chunks = [self.encode(part) for part in parts if len(part)]
        vectors = torch.cat(chunks) if chunks else flat.new_zeros((0, self.dim), dtype=torch.float)
        vectors = vectors * (flat != 0).unsqueeze(1).to(vectors.dtype)  # padding -> zeros
        if order is not None:
            vectors = vectors[torch.argsort(order)]
        return vectors.view(*ids.shape, self.dim)

    def _length_order(self, flat: torch.Tensor) -> torch.Tensor | None:
        """Items sorted by token count (so each chunk pads to a similar length), or None."""
        if not (self.runtime.length_grouping and self.encoder.token_inputs) or len(flat) <= 1:
            return None
        lengths = self.inputs.lengths(flat)
        return None if lengths is None else torch.argsort(lengths, stable=True).to(flat.device)

    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        """[N] ids -> [N, dim]: the encoder (from the trunk cache when set) and the projection."""
        self.items_encoded += len(ids)
        trim = self.runtime.length_grouping and self.encoder.token_inputs
        cache = self.runtime.trunk_cache
        if cache is not None:
            start, x = cache.start, cache.lookup(ids, self.device, trim=trim)
        else:
            start, x = 0, self.inputs(ids, self.device)
            x = trim_padding(x) if trim else x
        return self.activation(self.projection(self._run(x, start)))

    def _run(self, x, start: int):
        encoder, trainable = self.encoder, self.encoder.trainable_block_start
        if start < trainable:
            with torch.no_grad():
                x = encoder.run_blocks(x, start, trainable)
            start = trainable
        if self.runtime.checkpoint_blocks and self.training:
            for index in range(start, encoder.num_blocks):
                x = checkpoint(encoder.run_blocks, x, index, index + 1, use_reentrant=False)
            return x
        return encoder.run_blocks(x, start, encoder.num_blocks)


def content_tower(model) -> EncoderItemTower | None:
    """The model's item tower when it runs a content encoder, else None."""
    tower = getattr(model, "item_tower", None)
    return tower if getattr(tower, "encodes_content", False) else None


def item_table_once(model):
    """Context: during evaluation, the model's item tower (if any) embeds every item once and
    all lookups read that table."""
    tower = getattr(model, "item_tower", None)
    return contextlib.nullcontext() if tower is None else tower.for_evaluation()


class FrozenFeatureItemTower(ItemTower):
    """A learned ID table fused with frozen, pre-extracted item features (VIDRec).

    The feature matrix is a buffer, never trained and not saved with the weights (it is read
    from ``features_file``). ``sum``: ``e_id + W f``; ``concat``: ``P [e_id ; W f]``, the
    concatenation projected back to ``dim``. Both share ``embedding`` and ``feature_projection``.
    """

    FUSIONS = ("sum", "concat")

    def __init__(self, n_items: int, dim: int, features: torch.Tensor, fusion: str = "sum"):
        super().__init__(n_items, dim)
        if fusion not in self.FUSIONS:
            raise ConfigError(f"fusion must be one of {self.FUSIONS}, got {fusion!r}")
        if features.shape[0] != n_items:
            raise InputError(f"{features.shape[0]} feature rows for {n_items} item ids")
        self.fusion = fusion
        self.embedding = nn.Embedding(n_items, dim, padding_idx=0)
        self.register_buffer("features", features.float(), persistent=False)
        self.feature_projection = nn.Linear(features.shape[1], dim)
        self.fusion_projection = nn.Linear(2 * dim, dim) if fusion == "concat" else None

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        id_part = self.embedding(ids)
        feature_part = self.feature_projection(self.features[ids])
        if self.fusion_projection is None:
            fused = id_part + feature_part
        else:
            fused = self.fusion_projection(torch.cat([id_part, feature_part], dim=-1))
        return fused * (ids != 0).unsqueeze(-1).to(fused.dtype)  # padding -> zeros


SIDE_FEATURE_TYPES = (FeatureType.TOKEN, FeatureType.TOKEN_SEQ)


class TokenBagEmbedding(nn.Module):
    """One side feature: each item's bag of tokens (``[n_items, L]``, 0 = none) -> the mean of
    their embeddings, and whether the item has any token."""

    def __init__(self, item_tokens: torch.Tensor, vocab_size: int, dim: int):
        super().__init__()
        self.register_buffer("item_tokens", item_tokens, persistent=False)  # data, not weights
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=0)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.item_tokens[ids]
        present = (tokens != 0).unsqueeze(-1)
        count = present.sum(dim=-2)
        # the padding row is masked, not trusted to be zero: weight init overwrites it
        vectors = (self.embedding(tokens) * present).sum(dim=-2) / count.clamp(min=1)
        return vectors, count > 0


class SideFeatureItemTower(ItemTower):
    """``(e_id + sum of the item's side-feature vectors) / number of parts the item has``: an
    item without tags averages its ID and popularity parts only."""

    def __init__(self, n_items: int, dim: int, features: dict[str, TokenBagEmbedding]):
        super().__init__(n_items, dim)
        self.embedding = nn.Embedding(n_items, dim, padding_idx=0)
        self.features = nn.ModuleDict(features)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        total = self.embedding(ids)
        parts = torch.ones_like(total[..., :1])
        for feature in self.features.values():
            vectors, present = feature(ids)
            total = total + vectors
            parts = parts + present.to(parts.dtype)
        return total / parts * (ids != 0).unsqueeze(-1).to(total.dtype)  # padding -> zeros


def item_token_matrix(dataset, field: str) -> torch.Tensor:
    """``[n_items, L]`` token ids of ``field`` per item id (RecBole's item_feat rows are ids)."""
    values = dataset.get_item_feature()[field]
    return values.unsqueeze(-1) if values.dim() == 1 else values


def _build_side_feature_tower(config, dataset, dim: int) -> SideFeatureItemTower:
    """ID + side features (paper Table 11: +Pop, +Tag), averaged."""
    names = config["side_features"]
    if not names:
        raise ConfigError("item_tower id+side needs side_features, e.g. [pop_bin, tags]")
    loaded = set(dataset.get_item_feature().columns)
    missing = [name for name in names if name not in loaded]
    if missing:
        raise ConfigError(
            f"side features {missing} are not loaded: the .item file lacks them or load_col.item "
            f"does not list them (load_col: {{item: [item_id, {', '.join(names)}]}})")
    wrong = [name for name in names if dataset.field2type[name] not in SIDE_FEATURE_TYPES]
    if wrong:
        raise ConfigError(f"side features {wrong} are not token or token_seq columns")
    features = {name: TokenBagEmbedding(item_token_matrix(dataset, name), dataset.num(name), dim)
                for name in names}
    return SideFeatureItemTower(dataset.item_num, dim, features)


def _build_id_tower(config, dataset, dim):
    return IDItemTower(dataset.item_num, dim)


def _build_encoder_tower(config, dataset, dim):
    from recbole_microlens.data.stores.item_inputs import ItemSource
    from recbole_microlens.encoders.factory import EncoderChoice, build_encoder_inputs, build_item_encoder
    from recbole_microlens.encoders.base import TRUNK_MODES

    choice = EncoderChoice.from_config(config)
    item_tokens = list(dataset.field2id_token[dataset.iid_field])
    inputs = build_encoder_inputs(choice, item_tokens, ItemSource.from_config(config))
    encoder = build_item_encoder(choice, inputs)
    encoder.set_finetune(config["finetune"], config["finetune_top_blocks"],
                         trunk_mode=choose(config, "frozen_trunk_mode", TRUNK_MODES))
    return EncoderItemTower(dataset.item_num, dim, encoder, inputs,
                            chunk_size=config["encode_chunk_size"],
                            activation=choose(config, "item_projection_act",
                                              tuple(EncoderItemTower.ACTIVATIONS)))


def _build_id_features_tower(config, dataset, dim):
    from recbole_microlens.data.stores.features import dataset_item_features

    return FrozenFeatureItemTower(dataset.item_num, dim, dataset_item_features(config, dataset),
                                  fusion=config["fusion"])


ITEM_TOWERS = {"id": _build_id_tower, "encoder": _build_encoder_tower,
               "id+features": _build_id_features_tower, "id+side": _build_side_feature_tower}


def build_item_tower(config, dataset, dim: int) -> ItemTower:
    """The tower named by ``item_tower`` (``id`` in sequential.yaml and DSSM.yaml)."""
    return choose(config, "item_tower", ITEM_TOWERS)(config, dataset, dim)
