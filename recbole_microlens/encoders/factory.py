"""The one factory of item encoders over item inputs, for trained towers and frozen features alike.

An encoder tower (``model/layers.py``) and ``extract-features`` (``features.py``) both need the
same things built by the same rules: the encoder's weights (resolved once: ``encoders.weights``),
the item inputs (the data layer's store, whose input spec and tokenizer must match the encoder)
and the encoder they feed. Building them here keeps one unknown-encoder check, one weights rule,
one split of ``encoder_overrides`` into input and builder keys, one missing-content check and one
tokenizer rule (:func:`~recbole_microlens.data.stores.item_inputs.resolve_tokenizer`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from recbole_microlens.data.stores.item_inputs import (
    ItemInputs,
    ItemSource,
    build_item_inputs,
    require_content,
    resolve_tokenizer,
)
from recbole_microlens.encoders import ItemEncoder, build_encoder, encoder_spec, split_overrides
from recbole_microlens.encoders.formats import checkpoint_config
from recbole_microlens.encoders.weights import ResolvedWeights, resolve_weights
from recbole_microlens.errors import ConfigError


@dataclass(frozen=True)
class EncoderChoice:
    """Which encoder, with which weights and overrides. ``checkpoint`` is an
    ``encoder_checkpoint`` value (``pretrained``, ``random``/None, a path, hub id or URL);
    ``modality``, when set, is the one the run asks for (``item_modality``) and must be the
    encoder's; ``attn_implementation`` is the text encoders' attention kernel (None: the
    builder's default); ``head`` the ``encoder_head``; ``allow_missing_content`` lets items
    without their own content (``data.item_inputs.require_content``) train anyway."""

    name: str
    checkpoint: str | Path | None = None
    overrides: dict = field(default_factory=dict)
    tokenizer_path: str | Path | None = None
    modality: str | None = None
    attn_implementation: str | None = None
    head: str = "features"
    allow_missing_content: bool = False

    def __post_init__(self):
        encoder_spec(self.name)  # an unknown name fails here, before any data is touched

    @classmethod
    def from_config(cls, config) -> EncoderChoice:
        """The encoder a training run's config names (``item_encoder``, ``encoder_overrides``,
        ``frame_num``, ``encoder_checkpoint``, ``tokenizer_path``, ``fused_attention``,
        ``encoder_head``, ``allow_missing_content``)."""
        overrides = dict(config["encoder_overrides"] or {})
        if config["frame_num"]:
            overrides["frames"] = config["frame_num"]
        return cls(config["item_encoder"], config["encoder_checkpoint"] or None, overrides,
                   config["tokenizer_path"] or None, config["item_modality"] or None,
                   "eager" if config["fused_attention"] is False else "sdpa",
                   config["encoder_head"], bool(config["allow_missing_content"]))

    @property
    def spec(self):
        return encoder_spec(self.name)

    @cached_property
    def weights(self) -> ResolvedWeights:
        """The local weights ``checkpoint`` names, fetched into their cache when missing."""
        return resolve_weights(self.name, self.checkpoint, self.spec.weights)


def prefetch_weights(config) -> ResolvedWeights | None:
    """The weights of a run's encoder tower, resolved before any data work, so missing weights
    stop a run at once (None: the run has no encoder tower)."""
    if config["item_tower"] != "encoder":
        return None
    return EncoderChoice.from_config(config).weights


def build_encoder_inputs(choice: EncoderChoice, item_tokens: list[str],
                         source: ItemSource) -> ItemInputs:
    """The inputs of ``choice`` for ``item_tokens`` (RecBole's id -> token list), their store
    built on first use with the encoder's input spec and tokenizer, once the items are known to
    have content of their own (or ``allow_missing_content``)."""
    spec = choice.spec
    if choice.modality not in (None, spec.modality):
        raise ConfigError(f"item_encoder {choice.name} encodes {spec.modality}, "
                          f"not item_modality {choice.modality}")
    input_spec, _ = split_overrides(spec.input, choice.overrides)
    if spec.modality == "text":
        check_title_length(choice.overrides, source.title_max_length)
        tokenizer = resolve_tokenizer(choice.weights.path, choice.tokenizer_path)
        source = dataclasses.replace(source, tokenizer_path=tokenizer)
    require_content(item_tokens, spec.modality, source, allowed=choice.allow_missing_content)
    return build_item_inputs(item_tokens, spec.modality, input_spec, source)


def check_title_length(overrides: dict, title_max_length: int) -> None:
    """Titles are cut to ``title_max_length`` alone. An ``encoder_overrides`` ``max_tokens`` once
    sized the title store when that key was unset; one that disagrees with it now is refused
    rather than ignored."""
    max_tokens = overrides.get("max_tokens", title_max_length)
    if max_tokens != title_max_length:
        raise ConfigError(f"encoder_overrides max_tokens {max_tokens} disagrees with "
                          f"title_max_length {title_max_length}: set title_max_length instead")


def build_item_encoder(choice: EncoderChoice, inputs: ItemInputs) -> ItemEncoder:
    """The encoder of ``choice`` sized for ``inputs``: a text encoder gets the vocabulary of its
    checkpoint (``config.json``), or without one that of the tokenizer trained on the titles."""
    overrides = dict(choice.overrides)
    if choice.spec.modality == "text":
        vocab_size = (checkpoint_config(choice.weights.path).get("vocab_size")
                      if choice.weights.path else inputs.vocab_size)
        if vocab_size:
            overrides.setdefault("vocab_size", vocab_size)
        if choice.attn_implementation is not None:
            overrides.setdefault("attn_implementation", choice.attn_implementation)
    return build_encoder(choice.name, checkpoint=choice.weights, overrides=overrides,
                         head=choice.head)
