"""The types every encoder module shares: what an encoder is fed (:class:`InputSpec`), what a
builder returns (``Blocks``), a registry row (:class:`EncoderSpec`) and :class:`ItemEncoder`.

A leaf: it imports no other encoder module, so the builders (``video``, ``image``, ``text``) and
the table (``registry``) both import it and never each other's way round.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from recbole_microlens.encoders.formats import CheckpointFormat
from recbole_microlens.encoders.weights import WeightsSource
from recbole_microlens.errors import ConfigError

logger = logging.getLogger(__name__)

FINETUNE_MODES = ("frozen", "top", "full")
# What the encoder returns: its penultimate features, or (where the upstream weights hold a
# classifier the reference code reads) that classifier's output, e.g. Kinetics-400 logits.
HEADS = ("features", "logits")
# How the frozen trunk runs while the top trains: ``eval`` (fixed BatchNorm statistics, no
# dropout: a function of the item alone, so it can be cached) or ``train`` (the reference code:
# frozen layers follow the model's mode, BatchNorm normalises with batch statistics).
TRUNK_MODES = ("eval", "train")
MODALITIES = ("video", "image", "text")

@dataclass(frozen=True)
class InputSpec:
    """What the data layer feeds an encoder: clip length, square frame size, per-channel
    normalisation (video and image), or the token budget (text)."""

    frames: int | None = None
    size: int | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    max_tokens: int | None = None


Blocks = tuple[list[nn.Module], int]
Builder = Callable[[InputSpec, dict], Blocks]


@dataclass(frozen=True)
class EncoderSpec:
    """A registry entry. ``builder(input, overrides) -> (blocks, out_dim)`` makes random weights;
    ``checkpoint_format`` maps the original pre-trained weights onto those blocks; ``weights``
    says where those weights are published (``encoder_checkpoint: pretrained``); ``logits_head``
    whether the builder can keep the upstream classifier (``encoder_head: logits``, builder
    override ``head``)."""

    name: str
    modality: str
    builder: Builder
    checkpoint_format: CheckpointFormat
    input: InputSpec
    description: str
    weights: WeightsSource | None = None
    logits_head: bool = False


class ItemEncoder(nn.Module):
    """A backbone as ordered ``blocks`` whose last block pools to ``[N, out_dim]``.

    Values passed between blocks are a tensor, or a tuple/list of tensors, each batch-first
    (SlowFast passes its two pathways, text blocks ``(hidden, mask)``), so a trainer can cache
    ``run_blocks(x, 0, k)`` per item; no block modifies its input.
    """

    def __init__(self, name: str, blocks: list[nn.Module], out_dim: int, spec_input: InputSpec,
                 pretrained: bool = False):
        super().__init__()
        self.name = name
        self.pretrained = pretrained  # whether weights were loaded (False: random)
        self.blocks = nn.ModuleList(blocks)
        self.out_dim = out_dim
        self.input = spec_input  # what this encoder was built for (the spec's, plus overrides)
        self._trainable_start = 0
        self._train_requested = True
        self.trunk_mode = "eval"
        # Parameters the architecture keeps fixed (e.g. sin-cos position tables) stay fixed.
        self._fixed = {name for name, p in self.named_parameters() if not p.requires_grad}

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    @property
    def token_inputs(self) -> bool:
        """Whether inputs are padded token sequences (text), which may be cut to real length."""
        return self.input.max_tokens is not None

    @property
    def trainable_block_start(self) -> int:
        """Index of the first block that trains; ``blocks[:start]`` is the frozen trunk."""
        return self._trainable_start

    def forward(self, x: Any):
        return self.run_blocks(x, 0, self.num_blocks)

    def run_blocks(self, x: Any, start: int, stop: int | None = None):
        """Runs ``blocks[start:stop]`` on ``x``, the output of ``blocks[:start]``."""
        for block in self.blocks[start:stop]:
            x = block(x)
        return x

    def set_finetune(self, mode: str, top_blocks: int = 1, trunk_mode: str = "eval") -> ItemEncoder:
        """``frozen``: nothing trains; ``top``: the last ``top_blocks`` blocks with parameters
        before the pool (and the pool) train; ``full``: everything trains. With ``trunk_mode``
        ``eval`` the trunk stays in eval mode (BatchNorm statistics, dropout) even when a parent
        calls ``.train()``; with ``train`` it follows the parent (its weights still fixed)."""
        if trunk_mode not in TRUNK_MODES:
            raise ConfigError(f"frozen_trunk_mode {trunk_mode!r} is unknown; choose one of {TRUNK_MODES}")
        self.trunk_mode = trunk_mode
        self._trainable_start = self._first_trainable_block(mode, top_blocks)
        if not self.pretrained and self._trainable_start > 0:
            logger.warning("%s: its random weights stay fixed in blocks[:%d] (finetune: %s): "
                           "those layers compute random features; load pre-trained weights "
                           "(encoder_checkpoint: pretrained) or train it all (finetune: full)",
                           self.name, self._trainable_start, mode)
        for index, block in enumerate(self.blocks):
            trains = index >= self._trainable_start
            for name, parameter in block.named_parameters(prefix=f"blocks.{index}"):
                parameter.requires_grad_(trains and name not in self._fixed)
        return self.train(self._train_requested)

    def train(self, mode: bool = True) -> ItemEncoder:
        """The requested mode for the trained blocks; the frozen trunk evaluates unless
        ``trunk_mode`` is ``train``."""
        self._train_requested = mode
        if self.trunk_mode == "train":
            return super().train(mode)
        super().train(mode and self._trainable_start < self.num_blocks)
        for block in self.blocks[: self._trainable_start]:
            block.eval()
        return self

    @property
    def trunk_is_a_function_of_the_item(self) -> bool:
        """Whether the frozen trunk's output depends on the item alone (cacheable)."""
        return self.trunk_mode == "eval"

    def _first_trainable_block(self, mode: str, top_blocks: int) -> int:
        if mode == "full":
            return 0
        if mode == "frozen":
            return self.num_blocks
        if mode != "top":
            raise ConfigError(f"fine-tuning mode {mode!r} is unknown; choose one of {FINETUNE_MODES}")
        layers = [i for i in range(self.num_blocks - 1) if self._has_learnable(i)]
        if not 0 <= top_blocks <= len(layers):
            raise ConfigError(f"top_blocks must be 0..{len(layers)} for {self.name}, got {top_blocks}")
        return layers[-top_blocks] if top_blocks else self.num_blocks - 1  # 0: the head alone

    def _has_learnable(self, index: int) -> bool:
        names = (name for name, _ in self.blocks[index].named_parameters(prefix=f"blocks.{index}"))
        return any(name not in self._fixed for name in names)


def split_overrides(spec_input: InputSpec, overrides: dict | None) -> tuple[InputSpec, dict]:
    """``overrides`` (``encoder_overrides``) -> (the input the encoder is built for, the keys left
    for its builder, e.g. ``vocab_size``): the one place that tells the two kinds apart."""
    input_fields = {field.name for field in dataclasses.fields(InputSpec)}
    overrides = dict(overrides or {})
    input_overrides = {key: overrides.pop(key) for key in list(overrides) if key in input_fields}
    return dataclasses.replace(spec_input, **input_overrides), overrides
