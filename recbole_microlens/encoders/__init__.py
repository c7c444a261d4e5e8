"""Item encoders (video, cover image, title) behind one block-list interface; see ``registry``."""
from recbole_microlens.encoders.checkpoints import CheckpointError, CheckpointFormat, load_checkpoint
from recbole_microlens.encoders.registry import (
    ENCODERS,
    FINETUNE_MODES,
    EncoderSpec,
    InputSpec,
    ItemEncoder,
    build_encoder,
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
    "list_encoders",
    "load_checkpoint",
    "register_encoder",
]
