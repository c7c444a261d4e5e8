"""The one factory of item encoders over item inputs, for trained towers and frozen features alike.

An encoder tower (``model/layers.py``) and ``extract-features`` (``features.py``) both need the
same two things built by the same rules: the item inputs (the data layer's store, whose input
spec and tokenizer must match the encoder) and the encoder they feed. Building them here keeps
one unknown-encoder check, one split of ``encoder_overrides`` into input and builder keys, and
one tokenizer rule (:func:`~recbole_microlens.data.item_inputs.resolve_tokenizer`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from recbole_microlens.data.item_inputs import ItemInputs, ItemSource, build_item_inputs, resolve_tokenizer
from recbole_microlens.encoders import ItemEncoder, build_encoder, encoder_spec, split_overrides
from recbole_microlens.errors import ConfigError


@dataclass(frozen=True)
class EncoderChoice:
    """Which encoder, with which weights and overrides. ``modality``, when set, is the one the
    run asks for (``item_modality``) and must be the encoder's; ``attn_implementation`` is the
    text encoders' attention kernel (None: the builder's default)."""

    name: str
    checkpoint: str | Path | None = None
    overrides: dict = field(default_factory=dict)
    tokenizer_path: str | Path | None = None
    modality: str | None = None
    attn_implementation: str | None = None

    def __post_init__(self):
        encoder_spec(self.name)  # an unknown name fails here, before any data is touched

    @classmethod
    def from_config(cls, config) -> EncoderChoice:
        """The encoder a training run's config names (``item_encoder``, ``encoder_overrides``,
        ``frame_num``, ``encoder_checkpoint``, ``tokenizer_path``, ``fused_attention``)."""
        overrides = dict(config["encoder_overrides"] or {})
        if config["frame_num"]:
            overrides["frames"] = config["frame_num"]
        return cls(config["item_encoder"], config["encoder_checkpoint"] or None, overrides,
                   config["tokenizer_path"] or None, config["item_modality"] or None,
                   "eager" if config["fused_attention"] is False else "sdpa")

    @property
    def spec(self):
        return encoder_spec(self.name)


def build_encoder_inputs(choice: EncoderChoice, item_tokens: list[str],
                         source: ItemSource) -> ItemInputs:
    """The inputs of ``choice`` for ``item_tokens`` (RecBole's id -> token list), their store
    built on first use with the encoder's input spec and tokenizer."""
    spec = choice.spec
    if choice.modality not in (None, spec.modality):
        raise ConfigError(f"item_encoder {choice.name} encodes {spec.modality}, "
                          f"not item_modality {choice.modality}")
    input_spec, _ = split_overrides(spec.input, choice.overrides)
    if spec.modality == "text":
        tokenizer = resolve_tokenizer(choice.checkpoint, choice.tokenizer_path)
        source = dataclasses.replace(source, tokenizer_path=tokenizer)
    return build_item_inputs(item_tokens, spec.modality, input_spec, source)


def build_item_encoder(choice: EncoderChoice, inputs: ItemInputs) -> ItemEncoder:
    """The encoder of ``choice`` sized for ``inputs``: a text encoder without a checkpoint gets
    the vocabulary of the tokenizer trained on the titles."""
    overrides = dict(choice.overrides)
    if choice.spec.modality == "text":
        if inputs.vocab_size and choice.checkpoint is None:
            overrides.setdefault("vocab_size", inputs.vocab_size)
        if choice.attn_implementation is not None:
            overrides.setdefault("attn_implementation", choice.attn_implementation)
    return build_encoder(choice.name, checkpoint=choice.checkpoint, overrides=overrides)
