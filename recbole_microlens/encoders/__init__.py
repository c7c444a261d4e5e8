"""Item encoders (video, cover image, title) behind one block-list interface; see ``registry``.

``base`` holds the types (a leaf), ``video``/``image``/``text`` the builders, ``registry`` the table.
"""
from recbole_microlens.encoders.base import (
    FINETUNE_MODES,
    EncoderSpec,
    InputSpec,
    ItemEncoder,
    split_overrides,
)
from recbole_microlens.encoders.formats import CheckpointError, CheckpointFormat, load_checkpoint
from recbole_microlens.encoders.registry import (
    ENCODERS,
    build_encoder,
    encoder_spec,
    list_encoders,
    register_encoder,
)

__all__ = [
    "ENCODERS",
    "FINETUNE_MODES",
    "CheckpointError",
    "CheckpointFormat",
    "EncoderSpec",
    "InputSpec",
    "ItemEncoder",
    "build_encoder",
    "encoder_spec",
    "list_encoders",
    "load_checkpoint",
    "register_encoder",
    "split_overrides",
]
